"""Fake upstreams: a real aiohttp server on 127.0.0.1 that records every request and answers as OpenAI does."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer


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


def tool_call_answer(name: str, arguments: dict[str, Any], said: str = "") -> list[dict[str, Any]]:
    """chat.completion.chunk payloads of an answer that calls `name` in one delta (after saying `said`)."""
    base = text_chunks([])[0]
    chunks = [base]
    if said:
        chunks.append({**base, "choices": [{"index": 0, "delta": {"content": said}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
        "index": 0, "id": "call_9", "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)}}]}, "finish_reason": None}]})
    chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
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

    async def start(self) -> None:
        """Listen on a free loopback port; every path and method reaches `_dispatch`."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

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


def held_upstream(fake: FakeUpstream) -> None:
    """A stream that says one thing and then nothing; a form answer that never comes."""

    async def handler(request: web.Request) -> web.StreamResponse:
        text = (await request.json())["messages"][-1]["content"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if text == "stream":
            await response.write(sse(text_chunks(["first half"])[:2], done=False))
        await fake.disconnected.wait()
        return response

    fake.handler = handler
