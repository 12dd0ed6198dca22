"""The aiohttp application: routes, the access-log and error middleware, start-up and clean-up hooks."""

from __future__ import annotations

import asyncio
import time
import warnings
from typing import TextIO

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.config import Settings, check_files
from bridge.errors import ErrorKind
from bridge.inbound.agora_audio import handle_audio, load_audio_clip
from bridge.inbound.agora_rag import build_knowledge, handle_rag, knowledge_opener
from bridge.inbound.alibaba_form import handle_form
from bridge.inbound.auth import TokenChecker
from bridge.inbound.openai.routes import handle_chat, handle_models
from bridge.log import RequestLog, bound_logger, configure_logging, get_logger
from bridge.metrics import Metrics
from bridge.pipeline.chain import Bridge
from bridge.pipeline.stages import Voice
from bridge.process.ops import healthz, metrics, readyz
from bridge.process.state import LOG, STATE, AppState
from bridge.redaction import Redactor
from bridge.render.json_reply import openai_error, plain_error
from bridge.tools import load_toolbox
from bridge.upstreams import build_upstreams

# Header limits: generous for real clients (long Bearer tokens, Agora's llm.headers), small
# enough that a hostile client cannot make us buffer much before the body cap applies.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 16384
# After an answer sent before the body was read (a 408, a 413), aiohttp keeps reading the rest
# so the caller sees the answer rather than a reset: briefly (its default 10 s would let slow
# callers hold connections well past BODY_TIMEOUT).
LINGERING_TIME = 1.0
_MESSAGES = {404: "No route for {path}.", 405: "Method {method} is not allowed here; use {allow}.",
             413: "Request body is larger than the {limit} byte limit."}
_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 503: "shutting_down"}


def is_openai_path(path: str) -> bool:
    """Paths that answer errors in OpenAI's shape."""
    return path.startswith("/v1/") or path.endswith(("/chat/completions", "/models"))


def error_response(path: str, status: int, message: str) -> web.Response:
    """A JSON error in the shape the route's clients expect."""
    if is_openai_path(path):
        return openai_error(status, message, _CODES.get(status))
    return plain_error(status, message)


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Write one log line per request; turn HTTP errors and bugs into JSON bodies."""
    state = request.app[STATE]
    log = RequestLog()
    request[LOG] = log
    started = time.perf_counter()
    status = 500
    state.active += 1
    try:
        if state.closing:
            log.fail(ErrorKind.SHUTDOWN)
            status = 503
            refusal = error_response(request.path, 503, "The server is shutting down; retry on another.")
            refusal.force_close()
            return refusal
        response = await handler(request)
        status = 499 if log.client_cancel else response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        template = _MESSAGES.get(status)
        message = template.format(path=request.path[:200], method=request.method,
                                  allow=exc.headers.get("Allow", "POST"),
                                  limit=state.settings.server.max_body_bytes) if template else exc.reason
        response = error_response(request.path, status, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except asyncio.CancelledError:
        if state.bridge.cutting:  # the drain ran out: the server cut it, not the caller
            status, log.cut = 503, True
            log.fail(ErrorKind.SHUTDOWN)
        else:
            status, log.client_cancel = 499, True
        raise
    except Exception as exc:  # a bug: log it, answer JSON, keep serving
        log.fail(ErrorKind.INTERNAL)
        log.exception = f"{type(exc).__name__}: {exc}"
        return error_response(request.path, 500, "Internal error; see the server log.")
    finally:
        state.active -= 1
        if state.active == 0:
            state.idle.set()
        _finish(request, state, log, status, time.perf_counter() - started)


def _finish(request: web.Request, state: AppState, log: RequestLog, status: int, elapsed: float) -> None:
    """The request's metrics and its one log line."""
    if log.error_kind is ErrorKind.SHUTDOWN:
        log.cut = True
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    state.bridge.metrics.answered(route, status, elapsed, bool(log.failure_phrase))
    state.access_log.info("request", method=request.method, route=route if resource is not None else request.path[:200],
                      status=status, latency_ms=round(elapsed * 1000, 2), **log.fields())


def create_app(settings: Settings | None = None, *, log_stream: TextIO | None = None) -> web.Application:
    """Build the application; raises ConfigError when the configuration is invalid."""
    settings = settings or Settings.from_env()
    check_files(settings)
    redact = Redactor(settings.secrets())
    configure_logging(settings.server.log_level, redact, log_stream)
    # aiohttp warns (to stderr, quoting the header) about malformed multipart part headers; the
    # request gets its 400 regardless.
    warnings.filterwarnings("ignore", module="aiohttp.multipart")
    toolbox = load_toolbox(settings.tools_file, settings.env, secrets=settings.secrets()) \
        if settings.tools_file else None
    bridge = Bridge(settings, build_upstreams(settings), redact, Metrics(), toolbox)
    knowledge = build_knowledge(settings)  # before serving: a broken KNOWLEDGE_DIR stops start-up
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[access_log],
        handler_args={"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE,
                      "lingering_time": LINGERING_TIME},
    )
    app[STATE] = AppState(settings=settings, bridge=bridge, voice=Voice(settings.answer),
                          tokens=TokenChecker(settings.tokens), redact=redact, access_log=bound_logger())
    app.router.add_post("/", handle_form)
    for path in ("/v1/chat/completions", "/chat/completions"):
        app.router.add_post(path, handle_chat)
    for path in ("/v1/models", "/models"):
        app.router.add_get(path, handle_models)
    app.router.add_post("/rag/chat/completions", handle_rag)
    app.router.add_post("/audio/chat/completions", handle_audio)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    app.on_startup.append(knowledge_opener(knowledge))
    app.on_startup.append(load_audio_clip)
    app.on_startup.append(_start_tools)
    app.on_startup.append(_announce)
    app.on_cleanup.append(_close_upstreams)
    return app


async def _announce(app: web.Application) -> None:
    state = app[STATE]
    log = get_logger()
    if not state.tokens.enabled:
        log.warning("auth_disabled", detail="BRIDGE_TOKENS is empty: every request is accepted")
    names = [u.name for u in state.bridge.upstreams]
    if names[0] == "echo":
        log.warning("echo_active", detail="UPSTREAM is echo: answers repeat the caller; set OPENAI_BASE_URL "
                    "or UPSTREAM to use a real model")


async def _start_tools(app: web.Application) -> None:
    """BRIDGE_TOOLS: MCP servers connect in the background (an unreachable one is retried, not fatal)."""
    toolbox = app[STATE].bridge.toolbox
    if toolbox is not None:
        await toolbox.start()
        get_logger().info("tools_ready", tools=[d["function"]["name"] for d in toolbox.definitions()],
                          mcp_servers=len(toolbox.links))


async def _close_upstreams(app: web.Application) -> None:
    await app[STATE].bridge.aclose()
