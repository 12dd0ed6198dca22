"""The app as the tests see it: its test server, its log lines, the openai SDK as a caller, its SSE."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import openai
from aiohttp.test_utils import TestClient, TestServer

from bridge.compat import QuietRunner as BridgeRunner
from bridge.config import read_settings
from bridge.process.app import create_app
from bridge.upstreams.openai.sdk import tls_context


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


def log_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def sdk_client(base_url: str, api_key: str) -> openai.AsyncOpenAI:
    """The official openai SDK as a caller (one shared TLS context: building one reads the CA store)."""
    return openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0,
                              http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()))


def sse_events(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of an OpenAI-style SSE answer, which must end with [DONE]."""
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return [json.loads(e) for e in events[:-1]]


class BridgeTestServer(TestServer):
    """The app on a loopback port, served by the bridge's own runner (as in production)."""

    async def _make_runner(self, **kwargs: Any) -> BridgeRunner:
        return BridgeRunner(self.app, **kwargs)


BridgeFactory = Callable[..., Awaitable[TestClient]]


@contextlib.asynccontextmanager
async def bridges(log_stream: io.StringIO, defaults: dict[str, str] | None = None) -> AsyncIterator[BridgeFactory]:
    """`make(env)` starts the real app on 127.0.0.1 and returns a client; all are closed at the end.

    The start-up probe of the upstream (GET /models) is off: it is tested on its own
    (tests/test_startup_checks.py).
    """
    clients: list[TestClient] = []

    async def make(env: dict[str, str] | None = None) -> TestClient:
        settings = read_settings({"UPSTREAM_PROBE": "off", **(defaults or {}), **(env or {})})
        client = TestClient(BridgeTestServer(create_app(settings, log_stream=log_stream), host="127.0.0.1"))
        await client.start_server()
        clients.append(client)
        return client

    try:
        yield make
    finally:
        for client in clients:
            await client.close()
