"""aiohttp's server, answering malformed HTTP the bridge's way.

A request aiohttp cannot parse (a control byte in a header, a header over the size limit)
never reaches the application: aiohttp answers it itself, in plain text that quotes the
offending line, and logs a traceback that quotes it too, bridge token included. Here such
a request gets a JSON 400 naming only the kind of problem, and one log line without the
request's bytes.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from bridge import jsonutil
from bridge.log import get_logger

_REASONS = {400: "The HTTP request is malformed", 500: "Internal error; see the server log",
            504: "The request took too long"}


class QuietRequestHandler(RequestHandler):
    """A connection handler whose protocol-level errors are JSON and never echo the request."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        problem = type(exc).__name__ if exc is not None else "error"
        get_logger().warning("bad_http_request", status=status, problem=problem, remote=request.remote)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        reason = _REASONS.get(status, "The request failed")
        body = {"error": {"message": f"{reason} ({problem}).", "type": "invalid_request_error" if status == 400
                          else "server_error", "param": None, "code": "bad_http_request" if status == 400 else None}}
        response = web.Response(status=status, body=jsonutil.dumps(body), content_type="application/json",
                                charset="utf-8")
        response.force_close()
        return response


class QuietServer(web.Server):
    """aiohttp's low-level server, building `QuietRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class BridgeRunner(web.AppRunner):
    """An AppRunner whose server builds `QuietRequestHandler`s."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = QuietServer  # the same server, only its handler factory differs
        return server
