"""ConversationRelay (Twilio, Telnyx) end to end: a client sending the documented messages, the real
app, a strict OpenAI upstream. Turns, history, barge-in, keypad, call control, bad input, metrics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from bridge.config import DEFAULT_FAILURE_TEXT
from tests.support.app import BridgeFactory, LogStream, log_lines
from tests.support.socket_clients import (
    ANSWER,
    TELNYX,
    TWILIO,
    RelayClient,
    Reply,
    messages_sent,
    strict,
    tool_call,
    upstream_env,
)
from tests.support.strict_openai import strict_openai
from tests.support.tool_servers import WeatherToolServer, model_that_uses, tools_file, weather_tool
from tests.support.upstream import FakeUpstream, sse, text_chunks


async def relay(client: TestClient, documented: dict[str, Any] = TWILIO, path: str = "/conversation-relay",
                **headers: str) -> RelayClient:
    ws = await client.ws_connect(path, headers=headers)
    return RelayClient(ws, documented)


async def connected(client: TestClient, documented: dict[str, Any] = TWILIO) -> RelayClient:
    """A session past its documented `setup`."""
    platform = await relay(client, documented)
    await platform.send("setup")
    return platform


def lines(stream: LogStream, event: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(stream) if line.get("event") == event]


async def session_line(stream: LogStream) -> dict[str, Any]:
    return await stream.wait_for_line(lambda r: r.get("event") == "request" and r.get("status") == 101)


def first_held(fake: FakeUpstream, release: asyncio.Event) -> Reply:
    """The first answer says "first half" and then waits for `release` (or the bridge hanging up);
    the others are ANSWER."""

    async def reply(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if len(fake.requests) > 1:
            return web.Response(body=sse(text_chunks(ANSWER)), content_type="text/event-stream")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(["first half"])[:2], done=False))
        await release.wait()
        await response.write(sse(text_chunks([" second half"])[1:]))
        return response

    return reply


# -- turns and history -------------------------------------------------------------------------


async def test_turns_keep_the_history_and_end_with_exactly_one_last(
        bridge: BridgeFactory, fake_upstream: FakeUpstream, log_stream: LogStream) -> None:
    refused = strict_openai(fake_upstream, ANSWER)
    client = await bridge(upstream_env(fake_upstream, SYSTEM_PROMPT="Be brief."))
    platform = await connected(client)
    await platform.send("prompt")
    said, messages = await platform.answer()
    assert said == "Life is a journey."
    assert [m["last"] for m in messages] == [False] * (len(messages) - 1) + [True]
    assert await platform.ask("And what about death?") == "Life is a journey."
    assert messages_sent(fake_upstream) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi! Can you tell me about life?"},
        {"role": "assistant", "content": "Life is a journey."},
        {"role": "user", "content": "And what about death?"},
    ]
    assert refused == [] and fake_upstream.last.json()["stream"] is True
    await platform.ws.close()
    line = await session_line(log_stream)
    assert line["platform"] == "twilio" and line["route"] == "/conversation-relay"
    assert line["callSid"] == TWILIO["from_platform"]["setup"]["callSid"]
    assert line["sessionId"] == TWILIO["from_platform"]["setup"]["sessionId"]
    assert line["from"] == "+18*****0100" and line["to"] == "+18*****0101"
    assert line["turns"] == 2 and line["interrupts"] == 0 and line["end_reason"] == "closed"
    turns = lines(log_stream, "turn")
    assert [t["turn"] for t in turns] == [1, 2] and {t["outcome"] for t in turns} == {"done"}
    assert all(t["session"] == line["session"] and t["callSid"] == line["callSid"] for t in turns)
    assert turns[0]["usage"]["prompt_tokens"] == 21 and turns[0]["ttft_ms"] >= 0
    assert turns[0]["upstream"] == "openai"


async def test_the_short_setup_of_the_older_page_and_the_greeting(
        bridge: BridgeFactory, fake_upstream: FakeUpstream) -> None:
    strict_openai(fake_upstream, ANSWER)
    client = await bridge(upstream_env(fake_upstream, GREETING="Hello, this is Ada."))
    platform = await relay(client)
    await platform.send("setup_short")
    assert await platform.next() == {"type": "text", "token": "Hello, this is Ada.", "last": True}
    assert await platform.ask("hi") == "Life is a journey."
    assert messages_sent(fake_upstream) == [{"role": "assistant", "content": "Hello, this is Ada."},
                                            {"role": "user", "content": "hi"}]


async def test_history_is_capped_by_max_history(bridge: BridgeFactory, fake_upstream: FakeUpstream) -> None:
    strict_openai(fake_upstream, ["ok"])
    client = await bridge(upstream_env(fake_upstream, MAX_HISTORY="3"))
    platform = await connected(client)
    for i in range(5):
        assert await platform.ask(f"question {i}") == "ok"
    assert messages_sent(fake_upstream) == [{"role": "assistant", "content": "ok"},
                                            {"role": "user", "content": "question 3"},
                                            {"role": "assistant", "content": "ok"},
                                            {"role": "user", "content": "question 4"}][-3:]


async def test_telnyx_setup_and_partial_prompts(bridge: BridgeFactory, fake_upstream: FakeUpstream,
                                                log_stream: LogStream) -> None:
    strict_openai(fake_upstream, ANSWER)
    client = await bridge(upstream_env(fake_upstream))
    platform = await connected(client, TELNYX)
    await platform.send("prompt_partial")  # "hello there", last: false
    await platform.send("prompt_partial", voicePrompt="I need help", last=True)
    assert (await platform.answer())[0] == "Life is a journey."
    assert messages_sent(fake_upstream)[-1] == {"role": "user", "content": "hello there I need help"}
    await platform.send("prompt_partial", voicePrompt="book a")  # cumulative partials: the final repeats them
    await platform.send("prompt_partial", voicePrompt="book a table", last=True)
    await platform.answer()
    assert messages_sent(fake_upstream)[-1] == {"role": "user", "content": "book a table"}
    assert len(fake_upstream.requests) == 2  # partial prompts are never answered
    await platform.ws.close()
    line = await session_line(log_stream)
    assert line["platform"] == "telnyx" and line["callControlId"].startswith("v2:")
    assert line["from"] == "+13*****0094"


# -- barge-in ----------------------------------------------------------------------------------


async def test_an_interrupt_cancels_the_upstream_and_keeps_only_what_was_heard(
        bridge: BridgeFactory, fake_upstream: FakeUpstream, log_stream: LogStream) -> None:
    release = asyncio.Event()
    refused = strict(fake_upstream, first_held(fake_upstream, release))
    client = await bridge(upstream_env(fake_upstream))
    platform = await connected(client)
    await platform.send("prompt")
    assert await platform.next() == {"type": "text", "token": "first half", "last": False}
    loop = asyncio.get_running_loop()
    sent = loop.time()
    await platform.send("interrupt", utteranceUntilInterrupt="first")
    await asyncio.wait_for(fake_upstream.disconnected.wait(), 0.5)  # the upstream call was cancelled
    assert loop.time() - sent < 0.5
    assert await platform.next() == {"type": "text", "token": "", "last": True}  # the cycle it began is closed
    assert await platform.ask("go on") == "Life is a journey."
    assert messages_sent(fake_upstream)[-3:] == [
        {"role": "user", "content": "Hi! Can you tell me about life?"},
        {"role": "assistant", "content": "first"},  # what the caller heard, not what was sent
        {"role": "user", "content": "go on"},
    ]
    assert refused == []
    release.set()
    turns = lines(log_stream, "turn")
    assert [t["outcome"] for t in turns] == ["interrupted", "done"]
    await platform.ws.close()
    assert (await session_line(log_stream))["interrupts"] == 1


async def test_an_interrupt_after_the_answer_trims_it_and_an_empty_one_drops_it(
        bridge: BridgeFactory, fake_upstream: FakeUpstream) -> None:
    strict_openai(fake_upstream, ANSWER)
    client = await bridge(upstream_env(fake_upstream))
    platform = await connected(client)
    assert await platform.ask("one") == "Life is a journey."
    await platform.send("interrupt_short", utteranceUntilInterrupt="Life")  # durationUntilInterruptMs "460"
    assert await platform.ask("two") == "Life is a journey."
    await platform.send("interrupt", utteranceUntilInterrupt="")
    assert await platform.ask("three") == "Life is a journey."
    assert [m["content"] for m in messages_sent(fake_upstream)] == ["one", "Life", "two", "three"]


async def test_a_new_prompt_while_an_answer_streams_cancels_it(
        bridge: BridgeFactory, fake_upstream: FakeUpstream, log_stream: LogStream) -> None:
    release = asyncio.Event()
    strict(fake_upstream, first_held(fake_upstream, release))
    client = await bridge(upstream_env(fake_upstream))
    platform = await connected(client)
    await platform.send("prompt", voicePrompt="tell me a story")
    assert (await platform.next())["token"] == "first half"
    await platform.send("prompt", voicePrompt="actually, the weather")
    said, messages = await platform.answer()
    assert said == "" and messages == [{"type": "text", "token": "", "last": True}]  # the first cycle, closed
    said, messages = await platform.answer()
    assert said == "Life is a journey." and [m["last"] for m in messages].count(True) == 1
    await asyncio.wait_for(fake_upstream.disconnected.wait(), 1)
    assert [m["content"] for m in messages_sent(fake_upstream)] == ["tell me a story", "first half",
                                                                    "actually, the weather"]
    release.set()
    assert [t["outcome"] for t in lines(log_stream, "turn")] == ["interrupted", "done"]


# -- keypad --------------------------------------------------------------------------------------


async def test_keypad_digits_reach_the_model_as_one_message(bridge: BridgeFactory,
                                                            fake_upstream: FakeUpstream) -> None:
    refused = strict_openai(fake_upstream, ["Thanks."])
    client = await bridge(upstream_env(fake_upstream))
    platform = await connected(client)
    for digit in "42":
        await platform.send("dtmf", digit=digit)
    await platform.send("dtmf", digit="#")  # answered at once; the digits before it were still settling
    assert (await platform.answer())[0] == "Thanks."
    assert len(fake_upstream.requests) == 1 and refused == []
    assert messages_sent(fake_upstream) == [{"role": "user", "content": "[keypad: 42#]"}]
    await platform.send("dtmf")  # the documented "1": answered after the settling pause
    assert (await platform.answer())[0] == "Thanks."
    assert messages_sent(fake_upstream)[-1] == {"role": "user", "content": "[keypad: 1]"}


# -- call control ------------------------------------------------------------------------------


@pytest.mark.parametrize("said, arguments, words", [
    ("Thanks for calling, goodbye!", {}, ""),  # the model's own words were the goodbye
    ("", {"closing_words": "Bye now."}, "Bye now."),
    ("", {}, "Have a good day."),  # HANGUP_WORDS
])
async def test_a_hangup_says_goodbye_then_ends_the_session(
        bridge: BridgeFactory, fake_upstream: FakeUpstream, log_stream: LogStream, said: str,
        arguments: dict[str, Any], words: str) -> None:
    refused = strict(fake_upstream, tool_call("hangup", arguments, said))
    client = await bridge(upstream_env(fake_upstream, CALL_TOOLS="hangup,transfer", HANGUP_WORDS="Have a good day."))
    platform = await connected(client)
    await platform.send("prompt", voicePrompt="that's all, thanks")
    heard, messages = await platform.answer()
    assert heard == said + words and messages[-1] == {"type": "text", "token": words, "last": True}
    assert await platform.next() == {"type": "end", "handoffData": '{"reason":"hangup"}'}
    assert [t["function"]["name"] for t in fake_upstream.last.json()["tools"]] == ["hangup", "transfer"]
    await platform.send("prompt", voicePrompt="wait!")  # the call is ending: nothing more is answered
    await platform.ws.close()
    line = await session_line(log_stream)
    assert line["end_reason"] == "hangup" and len(fake_upstream.requests) == 1 and refused == []
    assert lines(log_stream, "turn")[0]["call_control"] == "hangup"


async def test_a_transfer_ends_the_session_with_the_number_for_the_action_url(
        bridge: BridgeFactory, fake_upstream: FakeUpstream, log_stream: LogStream) -> None:
    strict(fake_upstream, tool_call("transfer", {"number": "+15550100", "message": "Transferring you now."}))
    client = await bridge(upstream_env(fake_upstream, CALL_TOOLS="transfer", TRANSFER_NUMBERS="+15550100",
                                       SESSION_IDLE_TIMEOUT="2"))
    platform = await connected(client)
    await platform.send("prompt", voicePrompt="a human please")
    assert (await platform.answer())[0] == "Transferring you now."
    end = await platform.next()
    assert end["type"] == "end" and json.loads(end["handoffData"]) == {"reason": "transfer", "number": "+15550100"}
    assert await platform.closed() == 1000  # the platform did not close: the bridge does, after the grace
    assert (await session_line(log_stream))["end_reason"] == "transfer"


async def test_a_transfer_to_a_number_not_allowed_is_not_made(bridge: BridgeFactory,
                                                              fake_upstream: FakeUpstream) -> None:
    strict(fake_upstream, tool_call("transfer", {"number": "+19005550199"}, "Let me see."))
    client = await bridge(upstream_env(fake_upstream, CALL_TOOLS="transfer", TRANSFER_NUMBERS="+15550100"))
    platform = await connected(client)
    assert await platform.ask("call this number") == "Let me see."
    assert await platform.ask("still there?") == "Let me see."  # no end message came between


# -- through the pipeline --------------------------------------------------------------------------


async def test_a_failed_upstream_is_the_spoken_failure_phrase(bridge: BridgeFactory, fake_upstream: FakeUpstream,
                                                              log_stream: LogStream) -> None:
    async def down(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "boom"}}, status=500)

    fake_upstream.handler = down
    client = await bridge(upstream_env(fake_upstream))
    platform = await connected(client)
    assert await platform.ask("hello?") == DEFAULT_FAILURE_TEXT
    turn = lines(log_stream, "turn")[-1]
    assert turn["outcome"] == "failed" and turn["error_kind"] == "upstream_http" and turn["failure_phrase"] is True


async def test_a_slow_start_is_covered_by_a_filler_that_stays_out_of_the_history(
        bridge: BridgeFactory, fake_upstream: FakeUpstream) -> None:
    release = asyncio.Event()
    strict(fake_upstream, first_held(fake_upstream, release))

    async def slow(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if len(fake_upstream.requests) == 1:
            await release.wait()
        return web.Response(body=sse(text_chunks(ANSWER)), content_type="text/event-stream")

    strict(fake_upstream, slow)
    client = await bridge(upstream_env(fake_upstream, FILLER_AFTER_MS="50", FILLER_PHRASES="One moment."))
    platform = await connected(client)
    await platform.send("prompt")
    assert await platform.next() == {"type": "text", "token": "One moment.", "last": False}
    release.set()
    assert (await platform.answer())[0] == " Life is a journey."
    await platform.ask("next")
    assert messages_sent(fake_upstream)[1] == {"role": "assistant", "content": "Life is a journey."}


async def test_a_bridge_tool_runs_behind_its_filler(bridge: BridgeFactory, fake_upstream: FakeUpstream,
                                                    weather_server: WeatherToolServer, tmp_path: Path,
                                                    log_stream: LogStream) -> None:
    model_that_uses(fake_upstream, "get_weather", {"city": "Paris"})
    client = await bridge(upstream_env(fake_upstream, WEATHER_KEY="weather-key-123456", BRIDGE_TOOLS=tools_file(
        tmp_path, [weather_tool(weather_server.url("/weather"))], filler="One moment, let me check.")))
    platform = await connected(client)
    await platform.send("prompt", voicePrompt="What's the weather in Paris?")
    said, messages = await platform.answer()
    assert messages[0] == {"type": "text", "token": "One moment, let me check.", "last": False}
    assert said.endswith('Result: {"city":"Paris","sky":"sunny","celsius":21}')
    assert weather_server.bodies == [{"city": "Paris"}]
    await platform.ask("thanks")
    assert messages_sent(fake_upstream)[:3] == [  # the spoken answer joins the history; the tool round does not
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": 'Result: {"city":"Paris","sky":"sunny","celsius":21}'},
        {"role": "user", "content": "thanks"}]
    turn = lines(log_stream, "turn")[0]
    assert [(t["name"], t["outcome"]) for t in turn["tools"]] == [("get_weather", "ok")]


# -- bad input -----------------------------------------------------------------------------------


async def test_malformed_and_unknown_messages_are_ignored(bridge: BridgeFactory, fake_upstream: FakeUpstream,
                                                          log_stream: LogStream) -> None:
    strict_openai(fake_upstream, ANSWER)
    client = await bridge(upstream_env(fake_upstream))
    platform = await relay(client)
    await platform.send("prompt")  # before setup
    await platform.send("setup")
    await platform.ws.send_str("{not json")
    await platform.ws.send_str("[1, 2]")
    await platform.ws.send_bytes(b"\x00\x01")
    await platform.ws.send_json({"type": "mystery", "x": 1})
    await platform.ws.send_json({"type": ["prompt"]})
    await platform.send("prompt", voicePrompt=12)  # not a string: nothing said
    await platform.send("error")  # the platform complains: logged
    assert await platform.ask("still there?") == "Life is a journey."
    await platform.ws.close()
    line = await session_line(log_stream)
    assert line["ignored"] == 7 and line["turns"] == 1
    warnings = [r for r in log_lines(log_stream) if r.get("event") == "socket_message_ignored"]
    assert len(warnings) == 3 and warnings[0]["reason"] == "before setup"  # the first few only
    assert any(r.get("event") == "socket_platform_error" for r in log_lines(log_stream))


async def test_a_message_over_64_kib_closes_the_socket_with_1009(bridge: BridgeFactory,
                                                                 log_stream: LogStream) -> None:
    client = await bridge({"UPSTREAM": "echo"})
    platform = await connected(client)
    await platform.send("prompt", voicePrompt="x" * (64 * 1024))
    assert await platform.closed() == 1009
    assert (await session_line(log_stream))["end_reason"] == "message_too_big"
    platform = await connected(client)  # the process serves on
    assert await platform.ask("hello") == "You said: hello"


async def test_no_setup_or_a_silent_session_is_closed(bridge: BridgeFactory, log_stream: LogStream) -> None:
    client = await bridge({"UPSTREAM": "echo", "SESSION_IDLE_TIMEOUT": "0.3"})
    platform = await relay(client)
    await platform.send("prompt")  # anything but setup does not count
    assert await platform.closed() == 1008
    assert (await session_line(log_stream))["end_reason"] == "setup_timeout"
    platform = await connected(client)
    assert await platform.ask("hi") == "You said: hi"
    assert await platform.closed() == 1000
    await log_stream.wait_for_line(lambda r: r.get("end_reason") == "idle" and r["turns"] == 1)


async def test_a_plain_get_is_told_to_upgrade(bridge: BridgeFactory) -> None:
    client = await bridge({"UPSTREAM": "echo"})
    resp = await client.get("/conversation-relay")
    assert resp.status == 400 and "WebSocket" in (await resp.json())["error"]


async def test_sessions_do_not_share_a_conversation(bridge: BridgeFactory, fake_upstream: FakeUpstream) -> None:
    strict_openai(fake_upstream, ["ok"])
    client = await bridge(upstream_env(fake_upstream))
    first, second = await connected(client), await connected(client)
    assert await first.ask("my PIN is 1234") == "ok"
    assert await second.ask("what is my PIN?") == "ok"
    assert messages_sent(fake_upstream) == [{"role": "user", "content": "what is my PIN?"}]


# -- metrics -------------------------------------------------------------------------------------


async def test_metrics_count_sessions_turns_and_interrupts_by_platform(bridge: BridgeFactory) -> None:
    client = await bridge({"UPSTREAM": "echo"})
    twilio, telnyx = await connected(client), await connected(client, TELNYX)
    await twilio.ask("one")
    await telnyx.ask("two")
    await twilio.send("interrupt")
    await twilio.ask("three")
    text = await (await client.get("/metrics")).text()
    assert 'bridge_socket_sessions{platform="twilio"} 1.0' in text
    assert 'bridge_socket_sessions{platform="telnyx"} 1.0' in text
    assert 'bridge_socket_turns_total{outcome="done",platform="twilio"} 2.0' in text
    assert 'bridge_socket_interrupts_total{platform="twilio"} 1.0' in text
    await twilio.ws.close()
    await twilio.closed()
    for _ in range(50):  # the session ends as the close handshake completes
        text = await (await client.get("/metrics")).text()
        if 'bridge_socket_sessions{platform="twilio"} 0.0' in text:
            break
        await asyncio.sleep(0.02)
    assert 'bridge_socket_sessions{platform="twilio"} 0.0' in text


async def test_binary_pings_keep_nothing_alive_but_a_live_peer(bridge: BridgeFactory) -> None:
    client = await bridge({"UPSTREAM": "echo"})
    platform = await connected(client)
    await platform.ws.ping()
    assert await platform.ask("ping?") == "You said: ping?"
    assert isinstance(platform.ws, aiohttp.ClientWebSocketResponse)
