"""Shared fixtures: the real app on a loopback port, and real fake upstreams that record requests."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import openai
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bridge.compat import QuietRunner as BridgeRunner
from bridge.config import read_settings
from bridge.process.app import create_app
from bridge.upstreams.openai.sdk import tls_context

if TYPE_CHECKING:
    from tests.test_tools_mcp import McpTestServer


@dataclass
class Recorded:
    """One request as the fake upstream received it."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def sse(payloads: list[Any], *, done: bool = True) -> bytes:
    """An OpenAI-style SSE body: one `data:` event per payload, then [DONE]."""
    out = b"".join(b"data: " + json.dumps(p, ensure_ascii=False).encode() + b"\n\n" for p in payloads)
    return out + (b"data: [DONE]\n\n" if done else b"")


def text_chunks(pieces: list[str], *, model: str = "up-model", usage: dict[str, int] | None = None,
                finish: str = "stop") -> list[dict[str, Any]]:
    """chat.completion.chunk payloads for `pieces`, as a real OpenAI upstream streams them."""
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": model}
    chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                    "finish_reason": None}]}]
    chunks += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    if usage is not None:
        chunks.append({**base, "choices": [], "usage": usage})
    return chunks


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FakeUpstream:
    """A real aiohttp server on 127.0.0.1 that records every request it gets.

    Set `handler` to change how it answers; by default it streams `reply` as OpenAI SSE.
    """

    server: TestServer | None = None
    requests: list[Recorded] = field(default_factory=list)
    reply: list[str] = field(default_factory=lambda: ["Hello", ", ", "world", "!"])
    handler: Handler | None = None
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    @property
    def last(self) -> Recorded:
        return self.requests[-1]

    async def wait_for_requests(self, count: int, timeout: float = 5) -> None:
        """Until `count` requests have arrived."""
        async with asyncio.timeout(timeout), self.arrived:
            await self.arrived.wait_for(lambda: len(self.requests) >= count)

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.requests.append(Recorded(request.method, request.path, dict(request.query),
                                      dict(request.headers), body))
        async with self.arrived:
            self.arrived.notify_all()
        try:
            if self.handler is not None:
                return await self.handler(request)
            return await self.stream_openai(request)
        except (asyncio.CancelledError, ConnectionError):
            self.disconnected.set()
            raise

    def hold(self, release: asyncio.Event, arrived: asyncio.Event | None = None) -> None:
        """Answer as usual, but only once `release` is set; `arrived` is set when a request comes."""

        async def held(request: web.Request) -> web.StreamResponse:
            if arrived is not None:
                arrived.set()
            await release.wait()
            return await self.stream_openai(request)

        self.handler = held

    def pause_midway(self, release: asyncio.Event) -> None:
        """Stream "first half", then " second half" and the end only once `release` is set."""

        async def two_halves(request: web.Request) -> web.StreamResponse:
            chunks = text_chunks(["first half", " second half"])
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            await response.write(sse(chunks[:2], done=False))
            await release.wait()
            await response.write(sse(chunks[2:]))
            return response

        self.handler = two_halves

    async def stream_openai(self, request: web.Request) -> web.StreamResponse:
        usage = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(self.reply, usage=usage)))
        return response


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    """A real MCP server (the mcp SDK's own) on 127.0.0.1: tests/test_tools_mcp.py."""
    from tests.test_tools_mcp import McpTestServer  # the SDK is imported only by the tests that use it

    server = McpTestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fake._dispatch)
    fake.server = TestServer(app, host="127.0.0.1")
    await fake.server.start_server()
    yield fake
    await fake.server.close()


class LogStream(io.StringIO):
    """What the app logs; `await wait_for_line(...)` waits (without sleeping) for a line to be written."""

    def __init__(self) -> None:
        super().__init__()
        self._written = asyncio.Event()

    def write(self, text: str) -> int:
        count = super().write(text)
        self._written.set()
        return count

    async def wait_for_line(self, predicate: Callable[[dict[str, Any]], bool], timeout: float = 5) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            while True:
                self._written.clear()
                found = [line for line in log_lines(self) if predicate(line)]
                if found:
                    return found[-1]
                await self._written.wait()


@pytest.fixture
def log_stream() -> LogStream:
    """Everything the app logs during the test."""
    return LogStream()


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def sdk_client(base_url: str, api_key: str) -> openai.AsyncOpenAI:
    """The official openai SDK as a caller (one shared TLS context: building one reads the CA store)."""
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                              http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()))


class BridgeTestServer(TestServer):
    """The app on a loopback port, served by the bridge's own runner (as in production)."""

    async def _make_runner(self, **kwargs: Any) -> BridgeRunner:
        return BridgeRunner(self.app, **kwargs)


BridgeFactory = Callable[..., Awaitable[TestClient]]


@pytest.fixture
def bridge_defaults() -> dict[str, str]:
    """Environment every `bridge(...)` app starts with; a test module may override it."""
    return {}


@pytest.fixture
async def bridge(log_stream: io.StringIO, bridge_defaults: dict[str, str]) -> AsyncIterator[BridgeFactory]:
    """`await bridge({"ENV": "value"})` starts the real app on 127.0.0.1 and returns a client."""
    clients: list[TestClient] = []

    async def make(env: dict[str, str] | None = None) -> TestClient:
        # the start-up probe of the upstream (GET /models) is tested on its own (tests/test_startup_checks.py)
        settings = read_settings({"UPSTREAM_PROBE": "off", **bridge_defaults, **(env or {})})
        app = create_app(settings, log_stream=log_stream)
        client = TestClient(BridgeTestServer(app, host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()
