"""Upstream chunks that are valid JSON of the wrong shape: `upstream_protocol`, never a 500 or bad text.

Each shape is sent before any text (the caller gets a 502, or the form its failure phrase)
and after some (the stream ends with an error event and [DONE]), on both OpenAI drivers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from bridge.config import DEFAULT_FAILURE_TEXT
from tests.support.app import log_lines
from tests.support.upstream import FakeUpstream, sse, text_chunks

USER = [{"role": "user", "content": "hi"}]


def choice(**fields: Any) -> dict[str, Any]:
    return {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m", "choices": [fields]}


SHAPES: dict[str, dict[str, Any]] = {
    "choices_string": {"choices": "abc"},
    "choices_number": {"choices": 5},
    "choices_object": {"choices": {"index": 0}},
    "choice_not_object": {"choices": ["x"]},
    "delta_string": choice(index=0, delta="hi"),
    "content_number": choice(index=0, delta={"content": 5}),
    "content_object": choice(index=0, delta={"content": {"text": "hi"}}),
    "finish_number": choice(index=0, delta={}, finish_reason=5),
    "tool_calls_number": choice(index=0, delta={"tool_calls": 5}),
    "tool_index_string": choice(index=0, delta={"tool_calls": [{"index": "abc", "function": {"name": "f"}}]}),
    "tool_function_string": choice(index=0, delta={"tool_calls": [{"index": 0, "function": "f"}]}),
    "usage_list": {"choices": [], "usage": [1, 2]},
    "usage_string_count": {"choices": [], "usage": {"prompt_tokens": "many", "completion_tokens": 1}},
    "usage_beyond_64_bits": {"choices": [], "usage": {"prompt_tokens": 2**70, "completion_tokens": 1}},
    "chunk_is_list": [1, 2, 3],
}


@pytest.fixture(params=["aiohttp", "sdk"])
def bridge_defaults(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"OPENAI_CLIENT": request.param, "SPEECH_FILTER": "off"}


def serve(fake: FakeUpstream, bad: Any, *, after_text: bool) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        good = text_chunks(["partial"])[:2] if after_text else text_chunks([])[:1]
        body = sse(good, done=False) + b"data: " + json.dumps(bad).encode() + b"\n\n" + b"data: [DONE]\n\n"
        return web.Response(body=body, content_type="text/event-stream")

    fake.handler = handler


@pytest.mark.parametrize("shape", SHAPES)
async def test_before_any_text_it_is_a_502_or_the_failure_phrase(bridge, fake_upstream, log_stream, shape):
    serve(fake_upstream, SHAPES[shape], after_text=False)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "upstream_protocol"
    resp = await client.post("/", data={"Message": "hi"})
    assert (resp.status, await resp.json()) == (200, {"Text": DEFAULT_FAILURE_TEXT})
    line = log_lines(log_stream)[-1]
    assert line["error_kind"] == "upstream_protocol" and line["status"] == 200


@pytest.mark.parametrize("shape", SHAPES)
async def test_after_text_the_stream_ends_with_an_error_event(bridge, fake_upstream, shape):
    serve(fake_upstream, SHAPES[shape], after_text=True)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert resp.status == 200
    events = [e.removeprefix("data: ") for e in (await resp.text()).split("\n\n") if e]
    assert json.loads(events[0])["choices"][0]["delta"]["content"] == "partial"
    assert json.loads(events[-2])["error"]["code"] == "upstream_protocol"
    assert events[-1] == "[DONE]"
    for event in events[:-2]:  # only string content ever reaches the caller
        content = json.loads(event)["choices"][0]["delta"].get("content")
        assert content is None or isinstance(content, str)
