"""The access middleware: one log line per request, and every failure before the first byte
answered by the route's protocol (bridge/render/errors.py).

A route raises a `BridgeError` when it refuses a request or its answer failed before anything
was sent; aiohttp raises its own HTTP errors (no route, wrong method, body too large). Both
are answered here with the route's error table, as is a bug (a JSON 500, never a traceback).
The outcome on the log line (status, cut, client_cancel) is written here and by the tables.

A WebSocket upgrade counts as active for the socket's whole life (the drain waits for the call),
its line is written when the socket closes, and from SIGTERM on a new one is refused (503).
"""

from __future__ import annotations

import asyncio
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.context import AGENT, LOG
from bridge.inbound.routes import ROUTES
from bridge.log import RequestLog
from bridge.process.state import PROCESS, ProcessState
from bridge.render.errors import FORM, OPENAI, ErrorReplies

_MESSAGES = {404: "No route for {path}.", 405: "Method {method} is not allowed here; use {allow}.",
             413: "Request body is larger than the {limit} byte limit."}
_TABLES = {route.handler: route.errors for route in ROUTES}


def errors_for(request: web.Request) -> ErrorReplies:
    """The error table of the route `request` reached; for a path that matches none, the shape its
    clients most likely read (OpenAI's under /v1 and for OpenAI-looking paths)."""
    route = request.match_info.route
    table = _TABLES.get(route.handler) if route.resource is not None else None
    if table is not None:
        return table
    path = request.path
    openai = path.startswith("/v1/") or path.endswith(("/chat/completions", "/models", "/responses"))
    return OPENAI if openai else FORM


@web.middleware
async def access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Write one log line per request; answer failures with the route's error table."""
    state = request.app[PROCESS]
    log = RequestLog()
    request[LOG] = log
    started = time.perf_counter()
    status = 500
    state.active += 1
    try:
        response: web.StreamResponse
        if state.closing or (state.draining and _is_upgrade(request)):
            refusal = errors_for(request).reply(BridgeError(
                ErrorKind.SHUTDOWN, "The server is shutting down; retry on another."), log)
            refusal.force_close()
            response = refusal
        else:
            response = await _handled(request, handler, log)
        status = 499 if log.client_cancel else response.status
        return response
    except asyncio.CancelledError:
        if state.inflight.cutting:  # the drain ran out: the server cut it, not the caller
            status, log.cut = 503, True
            log.fail(ErrorKind.SHUTDOWN)
        else:
            status, log.client_cancel = 499, True
        raise
    finally:
        state.active -= 1
        if state.active == 0:
            state.idle.set()
        agent = request.get(AGENT)
        if agent is not None:
            agent.leave()
        _finish(request, state, log, status, time.perf_counter() - started)


def _is_upgrade(request: web.Request) -> bool:
    """A WebSocket handshake: refused from SIGTERM on, since a call begun now would be cut at the drain's end
    (a platform such as Twilio then moves on to its action URL, which can connect the call again elsewhere)."""
    return request.headers.get("Upgrade", "").lower() == "websocket"


async def _handled(request: web.Request, handler: Handler, log: RequestLog) -> web.StreamResponse:
    """The route's response, or its error table's answer to what it raised."""
    try:
        return await handler(request)
    except BridgeError as exc:
        return errors_for(request).reply(exc, log)
    except web.HTTPException as exc:
        template = _MESSAGES.get(exc.status)
        limit = request.app[PROCESS].settings.server.max_body_bytes
        message = template.format(path=request.path[:200], method=request.method,
                                  allow=exc.headers.get("Allow", "POST"), limit=limit) if template else exc.reason
        response = errors_for(request).http_error(exc.status, message)
        if "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception as exc:  # a bug: log it, answer JSON, keep serving
        errors = errors_for(request)
        return errors.reply(errors.failure(exc, log), log)


def _finish(request: web.Request, state: ProcessState, log: RequestLog, status: int, elapsed: float) -> None:
    """The request's metrics and its one log line."""
    if log.error_kind is ErrorKind.SHUTDOWN:
        log.cut = True
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    state.metrics.answered(route, status, elapsed, bool(log.failure_phrase), log.agent or "")
    state.access_log.info("request", method=request.method, route=route if resource is not None else request.path[:200],
                          status=status, latency_ms=round(elapsed * 1000, 2), **log.fields())
