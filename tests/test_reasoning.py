"""REASONING=pass: OpenAI chat callers receive the model's reasoning as `reasoning_content`;
no route whose caller speaks what it gets (the form, Agora's RAG and audio) ever does."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from tests.support.upstream import FakeUpstream, sse

BASE = {"id": "chatcmpl-r", "object": "chat.completion.chunk", "created": 1, "model": "r1"}


def thinking_model(fake: FakeUpstream) -> None:
    """A DeepSeek-R1-style stream: reasoning_content deltas, then the answer."""
    chunks: list[dict[str, Any]] = [
        {**BASE, "choices": [{"index": 0, "delta": {"role": "assistant", "reasoning_content": "Let me think"},
                              "finish_reason": None}]},
        {**BASE, "choices": [{"index": 0, "delta": {"reasoning_content": " about it."}, "finish_reason": None}]},
        {**BASE, "choices": [{"index": 0, "delta": {"content": "It is 42."}, "finish_reason": None}]},
        {**BASE, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
         "usage": {"prompt_tokens": 5, "completion_tokens": 9, "total_tokens": 14,
                   "completion_tokens_details": {"reasoning_tokens": 6}}},
    ]

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(chunks))
        return response

    fake.handler = answer


def deltas(text: str) -> list[dict[str, Any]]:
    events = [e.removeprefix("data: ") for e in text.split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return [json.loads(e)["choices"][0]["delta"] for e in events[:-1] if json.loads(e)["choices"]]


@pytest.mark.parametrize("setting", ["pass", "drop"])
async def test_the_openai_stream_carries_reasoning_only_with_pass(bridge, fake_upstream, setting):
    thinking_model(fake_upstream)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "REASONING": setting})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "stream": True,
                                                           "messages": [{"role": "user", "content": "q"}]})
    got = deltas(await resp.text())
    reasoning = "".join(d.get("reasoning_content", "") for d in got)
    assert reasoning == ("Let me think about it." if setting == "pass" else "")
    assert "".join(d.get("content") or "" for d in got) == "It is 42."


async def test_the_whole_answer_carries_reasoning_and_usage_details(bridge, fake_upstream):
    thinking_model(fake_upstream)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "REASONING": "pass"})
    resp = await client.post("/v1/chat/completions",
                             json={"model": "m", "messages": [{"role": "user", "content": "q"}]})
    body = await resp.json()
    message = body["choices"][0]["message"]
    assert message["content"] == "It is 42." and message["reasoning_content"] == "Let me think about it."
    assert body["usage"]["completion_tokens_details"] == {"reasoning_tokens": 6}


async def test_routes_that_speak_never_get_reasoning(bridge, fake_upstream):
    thinking_model(fake_upstream)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "REASONING": "pass"})
    resp = await client.post("/", data={"Message": "q"})
    assert await resp.json() == {"Text": "It is 42."}
    resp = await client.post("/rag/chat/completions", json={"model": "m", "stream": True,
                                                            "messages": [{"role": "user", "content": "q"}]})
    assert "reasoning_content" not in await resp.text()


@pytest.mark.parametrize("setting", ["pass", "drop"])
async def test_reasoning_passed_on_counts_toward_max_answer_chars(bridge, fake_upstream, setting):
    """A JSON route holds the reasoning it passes on, so MAX_ANSWER_CHARS bounds it too; reasoning
    that is dropped is never held, and does not count."""
    thought = [{**BASE, "choices": [{"index": 0, "delta": {"reasoning_content": "hmm " * 250}, "finish_reason": None}]}
               for _ in range(10)]  # 10,000 characters of thinking
    said = [{**BASE, "choices": [{"index": 0, "delta": {"content": "42."}, "finish_reason": "stop"}]}]

    async def answer(request: web.Request) -> web.Response:
        return web.Response(body=sse(thought + said), content_type="text/event-stream")

    fake_upstream.handler = answer
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "REASONING": setting,
                           "MAX_ANSWER_CHARS": "4096"})
    question = {"model": "m", "messages": [{"role": "user", "content": "q"}]}
    resp = await client.post("/v1/chat/completions", json=question)
    body = await resp.json()
    if setting == "pass":
        assert resp.status == 502 and body["error"]["code"] == "upstream_protocol"
    else:
        assert resp.status == 200 and body["choices"][0]["message"]["content"] == "42."
