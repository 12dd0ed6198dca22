"""How each protocol answers a failure: one table per protocol, decided once.

Like Starlette's exception handlers, a protocol registers its answers in one place: the HTTP
status each error kind answers before the first byte, the shape of the body, and the code it
carries. Every refusal (bad body, wrong token, overloaded) and every failure (every upstream
failed, the drain cut it) of every route is answered through its protocol's table, and only
here is the log record's outcome written: `kind` and `message` (the access middleware adds
the status and whether the server cut it). Stages and routes raise or return `BridgeError`s;
they never decide a status or log an outcome themselves.

After the first byte a failure can only be an event in the stream: each stream renderer ends
a cut answer its own way (an error chunk and `[DONE]`, `response.failed`, a spoken goodbye),
recording it here with `record`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bridge.errors import BridgeError, ErrorKind
from bridge.log import RequestLog
from bridge.render.json_reply import json_reply

# Kinds that describe the caller's request, not the answer: the form route names no `kind` for them.
CALLER_KINDS = frozenset({ErrorKind.AUTH, ErrorKind.FORBIDDEN, ErrorKind.NOT_FOUND, ErrorKind.BAD_REQUEST,
                          ErrorKind.UNSUPPORTED_MEDIA, ErrorKind.BODY_TIMEOUT, ErrorKind.OVERLOADED})
# OpenAI's `error.type` by status.
_OPENAI_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 403: "invalid_request_error",
                 404: "invalid_request_error", 405: "invalid_request_error", 408: "invalid_request_error",
                 413: "invalid_request_error", 415: "invalid_request_error", 429: "rate_limit_error"}
# Routing errors aiohttp raises (no route, wrong method, body too large), by status: their code.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large", 415: "unsupported_media_type",
               503: "shutting_down"}

INTERNAL_MESSAGE = "Internal error; see the server log."

Body = Callable[[int, str, str | None, str | None, ErrorKind | None], Any]


def openai_body(status: int, message: str, code: str | None, param: str | None = None,
                kind: ErrorKind | None = None) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    kind_name = _OPENAI_TYPES.get(status, "upstream_error" if status in (502, 504) else "server_error")
    return {"error": {"message": message, "type": kind_name, "param": param, "code": code}}


def plain_body(status: int, message: str, code: str | None, param: str | None = None,
               kind: ErrorKind | None = None) -> dict[str, Any]:
    """The form route's shape: {"error": "..."}, plus the failure's `kind` when the answer failed."""
    if kind is None or kind in CALLER_KINDS:
        return {"error": message}
    return {"error": message, "kind": kind.value}


@dataclass(frozen=True, slots=True)
class ErrorReplies:
    """One protocol's answers to failure."""

    name: str
    body: Body
    statuses: Mapping[ErrorKind, int]
    default_status: int = 502
    codes: Mapping[ErrorKind, str] = field(default_factory=dict)  # the body's code, where not the kind's name

    def status(self, kind: ErrorKind) -> int:
        """The HTTP status `kind` answers before the first byte."""
        return self.statuses.get(kind, self.default_status)

    def code(self, kind: ErrorKind) -> str:
        return self.codes.get(kind, kind.value)

    def code_of(self, error: BridgeError) -> str:
        """The body's code for `error`: its own, else the protocol's for its kind."""
        return error.code or self.code(error.kind)

    def record(self, error: BridgeError, log: RequestLog) -> None:
        """Write the failure on the log record (its kind and message): the one place that does."""
        log.fail(error.kind, error.message)

    def failure(self, exc: BaseException, log: RequestLog) -> BridgeError:
        """`exc` as the failure it is, recorded: a BridgeError as is, anything else a bug (`internal`)."""
        if isinstance(exc, BridgeError):
            self.record(exc, log)
            return exc
        error = BridgeError(ErrorKind.INTERNAL, INTERNAL_MESSAGE)
        self.record(error, log)
        log.exception = f"{type(exc).__name__}: {exc}"
        return error

    def reply(self, error: BridgeError, log: RequestLog) -> web.Response:
        """The answer to a failure before anything was sent, and the failure on the log record."""
        self.record(error, log)
        status = self.status(error.kind)
        headers = {"Retry-After": f"{error.retry_after:g}"} if error.retry_after is not None else None
        response = json_reply(self.body(status, error.message, self.code_of(error), error.param, error.kind),
                              status, headers)
        if error.kind is ErrorKind.BODY_TIMEOUT:  # the rest of the body is never read: close after the answer
            response.force_close()
        return response

    def event_body(self, error: BridgeError) -> Any:
        """The error object a stream carries as its last event (`frame` it in the stream's own way)."""
        return self.body(self.status(error.kind), error.message, self.code_of(error), None, error.kind)

    def http_error(self, status: int, message: str) -> web.Response:
        """An HTTP-level refusal aiohttp raised (no route, wrong method, body too large)."""
        return json_reply(self.body(status, message, _HTTP_CODES.get(status), None, None), status)


_COMMON = {
    ErrorKind.UPSTREAM_TIMEOUT: 504,
    ErrorKind.SHUTDOWN: 503,
    ErrorKind.AUTH: 401,
    ErrorKind.FORBIDDEN: 403,
    ErrorKind.NOT_FOUND: 404,
    ErrorKind.BAD_REQUEST: 400,
    ErrorKind.UNSUPPORTED_MEDIA: 415,
    ErrorKind.BODY_TIMEOUT: 408,
    ErrorKind.OVERLOADED: 503,
    ErrorKind.INTERNAL: 500,
}

OPENAI = ErrorReplies(
    "openai", openai_body,
    {**_COMMON, ErrorKind.UPSTREAM_RATE_LIMITED: 429, ErrorKind.UPSTREAM_BAD_REQUEST: 400},
    codes={ErrorKind.AUTH: "invalid_api_key", ErrorKind.BAD_REQUEST: "invalid_request"},
)
"""Every OpenAI-protocol route (chat completions, models, Agora's RAG and audio, responses):
an upstream 429 or 400 is passed on as such, every other upstream failure is a gateway error."""

FORM = ErrorReplies("form", plain_body, _COMMON)
"""IMS's form route: with FALLBACK_TEXT empty a failed answer is a gateway error (502/503/504),
whatever the upstream said; the body names the failure's kind."""

SOCKET = ErrorReplies("socket", plain_body, _COMMON)
"""The WebSocket platforms (ConversationRelay, Retell): a refused handshake is answered before the
upgrade (401 token, 403 signature, 404 agent, 503 draining); once the socket is open, a failed
turn is spoken (the failure phrase) and recorded on the turn's log line, never an HTTP status."""


def caller_left(log: RequestLog) -> None:
    """The caller hung up (or barged in) while its answer was written: a 499 on the log line."""
    log.client_cancel = True
