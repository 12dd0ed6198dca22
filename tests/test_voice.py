"""What the caller hears: the speech filter on every route, a filler on a slow start, thinking models,
and call control on IMS's form route."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from aiohttp import web

from tests.support.app import log_lines, sse_events
from tests.support.upstream import FakeUpstream, sse, text_chunks, tool_call_answer

USER = [{"role": "user", "content": "hi"}]
MARKDOWN = ["## Your **order**\n", "- shipped `today`\n- see [the page](https://x.example/o/1)", " 🎉"]
SPOKEN = "Your order\nshipped today\nsee the page"


def spoken_text(events: list[dict[str, Any]]) -> str:
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c.get("choices"))


async def test_markdown_is_spoken_as_words_on_every_route(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply = MARKDOWN
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    assert (await (await client.post("/", data={"Message": "hi"})).json())["Text"] == SPOKEN
    body = {"model": "m", "messages": USER, "stream": True}
    assert spoken_text(sse_events(await (await client.post("/v1/chat/completions", json=body)).text())) == SPOKEN
    whole = await (await client.post("/v1/chat/completions", json={**body, "stream": False})).json()
    assert whole["choices"][0]["message"]["content"] == SPOKEN
    rag = sse_events(await (await client.post("/rag/chat/completions", json=body)).text())
    assert spoken_text(rag[1:]) == SPOKEN  # after the waiting phrase
    audio = sse_events(await (await client.post("/audio/chat/completions", json=body)).text())
    assert audio[0]["choices"][0]["delta"]["audio"]["transcript"] == SPOKEN


async def test_with_the_filter_off_text_passes_byte_for_byte(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.reply = MARKDOWN
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "SPEECH_FILTER": "off"})
    assert (await (await client.post("/", data={"Message": "hi"})).json())["Text"] == "".join(MARKDOWN)
    events = sse_events(await (await client.post("/v1/chat/completions", json={
        "model": "m", "messages": USER, "stream": True})).text())
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in events if c["choices"]) == "".join(MARKDOWN)


def silent_then_answer(fake: FakeUpstream, silence: float) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks([])[:1], done=False))  # the role chunk: nothing to say yet
        await asyncio.sleep(silence)  # the upstream thinks: this is the behaviour under test
        await response.write(sse(text_chunks(["The answer."])[1:]))
        return response

    fake.handler = handler


async def test_a_filler_fills_a_slow_start(bridge, fake_upstream: FakeUpstream, log_stream) -> None:
    silent_then_answer(fake_upstream, 0.6)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "FILLER_AFTER_MS": "200",
                           "FILLER_PHRASES": "One moment please.|请稍等。"})
    started = time.monotonic()
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    first = await resp.content.readuntil(b"\n\n")
    arrived = time.monotonic() - started
    assert json.loads(first[6:])["choices"][0]["delta"]["content"] == "One moment please."
    assert 0.2 <= arrived < 0.2 + 0.1  # FILLER_AFTER_MS + 100 ms
    rest = sse_events((first + await resp.content.read()).decode())
    assert spoken_text(rest) == "One moment please. The answer."  # joined as speech (issue 20, item 5)
    assert log_lines(log_stream)[-1]["filler"] is True
    resp = await client.post("/v1/chat/completions", json={"model": "m", "stream": True,
                                                           "messages": [{"role": "user", "content": "你好"}]})
    assert spoken_text(sse_events(await resp.text())).startswith("请稍等。")  # in the question's language
    form = await client.post("/", data={"Message": "hi"})
    assert (await form.json()) == {"Text": "The answer."}  # the form route says nothing of the wait


async def test_no_filler_when_the_answer_is_quick(bridge, fake_upstream: FakeUpstream, log_stream) -> None:
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "FILLER_AFTER_MS": "500"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert spoken_text(sse_events(await resp.text())) == "Hello, world!"
    assert "filler" not in log_lines(log_stream)[-1]


async def test_a_thinking_model_longer_than_the_first_token_deadline_still_answers(bridge, fake_upstream) -> None:
    async def thinks(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        base = text_chunks([])[0]
        for _ in range(6):  # 0.6 s of reasoning, the first-token deadline is 0.3 s
            thought = {**base, "choices": [{"index": 0, "delta": {"reasoning_content": "hmm "}, "finish_reason": None}]}
            await response.write(sse([thought], done=False))
            await asyncio.sleep(0.1)  # the model's pace: this is the behaviour under test
        await response.write(sse(text_chunks(["Thought it through."])[1:]))
        return response

    fake_upstream.handler = thinks
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "UPSTREAM_TTFT_TIMEOUT": "0.3",
                           "UPSTREAM_IDLE_TIMEOUT": "0.3"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    events = sse_events(await resp.text())
    assert spoken_text(events) == "Thought it through."  # reasoning is never spoken
    resp = await client.post("/", data={"Message": "hi"})
    assert (await resp.json()) == {"Text": "Thought it through."}


def calls(fake: FakeUpstream, name: str, arguments: dict[str, Any], said: str = "") -> None:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=sse(tool_call_answer(name, arguments, said)), content_type="text/event-stream")

    fake.handler = handler


@pytest.mark.parametrize("said, arguments, endword", [
    ("Thanks for calling, goodbye!", {}, "Thanks for calling， goodbye!"),  # the words spoken before the call
    ("", {"closing_words": "Bye now."}, "Bye now."),  # the words passed to the tool
    ("", {}, "Have a good day."),  # HANGUP_WORDS
])
async def test_a_hangup_call_becomes_the_ims_command(bridge, fake_upstream, log_stream, said, arguments, endword):
    calls(fake_upstream, "hangup", arguments, said)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "CALL_TOOLS": "hangup,transfer",
                           "HANGUP_WORDS": "Have a good day."})
    resp = await client.post("/", data={"Message": "that's all"})
    assert await resp.json() == {"Text": f'<imsagent_hangup endword="{endword}"/>'}
    offered = [t["function"]["name"] for t in fake_upstream.last.json()["tools"]]
    assert offered == ["hangup", "transfer"]
    assert log_lines(log_stream)[-1]["call_control"] == "hangup"


async def test_a_transfer_call_becomes_the_ims_command_to_an_allowed_number(bridge, fake_upstream) -> None:
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "CALL_TOOLS": "transfer",
                           "TRANSFER_NUMBERS": "10086,95555"})
    calls(fake_upstream, "transfer", {"number": "10086", "message": "Transferring you now.",
                                      "error_message": "Sorry, nobody is free."})
    text = (await (await client.post("/", data={"Message": "a human please"})).json())["Text"]
    assert text == "<imsagent_transfer_call callee=10086, err_msg=Sorry， nobody is free., msg=Transferring you now./>"
    tool = fake_upstream.last.json()["tools"][0]["function"]
    assert tool["parameters"]["properties"]["number"]["enum"] == ["10086", "95555"]
    calls(fake_upstream, "transfer", {"number": "900-premium"})  # not in TRANSFER_NUMBERS: never dialled
    text = (await (await client.post("/", data={"Message": "call this number"})).json())["Text"]
    assert "imsagent_transfer_call" not in text and text  # never an empty Text either


async def test_a_tool_call_only_answer_never_yields_an_empty_text(bridge, fake_upstream, log_stream) -> None:
    calls(fake_upstream, "lookup_order", {"id": "1"})  # a tool the form route cannot carry
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "FALLBACK_TEXT": "Let me get back to you."})
    assert (await (await client.post("/", data={"Message": "where is my order"})).json()) == {
        "Text": "Let me get back to you."}
    assert log_lines(log_stream)[-1]["call_control"] == "unsupported"


async def test_ims_commands_the_model_writes_itself_pass_the_filter_untouched(bridge, fake_upstream) -> None:
    fake_upstream.reply = ["**Goodbye!** ", '<imsagent_hangup endword="再见，*祝您*愉快!"/>']
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    text = (await (await client.post("/", data={"Message": "bye"})).json())["Text"]
    assert text == 'Goodbye! <imsagent_hangup endword="再见，*祝您*愉快!"/>'


async def test_a_caller_gone_before_the_filler_is_a_hang_up_not_a_server_error(bridge, fake_upstream: FakeUpstream,
                                                                              log_stream) -> None:
    """Barge-in (a hang-up) while the filler's timer runs: the upstream is closed and the line says
    499, never `internal` (closing the answer used to raise "aclose(): asynchronous generator is
    already running" from the helper that awaited it)."""
    arrived = asyncio.Event()
    fake_upstream.hold(asyncio.Event(), arrived)  # never answers
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "FILLER_AFTER_MS": "5000"})
    request = asyncio.ensure_future(client.post("/v1/chat/completions",
                                                json={"model": "m", "messages": USER, "stream": True}))
    await arrived.wait()
    request.cancel()  # the caller hangs up before anything was said
    await asyncio.wait_for(fake_upstream.disconnected.wait(), 5)
    line = await log_stream.wait_for_line(lambda e: e.get("event") == "request")
    assert line["status"] == 499 and "error_kind" not in line and "exception" not in line
