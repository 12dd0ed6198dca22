"""Socket sessions and the drain, on the real process (`python app.py`): new sockets are refused from
SIGTERM on, open ones end on their own while DRAIN_TIMEOUT lasts (and the process waits for them),
and those still open at its end hear a goodbye, get the platform's end message and a 1001."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.support.processes import server, stop_and_collect, wait_for_log
from tests.support.socket_clients import RETELL, TWILIO, RelayClient, RetellClient, socket_url
from tests.support.upstream import FakeUpstream, sse, text_chunks


async def relay(session: aiohttp.ClientSession, base: str) -> RelayClient:
    platform = RelayClient(await session.ws_connect(socket_url(base, "/conversation-relay")), TWILIO)
    await platform.send("setup")
    return platform


def held_after_first_words(fake: FakeUpstream) -> None:
    """Answers "You asked." at once, except "hold": "Let me" and then nothing until the bridge hangs up."""

    async def handler(request: web.Request) -> web.StreamResponse:
        words = (await request.json())["messages"][-1]["content"]
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if words != "hold":
            await response.write(sse(text_chunks(["You asked."])))
            return response
        await response.write(sse(text_chunks(["Let me"])[:2], done=False))
        await fake.disconnected.wait()
        return response

    fake.handler = handler


async def test_new_sockets_are_refused_and_open_ones_finish_their_call(fake_upstream: FakeUpstream) -> None:
    held_after_first_words(fake_upstream)
    async with server(OPENAI_BASE_URL=fake_upstream.url + "/v1", DRAIN_TIMEOUT="10", DRAIN_DELAY="1") as (
            proc, base, seen):
        assert proc.stdout is not None
        async with aiohttp.ClientSession() as http:
            platform = await relay(http, base)
            assert await platform.ask("before") == "You asked."
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(wait_for_log(proc.stdout, "draining", seen), 5)
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:  # the listener still accepts: 503
                await http.ws_connect(socket_url(base, "/conversation-relay"))
            assert refused.value.status == 503
            assert await platform.ask("during the drain") == "You asked."  # the call goes on
            await platform.ws.close()  # the caller hangs up
            closed = time.monotonic()
            assert await asyncio.wait_for(proc.wait(), 8) == 0
            assert time.monotonic() - closed < 5  # the drain waited for the call, not for DRAIN_TIMEOUT
    lines = [r for r in await stop_and_collect(proc, seen) if r.get("event") == "request"]
    (call,) = [r for r in lines if r["status"] == 101]
    assert call["turns"] == 2 and call["end_reason"] == "closed" and "cut" not in call
    assert [r["status"] for r in lines if r["status"] != 101] == [503]


async def test_at_the_drain_timeout_every_session_hears_goodbye_and_closes_with_1001(
        fake_upstream: FakeUpstream) -> None:
    held_after_first_words(fake_upstream)
    async with server(OPENAI_BASE_URL=fake_upstream.url + "/v1", DRAIN_TIMEOUT="1", UPSTREAM_TTFT_TIMEOUT="30",
                      UPSTREAM_IDLE_TIMEOUT="30", HANGUP_WORDS="Sorry, we have to end the call. Goodbye.") as (
            proc, base, seen):
        async with aiohttp.ClientSession() as http:
            quiet = await relay(http, base)
            assert await quiet.ask("hello") == "You asked."
            busy = await relay(http, base)
            await busy.send("prompt", voicePrompt="hold")
            assert (await busy.next())["token"] == "Let me"
            retell = RetellClient(await http.ws_connect(socket_url(base, "/retell/call_7")), RETELL)
            await retell.opening()
            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            heard = await asyncio.gather(*(goodbye(c) for c in (quiet, busy, retell)))
            code = await asyncio.wait_for(proc.wait(), 5)
            exited = time.monotonic() - signalled
    words = "Sorry, we have to end the call. Goodbye."
    assert heard[0] == ([{"type": "text", "token": words, "last": True},
                         {"type": "end", "handoffData": '{"reason":"shutdown"}'}], 1001)
    assert heard[1] == ([{"type": "text", "token": "", "last": True},  # the cut answer's cycle, closed
                         {"type": "text", "token": words, "last": True},
                         {"type": "end", "handoffData": '{"reason":"shutdown"}'}], 1001)
    assert heard[2] == ([{"response_type": "response", "response_id": 0, "content": words, "content_complete": True,
                          "end_call": True}], 1001)
    assert code == 0 and exited < 1 + 1.0  # DRAIN_TIMEOUT + 1 s
    lines = await stop_and_collect(proc, seen)
    calls = [r for r in lines if r.get("status") == 101]
    assert len(calls) == 3 and all(r["end_reason"] == "shutdown" and r["cut"] is True for r in calls)
    assert {r["error_kind"] for r in calls} == {"shutdown"}
    (cut,) = [r for r in lines if r.get("event") == "turn" and r["outcome"] != "done"]
    assert cut["outcome"] == "failed" and cut["error_kind"] == "shutdown"


async def goodbye(client: RelayClient | RetellClient) -> tuple[list[dict[str, Any]], int]:
    """Everything a platform receives until the bridge closes the socket, and the close code."""
    received = []
    async with asyncio.timeout(5):
        while True:
            msg = await client.ws.receive()
            if msg.type is not aiohttp.WSMsgType.TEXT:
                return received, client.ws.close_code or 0
            received.append(json.loads(msg.data))
