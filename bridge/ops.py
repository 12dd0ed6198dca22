"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bridge.auth import TokenChecker
from bridge.state import STATE


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never calls an upstream."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: configuration and specs loaded, and not draining for shutdown."""
    state = request.app[STATE]
    if state.draining:
        return web.json_response({"status": "draining"}, status=503)
    return web.json_response({"status": "ready", "upstreams": [u.name for u in state.bridge.upstreams]})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; behind `Authorization: Bearer $METRICS_TOKEN` when that is set."""
    state = request.app[STATE]
    token = state.settings.metrics_token
    if token and not TokenChecker([token]).check_bearer(request.headers.get("Authorization")):
        return web.json_response({"error": "metrics: missing or invalid bearer token"}, status=401)
    response = web.Response(body=state.bridge.metrics.render())
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response
