"""The app as the tests see it: its test server, its log lines, the openai SDK as a caller, its SSE."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

import openai
from aiohttp.test_utils import TestClient, TestServer

from bridge.compat import QuietRunner as BridgeRunner
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
