"""Server-Sent Events out: the one place an SSE response is opened, written and ended."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge import jsonutil
from bridge.compat import LateHeadersResponse
from bridge.events import Metadata

SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}
DONE = b"data: [DONE]\n\n"


def frame(payload: Any) -> bytes:
    """One `data:` event carrying `payload` as JSON."""
    return b"data: " + jsonutil.dumps(payload) + b"\n\n"


def passthrough(chunk: Metadata) -> bytes:
    """A platform chunk from the upstream, as the upstream sent it."""
    return b"data: " + chunk.raw + b"\n\n" if chunk.raw is not None else frame(chunk.payload)


class SSEWriter:
    """One SSE response. The headers go out with the first write, or at `open` when a route
    must speak before it has an answer (the RAG route's waiting phrase)."""

    __slots__ = ("request", "response")

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.response: web.StreamResponse | None = None

    @property
    def started(self) -> bool:
        """True once the status and headers are on the wire: errors can then only be events."""
        return self.response is not None

    async def open(self) -> web.StreamResponse:
        if self.response is None:
            # status and headers travel with the first chunk: one send fewer per answer
            response = LateHeadersResponse(headers=SSE_HEADERS)
            await response.prepare(self.request)
            self.response = response
        return self.response

    async def write(self, data: bytes) -> None:
        response = self.response or await self.open()
        await response.write(data)

    async def end(self, last: bytes = DONE) -> web.StreamResponse:
        """Write the last events (`[DONE]`) and end the body, in one write."""
        response = self.response or await self.open()
        await response.write_eof(last)
        return response
