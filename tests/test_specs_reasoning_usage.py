"""Reasoning and usage extras at the driver level, for both kinds of upstream.

The pipeline renders them (REASONING=pass, usage extras in OpenAI's usage object); the drivers'
part is to hand them over: reasoning as `Reasoning` events, never as `TextDelta`, and the
provider's usage extras in `Usage.details`. Each driver runs against a fake provider on
127.0.0.1 speaking its wire format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bridge.config import read_settings
from bridge.events import Event, Reasoning, TextDelta, Usage
from bridge.request import ChatRequest
from bridge.upstreams import build_upstream
from bridge.upstreams.openai.stream import MAX_EXTRAS, read_usage
from bridge.upstreams.openai.wire import completion_events
from tests.support import spec_fakes as fakes
from tests.support.upstream import FakeUpstream

SPECS = Path(__file__).resolve().parents[1] / "specs"
KEY = "sk-reasoning-0123456789"


async def events_of(upstream_name: str, fake: FakeUpstream, **env: str) -> list[Event]:
    settings = read_settings({"UPSTREAM_BASE_URL": fake.url, "OPENAI_BASE_URL": fake.url, "UPSTREAM_API_KEY": KEY,
                                  **env})
    upstream = build_upstream(upstream_name, settings)
    try:
        request = ChatRequest([{"role": "user", "content": "hi"}], model="m", route="test")
        return [e async for batch in upstream.stream(request) for e in batch]
    finally:
        await upstream.aclose()


def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, Any] | None = None) -> str:
    body: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": delta, "finish_reason": finish}]}
    if usage is not None:
        body = {"id": "c", "object": "chat.completion.chunk", "choices": [], "usage": usage}
    return f"data: {json.dumps(body)}\n\n"


DEEPSEEK_USAGE = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30, "prompt_cache_hit_tokens": 6,
                  "prompt_cache_miss_tokens": 4, "completion_tokens_details": {"reasoning_tokens": 12}}
OPENROUTER_USAGE = {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30, "cost": 0.00042,
                    "is_byok": False, "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": None},
                    "cost_details": {"upstream_inference_cost": None}, "note": "text is not an extra"}


@pytest.mark.parametrize("upstream", ["openai", str(SPECS / "openai.json")])
async def test_reasoning_deltas_are_reasoning_in_every_shape(upstream: str, fake_upstream: FakeUpstream) -> None:
    """DeepSeek's reasoning_content beside role, beside content, alone; OpenRouter's reasoning."""
    fake_upstream.handler = fakes.raw_stream([
        chunk({"role": "assistant", "reasoning_content": "First"}),
        chunk({"content": None, "reasoning_content": " think."}),
        chunk({"reasoning": " Then"}),
        chunk({"content": "Hi", "reasoning_content": " answer."}),
        chunk({"content": "!"}, finish="stop"),
        chunk({}, usage=DEEPSEEK_USAGE), "data: [DONE]\n\n"])
    events = await events_of(upstream, fake_upstream)
    assert "".join(e.text for e in events if type(e) is Reasoning) == "First think. Then answer."
    assert "".join(e.text for e in events if type(e) is TextDelta) == "Hi!"


async def test_openai_usage_extras_reach_the_usage_event(fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.raw_stream([chunk({"content": "Hi"}, finish="stop"), chunk({}, usage=DEEPSEEK_USAGE),
                                              "data: [DONE]\n\n"])
    usage = next(e for e in await events_of("openai", fake_upstream) if type(e) is Usage)
    assert (usage.prompt_tokens, usage.completion_tokens) == (10, 20)
    assert usage.details == {"prompt_cache_hit_tokens": 6, "prompt_cache_miss_tokens": 4,
                             "completion_tokens_details": {"reasoning_tokens": 12}}
    assert usage.as_dict() == DEEPSEEK_USAGE


def test_usage_extras_keep_numbers_only_and_a_bounded_count() -> None:
    assert read_usage(OPENROUTER_USAGE).details == {"cost": 0.00042, "prompt_tokens_details": {"cached_tokens": 0},
                                                    "cost_details": {}}
    many = {"prompt_tokens": 1, "completion_tokens": 1, **{f"x{i}": i for i in range(MAX_EXTRAS + 10)}}
    assert len(read_usage(many).details) == MAX_EXTRAS
    assert read_usage({"prompt_tokens": 1, "completion_tokens": 1, "bad": float("inf"), "neg": -1}).details == {}


def test_a_whole_json_answer_keeps_its_reasoning_apart() -> None:
    events = completion_events({"choices": [{"message": {"role": "assistant", "content": "Hi",
                                                         "reasoning_content": "Hmm."}, "finish_reason": "stop"}],
                                "usage": {"prompt_tokens": 3, "completion_tokens": 4, "prompt_cache_hit_tokens": 2}})
    assert [type(e).__name__ for e in events] == ["Reasoning", "TextDelta", "Finish", "Usage"]
    assert (events[0], events[1]) == (Reasoning("Hmm."), TextDelta("Hi"))
    assert events[-1] == Usage(3, 4, details={"prompt_cache_hit_tokens": 2})


async def test_spec_usage_extras_as_openai_details(fake_upstream: FakeUpstream) -> None:
    """A spec's usage.cached_tokens / usage.reasoning_tokens become OpenAI's detail objects (Anthropic's cache)."""
    message_start = {"type": "message_start", "message": {"usage": {
        "input_tokens": 50, "cache_read_input_tokens": 100000, "cache_creation_input_tokens": 0, "output_tokens": 1}}}
    frames = [f"event: message_start\ndata: {json.dumps(message_start)}\n\n",
              'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
              '"delta":{"type":"text_delta","text":"Hi"}}\n\n',
              'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},'
              '"usage":{"output_tokens":5}}\n\n',
              'event: message_stop\ndata: {"type":"message_stop"}\n\n']
    fake_upstream.handler = fakes.raw_stream(frames)
    usage = next(e for e in await events_of("anthropic", fake_upstream) if type(e) is Usage)
    assert (usage.prompt_tokens, usage.completion_tokens) == (100050, 5)
    assert usage.as_dict()["prompt_tokens_details"] == {"cached_tokens": 100000}
