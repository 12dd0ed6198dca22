"""Operational endpoints: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from aiohttp import web

from bridge.inbound.auth import TokenChecker
from bridge.process.state import PROCESS
from bridge.render.json_reply import json_reply


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers. Never calls an upstream."""
    return json_reply({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: configuration loaded and not draining. From SIGTERM on, 503 (docs/operations.md, "Shutdown").

    With BRIDGE_TOOLS (any agent's), also 503 until each MCP server has been listed once or has
    failed its first attempt, at most `startup_wait` seconds (docs/tools.md): the model is
    offered the tools from the first call on.
    """
    state = request.app[PROCESS]
    if state.draining:
        return json_reply({"status": "draining", "in_flight": state.inflight.count}, 503)
    roster = state.services.roster
    if not all(box.ready for box in roster.toolboxes()):
        return json_reply({"status": "starting", "waiting_for": "mcp_servers"}, 503)
    return json_reply({"status": "ready", "upstreams": [u.name for u in roster.default.pipeline.upstreams]})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus exposition; behind `Authorization: Bearer $METRICS_TOKEN` when that is set."""
    state = request.app[PROCESS]
    token = state.settings.server.metrics_token
    if token and not TokenChecker([token]).check_bearer(request.headers.get("Authorization")):
        return json_reply({"error": "metrics: missing or invalid bearer token"}, 401)
    body, content_type = state.metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
