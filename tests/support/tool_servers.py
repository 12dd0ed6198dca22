"""HTTP tool servers on 127.0.0.1, for the bridge's HTTP tools (bridge/tools/http_tools.py).

Two fakes for two kinds of test: `WeatherToolServer` is one realistic tool that the end-to-end
tool loop calls (tests/test_tools_loop.py); `OutcomeToolServer` has one path per kind of answer a
tool call can get (JSON, text, empty, 500, redirect, huge, never), for the toolbox's own tests
(tests/test_tools_box.py).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.upstream import FakeUpstream, sse, text_chunks

WEATHER_KEY = "wk-live-7Hq2mZpR4sVx9TbN"  # the secret /near_cap puts across the 1024-byte cap
HUGE_TOTAL = 64 * 1024 * 1024  # what /huge would send: far more than any socket buffer holds


class WeatherToolServer:
    """A plain HTTP tool on 127.0.0.1: POST /weather answers JSON; /slow never answers."""

    def __init__(self) -> None:
        self.bodies: list[Any] = []
        self.headers: list[dict[str, str]] = []
        self.gone = asyncio.Event()
        app = web.Application()
        app.router.add_post("/weather", self.weather)
        app.router.add_post("/slow", self.slow)
        self.server = TestServer(app, host="127.0.0.1")

    async def start(self) -> None:
        await self.server.start_server()

    async def close(self) -> None:
        await self.server.close()

    async def weather(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        self.headers.append(dict(request.headers))
        return web.json_response({"city": self.bodies[-1]["city"], "sky": "sunny", "celsius": 21})

    async def slow(self, request: web.Request) -> web.Response:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.gone.set()
            raise
        raise AssertionError("unreachable")

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))


@dataclass
class Seen:
    """One request as the outcome server received it (the query as a list: order and repeats count)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class OutcomeToolServer:
    """Answers JSON, text, 500, a huge body, a slow answer, and echoes the headers it got.

    `/<name>` is answered by `on_<name>`; every request is recorded in `seen`.
    """

    server: TestServer | None = None
    seen: list[Seen] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    huge_sent: int = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{name}", self.dispatch)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    def url(self, path: str) -> str:
        assert self.server is not None
        return str(self.server.make_url(path))

    async def dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.seen.append(Seen(request.method, request.path, list(request.query.items()),
                              dict(request.headers), body))
        handler = getattr(self, "on_" + request.match_info["name"])
        try:
            response: web.StreamResponse = await handler(request, body)
        except (asyncio.CancelledError, ConnectionError):
            self.disconnected.set()
            raise
        return response

    async def on_json(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"temp": 21, "sky": "clear", "got": json.loads(body or b"null")})

    async def on_query(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response([list(pair) for pair in request.query.items()])

    async def on_text(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(text="Sunny, 21 degrees.")

    async def on_empty(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=204)

    async def on_fail(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.Response(status=500, text="database exploded: " + "x" * 5000)

    async def on_redirect(self, request: web.Request, body: bytes) -> web.StreamResponse:
        raise web.HTTPFound(self.url("/json"))

    async def on_headers(self, request: web.Request, body: bytes) -> web.StreamResponse:
        return web.json_response({"headers_you_sent": dict(request.headers)})

    async def on_near_cap(self, request: web.Request, body: bytes) -> web.StreamResponse:
        # the secret straddles the 1024-byte cap: a naive cut would leave its first half
        return web.Response(text="a" * 1014 + WEATHER_KEY + "b" * 2000)

    async def on_huge(self, request: web.Request, body: bytes) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        chunk = b"[" + b"1," * 32767 + b"1]"
        while self.huge_sent < HUGE_TOTAL:
            await response.write(chunk)
            self.huge_sent += len(chunk)
        return response

    async def on_slow(self, request: web.Request, body: bytes) -> web.StreamResponse:
        self.arrived.set()
        await asyncio.Event().wait()  # answers never; only a disconnect ends it
        raise AssertionError("unreachable")


def model_that_uses(fake: FakeUpstream, tool: str, arguments: dict[str, Any], *, forever: bool = False,
                    said: str = "") -> None:
    """Round 1: call `tool` (after saying `said`). Once a tool result is in the history: answer from it."""
    base = text_chunks([])[0]

    async def handler(request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        if messages[-1]["role"] == "tool" and not forever:
            return web.Response(body=sse(text_chunks([f"Result: {messages[-1]['content']}"])),
                                content_type="text/event-stream")
        chunks = [base]
        if said:
            chunks.append({**base, "choices": [{"index": 0, "delta": {"content": said}, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
            "index": 0, "id": f"call_{len(messages)}", "type": "function",
            "function": {"name": tool, "arguments": json.dumps(arguments)}}]}, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        return web.Response(body=sse(chunks), content_type="text/event-stream")

    fake.handler = handler


def tools_file(tmp_path: Path, tools: list[dict[str, Any]], **extra: Any) -> str:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"tools": tools, **extra}))
    return str(path)


def weather_tool(url: str, timeout: float = 3) -> dict[str, Any]:
    return {"name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
            "http": {"url": url, "method": "POST", "timeout": timeout,
                     "headers": {"Authorization": "Bearer ${env.WEATHER_KEY}"}}}
