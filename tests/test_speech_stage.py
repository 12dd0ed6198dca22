"""The speech stage in the pipeline (bridge/pipeline/stages.py), through the real app: pre-filled
reasoning, answers with nothing speakable, and a huge piece filtered without holding the loop."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from bridge.config import DEFAULT_FAILURE_TEXT
from bridge.speech import speakable
from tests.support.app import log_lines
from tests.support.upstream import FakeUpstream, sse, text_chunks


def answers(fake: FakeUpstream, pieces: list[str]) -> None:
    fake.reply = pieces


def content(text: str) -> str:
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return "".join((json.loads(e)["choices"] or [{}])[0].get("delta", {}).get("content") or "" for e in events[:-1])


async def ask(client: Any, **body: Any) -> str:
    resp = await client.post("/v1/chat/completions", json={"model": "m", "stream": True,
                                                           "messages": [{"role": "user", "content": "q"}], **body})
    assert resp.status == 200
    return content(await resp.text())


REASONING = "Okay, the user wants the refund status. Policy: 14 days."
ANSWER = "Your refund is approved."


async def test_think_prefilled_hides_the_whole_reasoning(bridge, fake_upstream):
    answers(fake_upstream, [REASONING[:20], REASONING[20:], "</think>\n\n", ANSWER])
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "THINK_PREFILLED": "on"})
    assert await ask(client) == ANSWER


async def test_without_it_an_orphan_close_is_logged_and_what_follows_is_the_answer(bridge, fake_upstream, log_stream):
    answers(fake_upstream, [REASONING + "</think>" + ANSWER])
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    assert await ask(client) == ANSWER  # one read: everything before </think> was still held
    line = await log_stream.wait_for_line(lambda e: e.get("event") == "request")
    assert line["orphan_think_close"] is True


@pytest.mark.parametrize("answer", ["👍", "---", "🎉 🎉"])
async def test_an_unspeakable_answer_is_logged_and_the_form_speaks_its_phrase(bridge, fake_upstream, log_stream,
                                                                            answer):
    answers(fake_upstream, [answer])
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/", data={"Message": "q"})
    assert await resp.json() == {"Text": DEFAULT_FAILURE_TEXT}
    assert await ask(client) == ""  # no FALLBACK_TEXT: the OpenAI route says nothing, and the log says why
    lines = [e for e in log_lines(log_stream) if e.get("event") == "request"]
    assert [e.get("unspeakable") for e in lines] == [True, True]
    assert "error_kind" not in lines[0]


async def test_a_huge_piece_filtered_in_slices_says_what_the_whole_filter_says(bridge, fake_upstream):
    """A piece over SLICE characters is filtered a slice at a time (the event loop turns between
    them; bench/hostile.py measures /healthz meanwhile): the slices must say exactly what one pass would."""
    huge = "Here: <[![* |**b** `x` [l](u)\n" * 40_000  # about 1.2 MB, markers straddling every slice edge

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks([huge])))
        return response

    fake_upstream.handler = answer
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "MAX_ANSWER_CHARS": str(2 << 20)})
    assert await ask(client) == speakable(huge)
