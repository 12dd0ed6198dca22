"""The socket platforms as clients: ConversationRelay (Twilio, Telnyx) and Retell, each sending
the messages their documentation shows (tests/fixtures/platforms/sockets/, sources inside) over
aiohttp's WebSocket client, and reading the bridge's answers the way the platform would."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from tests.support.strict_openai import refusal
from tests.support.upstream import FakeUpstream, sse, tool_call_answer

FIXTURES = Path(__file__).parents[1] / "fixtures" / "platforms" / "sockets"
WAIT = 5.0  # seconds any one message may take to arrive


def fixture(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


TWILIO = fixture("twilio_conversation_relay")
TELNYX = fixture("telnyx_conversation_relay")
RETELL = fixture("retell_llm_websocket")


class Client:
    """One platform's end of a socket."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, documented: dict[str, Any]) -> None:
        self.ws = ws
        self.documented = documented

    def message(self, name: str, **changes: Any) -> dict[str, Any]:
        """The documented message `name`, with `changes` (the values of this call)."""
        return {**self.documented["from_platform"][name], **changes}

    async def send(self, name: str, **changes: Any) -> None:
        await self.ws.send_json(self.message(name, **changes))

    async def next(self, timeout: float = WAIT) -> dict[str, Any]:
        """The bridge's next message (a JSON text frame); AssertionError when the socket closed instead."""
        msg = await self.ws.receive(timeout)
        assert msg.type is aiohttp.WSMsgType.TEXT, f"expected a message, got {msg.type} {msg.data!r}"
        return json.loads(msg.data)  # type: ignore[no-any-return]

    async def closed(self, timeout: float = WAIT) -> int:
        """Read until the bridge closes the socket; its close code."""
        async with asyncio.timeout(timeout):
            while True:
                msg = await self.ws.receive()
                if msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.CLOSING):
                    return self.ws.close_code or 0


class RelayClient(Client):
    """ConversationRelay: `setup` first; the answer is `text` tokens up to the one with `last: true`."""

    async def answer(self) -> tuple[str, list[dict[str, Any]]]:
        """One answer: the words said, and every message up to and including `last: true`."""
        messages = []
        while True:
            message = await self.next()
            messages.append(message)
            if message.get("type") == "text" and message.get("last") is True:
                return "".join(m["token"] for m in messages if m.get("type") == "text"), messages

    async def ask(self, words: str) -> str:
        """Say `words` (the documented prompt, final) and hear the answer."""
        name = "prompt" if "prompt" in self.documented["from_platform"] else "prompt_partial"  # Telnyx's page
        await self.send(name, voicePrompt=words, last=True)
        said, _ = await self.answer()
        return said


class RetellClient(Client):
    """Retell: the bridge speaks first (config, begin); answers are `response` events per response_id."""

    async def opening(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return await self.next(), await self.next()

    async def response(self, response_id: int) -> tuple[str, list[dict[str, Any]]]:
        """The response to `response_id`: its content, and its events up to `content_complete`."""
        events = []
        while True:
            event = await self.next()
            if event.get("response_type") != "response" or event.get("response_id") != response_id:
                continue
            events.append(event)
            if event["content_complete"]:
                return "".join(e["content"] for e in events), events

    def request(self, response_id: int, transcript: list[tuple[str, str]],
                kind: str = "response_required") -> dict[str, Any]:
        return self.message(kind, response_id=response_id,
                            transcript=[{"role": role, "content": content} for role, content in transcript])

    async def ask(self, response_id: int, transcript: list[tuple[str, str]]) -> str:
        await self.ws.send_json(self.request(response_id, transcript))
        said, _ = await self.response(response_id)
        return said


def socket_url(base: str, path: str) -> str:
    return base.replace("http://", "ws://", 1) + path


ANSWER = ["Life is", " a journey."]


Reply = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]


def upstream_env(fake: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-up", **extra}


def messages_sent(fake: FakeUpstream, i: int = -1) -> list[dict[str, Any]]:
    return fake.requests[i].json()["messages"]  # type: ignore[no-any-return]


def strict(fake: FakeUpstream, reply: Reply) -> list[str]:
    """`fake` refuses what OpenAI refuses (tests/strict_openai.py) and answers a valid request with `reply`."""
    refused: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        problem = refusal(body)
        if problem is not None:
            refused.append(problem)
            return web.json_response({"error": {"message": problem, "type": "invalid_request_error"}}, status=400)
        return await reply(request, body)

    fake.handler = handler
    return refused


def tool_call(name: str, arguments: dict[str, Any], said: str = "") -> Reply:
    """An answer that calls `name` (after saying `said`), as OpenAI streams a tool call."""
    async def reply(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=sse(tool_call_answer(name, arguments, said)), content_type="text/event-stream")

    return reply
