"""The aiohttp application: routes, the access-log and error middleware, lifecycle."""

from __future__ import annotations

import asyncio
import time
from typing import TextIO

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge import jsonutil
from bridge.auth import TokenChecker
from bridge.config import Settings
from bridge.core import Bridge
from bridge.inbound.agora_audio import handle_audio, load_audio_clip
from bridge.inbound.agora_rag import build_knowledge, handle_rag, knowledge_opener
from bridge.inbound.alibaba_form import handle_form
from bridge.inbound.openai_chat import handle_chat
from bridge.logs import configure_logging, get_logger
from bridge.metrics import Metrics
from bridge.ops import healthz, metrics, readyz
from bridge.redaction import Redactor
from bridge.render.openai_chunks import error_body
from bridge.state import LOG, STATE, AppState
from bridge.upstreams import build_upstreams

# Header limits: generous for real clients (long Bearer tokens, Agora's llm.headers), small
# enough that a hostile client cannot make us buffer much before the body cap applies.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 16384


def is_openai_path(path: str) -> bool:
    """Paths that answer errors in OpenAI's shape."""
    return path.startswith("/v1/") or path.endswith("/chat/completions")


def error_response(path: str, status: int, message: str) -> web.Response:
    """A JSON error in the shape the route's clients expect."""
    if is_openai_path(path):
        body = error_body(status, message, code=_CODES.get(status))
    else:
        body = {"error": message}
    return web.Response(body=jsonutil.dumps(body), status=status, content_type="application/json",
                        charset="utf-8")


_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Write one log line per request; turn HTTP and unexpected errors into JSON bodies."""
    record: dict[str, object] = {}
    request[LOG] = record
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        message = {
            404: f"No route for {request.path}.",
            405: f"Method {request.method} is not allowed here; use {exc.headers.get('Allow', 'POST')}.",
            413: f"Request body is larger than the {request.app[STATE].settings.max_body_bytes} byte limit.",
        }.get(status, exc.reason)
        response = error_response(request.path, status, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncio.CancelledError:
        status = 499
        record["client_cancel"] = True
        raise
    except Exception as exc:  # a bug: log it, answer JSON, keep serving
        record["error_kind"] = "internal"
        record["exception"] = f"{type(exc).__name__}: {exc}"
        return error_response(request.path, 500, "Internal error; see the server log.")
    finally:
        elapsed = time.perf_counter() - started
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else "unmatched"
        metrics = request.app[STATE].bridge.metrics
        metrics.requests.labels(route, str(status)).inc()
        metrics.latency.labels(route).observe(elapsed)
        if record.get("fallback"):
            metrics.fallbacks.labels(route).inc()
        get_logger().info(
            "request",
            method=request.method,
            route=route if resource is not None else request.path[:200],
            status=status,
            latency_ms=round(elapsed * 1000, 2),
            **record,
        )


def create_app(settings: Settings | None = None, *, log_stream: TextIO | None = None) -> web.Application:
    """Build the application; raises ConfigError when the configuration is invalid."""
    settings = settings or Settings.from_env()
    redact = Redactor(settings.secrets())
    configure_logging(settings.log_level, redact, log_stream)
    bridge = Bridge(settings, build_upstreams(settings), redact, Metrics())
    knowledge = build_knowledge(settings)  # before serving: a broken KNOWLEDGE_DIR stops start-up
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[access_log],
        handler_args={"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE},
    )
    app[STATE] = AppState(settings=settings, bridge=bridge, tokens=TokenChecker(settings.tokens), redact=redact)
    app.router.add_post("/", handle_form)
    app.router.add_post("/v1/chat/completions", handle_chat)
    app.router.add_post("/chat/completions", handle_chat)
    app.router.add_post("/rag/chat/completions", handle_rag)
    app.router.add_post("/audio/chat/completions", handle_audio)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(_announce)
    app.on_startup.append(knowledge_opener(knowledge))
    app.on_startup.append(load_audio_clip)
    app.on_shutdown.append(_start_draining)
    app.on_cleanup.append(_close_upstreams)
    return app


async def _start_draining(app: web.Application) -> None:
    """SIGTERM: readiness turns 503 while in-flight streams finish (within DRAIN_TIMEOUT)."""
    app[STATE].draining = True
    get_logger().info("draining", in_flight=app[STATE].bridge.in_flight)


async def _announce(app: web.Application) -> None:
    state = app[STATE]
    log = get_logger()
    if not state.tokens.enabled:
        log.warning("auth_disabled", detail="BRIDGE_TOKENS is empty: every request is accepted")
    names = [u.name for u in state.bridge.upstreams]
    if names[0] == "echo":
        log.warning("echo_active", detail="UPSTREAM is echo: answers repeat the caller; set OPENAI_BASE_URL "
                    "or UPSTREAM to use a real model")
    log.info("started", upstreams=names, max_history=state.settings.max_history)


async def _close_upstreams(app: web.Application) -> None:
    await app[STATE].bridge.aclose()
