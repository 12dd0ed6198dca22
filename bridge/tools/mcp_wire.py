"""What the MCP client reads off the wire, capped while it is read.

The MCP SDK reads a JSON answer whole (and an SSE event up to its own limit) before the
bridge sees it, so a cap applied afterwards bounds what the model reads, not what is held.
The bridge gives the SDK an httpx2 transport that counts the bytes of each answer as they
arrive and stops reading past the cap of the request that is waiting for it (`reading`, a
context variable the SDK carries to the task that sends the request). Answers are asked for
and read uncompressed, so the bytes counted are the bytes the SDK parses.
"""

from __future__ import annotations

import asyncio
import contextvars
import ssl
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx2

CALL_OVERHEAD = 64 * 1024  # room for the JSON-RPC envelope, escapes and structuredContent beside the text
CALL_FACTOR = 4


@dataclass(slots=True)
class ReadCap:
    """The most one answer may be; `exceeded` is set when an answer went past it."""

    limit: int
    exceeded: bool = False


_READING: contextvars.ContextVar[ReadCap | None] = contextvars.ContextVar("mcp_read_cap", default=None)
_TLS: list[ssl.SSLContext] = []


async def tls_context() -> ssl.SSLContext:
    """One TLS context for every MCP connection, made in a worker thread (30-60 ms of loading CAs)."""
    if not _TLS:
        context = await asyncio.to_thread(httpx2.create_ssl_context, trust_env=False)
        if not _TLS:
            _TLS.append(context)
    return _TLS[0]


def call_cap(max_result_bytes: int) -> int:
    """What a tools/call answer may be on the wire for a result capped at `max_result_bytes`."""
    return CALL_FACTOR * max_result_bytes + CALL_OVERHEAD


@contextmanager
def reading(cap: ReadCap) -> Iterator[ReadCap]:
    """Requests sent inside this block have their answers read up to `cap.limit` bytes."""
    token = _READING.set(cap)
    try:
        yield cap
    finally:
        _READING.reset(token)


class TooLarge(httpx2.StreamError):
    """An answer went past its cap; nothing more of it is read."""


class CappedTransport(httpx2.AsyncBaseTransport):
    """An httpx2 transport whose answers stop being read past their cap.

    A request sent inside `reading(cap)` gets `cap.limit`; any other JSON answer gets
    `default_limit`. Other event streams (the long-lived GET and listen streams) are bounded
    per event by the SDK's `max_sse_event_size`, not in total.
    """

    def __init__(self, default_limit: int, tls: ssl.SSLContext) -> None:
        self._inner = httpx2.AsyncHTTPTransport(verify=tls, trust_env=False)
        self._default = default_limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        response = await self._inner.handle_async_request(request)
        if "content-encoding" in response.headers:
            del response.headers["content-encoding"]  # asked for identity: never inflate what a server packed
        cap = _READING.get()
        if cap is None:
            if response.headers.get("content-type", "").lower().startswith("text/event-stream"):
                return response
            cap = ReadCap(self._default)
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        response.stream = _CappedStream(response.stream, cap)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _CappedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, cap: ReadCap) -> None:
        self._inner = inner
        self._cap = cap

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > self._cap.limit:
                self._cap.exceeded = True
                raise TooLarge(f"the answer is larger than {self._cap.limit} bytes")
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
