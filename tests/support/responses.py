"""The Responses API tests' shared pieces: the bridge's environment, scripted upstream answers,
the official SDK and a raw WebSocket client pointed at the bridge."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import openai
from aiohttp import WSMsgType, web

from tests.support.app import sdk_client
from tests.support.strict_openai import refusal
from tests.support.upstream import FakeUpstream, sse

TOKEN = "bridge-token-abcdef"


USAGE = {"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15,
         "prompt_tokens_details": {"cached_tokens": 8}}


WEATHER = {"type": "function", "name": "get_weather", "description": "The weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


def env_for(fake: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": KEY, "BRIDGE_TOKENS": TOKEN,
            "SPEECH_FILTER": "off", **extra}


def sdk(client: Any, path: str = "/v1", token: str = TOKEN) -> openai.AsyncOpenAI:
    return sdk_client(str(client.make_url(path)), token)


def tool_call_chunks(call_id: str = "call_abc", name: str = "get_weather",
                     pieces: tuple[str, ...] = ('{"city": ', '"Paris"}')) -> list[dict[str, Any]]:
    """A streamed tool call, as OpenAI's Chat Completions sends one."""
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1, "model": "up-model"}

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    chunks = [delta({"role": "assistant", "content": None, "tool_calls": [
        {"index": 0, "id": call_id, "type": "function", "function": {"name": name, "arguments": ""}}]})]
    chunks += [delta({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}) for piece in pieces]
    return [*chunks, delta({}, "tool_calls"), {**base, "choices": [], "usage": USAGE}]


def scripted(fake: FakeUpstream, *replies: list[dict[str, Any]]) -> list[str]:
    """`fake` answers its requests with `replies` in turn (the last one again after that), refusing what
    OpenAI would refuse; returns the refusals (empty when every request was one OpenAI takes)."""
    refusals: list[str] = []
    served = [0]

    async def handler(request: web.Request) -> web.StreamResponse:
        problem = refusal(json.loads(fake.last.body))
        if problem is not None:
            refusals.append(problem)
            return web.json_response({"error": {"message": problem, "type": "invalid_request_error"}}, status=400)
        reply = replies[min(served[0], len(replies) - 1)]
        served[0] += 1
        return web.Response(body=sse(reply), content_type="text/event-stream")

    fake.handler = handler
    return refusals


def sent_messages(fake: FakeUpstream, index: int = -1) -> list[dict[str, Any]]:
    return fake.requests[index].json()["messages"]


async def create(ws: aiohttp.ClientWebSocketResponse, **body: Any) -> list[dict[str, Any]]:
    await ws.send_str(json.dumps({"type": "response.create", "model": "m", **body}))
    return await events_until_done(ws)


def connect(client: Any, path: str = "/v1/responses", **kwargs: Any) -> Any:
    return client.ws_connect(path, headers=kwargs.pop("headers", AUTH), **kwargs)


KEY = "sk-upstream-secret-0123456789"


AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def events_until_done(ws: aiohttp.ClientWebSocketResponse) -> list[dict[str, Any]]:
    """The events of one response, up to its terminal event."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(10):
        while not events or events[-1]["type"] not in TERMINAL:
            message = await ws.receive()
            assert message.type is WSMsgType.TEXT, message
            events.append(json.loads(message.data))
    return events


TERMINAL = ("response.completed", "response.failed", "response.incomplete", "error")
