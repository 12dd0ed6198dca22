"""Tools through the anthropic, ollama and dashscope specs, both ways, on both routes.

The caller's OpenAI `tools` and its history's tool turns reach the provider in the shape its
documentation shows (tests/fixtures/providers/*.json `request_example`); the provider's
documented tool-call answer reaches the caller as OpenAI tool calls, and on IMS's form route
(CALL_TOOLS=hangup) as IMS's hang-up command.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.upstream import FakeUpstream

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
KEY = "sk-tools-0123456789abcdef"
TOOL_SAMPLE = {"anthropic": "tool_use_stream", "ollama": "tool_call_stream", "dashscope": "tool_call_stream"}
CALLED = {"anthropic": "get_weather", "ollama": "get_weather", "dashscope": "get_current_weather"}
WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}
HISTORY = [
    {"role": "user", "content": "What is the weather in Toronto?"},
    {"role": "assistant", "content": "Let me look.",
     "tool_calls": [{"id": "call_1", "type": "function",
                     "function": {"name": "get_weather", "arguments": "{\"city\": \"Toronto\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "11 degrees celsius"},
    {"role": "user", "content": "And in Tokyo?"},
]


def fixture(provider: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{provider}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def replay(fake: FakeUpstream, provider: str, *, rename_to: str | None = None) -> None:
    recorded = fixture(provider)["samples"][TOOL_SAMPLE[provider]]
    raw = recorded["raw"] if rename_to is None else recorded["raw"].replace(CALLED[provider], rename_to)

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=raw.encode(), content_type=recorded["content_type"].split(";")[0])

    fake.handler = handler


def env(provider: str, fake: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"UPSTREAM": provider, "UPSTREAM_BASE_URL": fake.url, "UPSTREAM_API_KEY": KEY, **extra}


def documented_shape(provider: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One tool and the history's tool turns, as the provider's documented request shows them."""
    data = fixture(provider)
    extra = data.get("extra_request_examples", {}).get("tool_result_round_trip_recorded")  # DashScope's
    body = (extra or data["request_example"])["body"]
    tools = body["tools"] if "tools" in body else body["parameters"]["tools"]
    messages = body["messages"] if "messages" in body else body["input"]["messages"]
    return tools[0], [m for m in messages if m["role"] in ("assistant", "tool") or isinstance(m["content"], list)]


@pytest.mark.parametrize("provider", ["anthropic", "ollama", "dashscope"])
async def test_tools_and_tool_turns_reach_the_provider_in_its_shape(bridge, fake_upstream, provider):
    replay(fake_upstream, provider)
    client = await bridge(env(provider, fake_upstream))
    await client.post("/v1/chat/completions", json={"model": "m", "stream": True, "messages": HISTORY,
                                                    "tools": [WEATHER], "tool_choice": "auto"})
    sent = fake_upstream.last.json()
    tools = sent.get("tools") or sent["parameters"]["tools"]
    messages = sent.get("messages") or sent["input"]["messages"]
    doc_tool, doc_turns = documented_shape(provider)
    assert set(tools[0]) == set(doc_tool)  # the documented keys: input_schema for Anthropic, OpenAI's for the others
    turns = [m for m in messages if m["role"] in ("assistant", "tool") or isinstance(m["content"], list)]
    assert [m["role"] for m in turns] == list(dict.fromkeys(m["role"] for m in doc_turns))  # one call, one result
    if provider == "anthropic":
        assert turns[0]["content"] == [{"type": "text", "text": "Let me look."}, {
            "type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Toronto"}}]
        assert turns[1]["content"] == [
            {"type": "tool_result", "tool_use_id": "call_1", "content": "11 degrees celsius"}]
        assert sent["tool_choice"] == {"type": "auto"}
    elif provider == "ollama":
        assert turns[0]["tool_calls"] == [{"function": {"name": "get_weather", "arguments": {"city": "Toronto"}}}]
        assert turns[1] == {"role": "tool", "content": "11 degrees celsius", "tool_name": "get_weather"}
    else:
        assert turns[0]["tool_calls"][0]["id"] == "call_1"
        assert turns[1] == {"role": "tool", "content": "11 degrees celsius", "tool_call_id": "call_1"}


@pytest.mark.parametrize("provider", ["anthropic", "ollama", "dashscope"])
async def test_a_providers_tool_call_reaches_the_caller_as_openai_tool_calls(bridge, fake_upstream, provider):
    replay(fake_upstream, provider)
    client = await bridge(env(provider, fake_upstream))
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": HISTORY, "tools": [WEATHER]})
    choice = (await resp.json())["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    calls = choice["message"]["tool_calls"]
    assert calls[0]["type"] == "function" and calls[0]["function"]["name"] == CALLED[provider]
    assert isinstance(json.loads(calls[0]["function"]["arguments"]), dict) and calls[0]["id"]


@pytest.mark.parametrize("provider", ["anthropic", "ollama", "dashscope"])
async def test_on_the_form_route_a_hangup_call_becomes_the_ims_command(bridge, fake_upstream, provider):
    replay(fake_upstream, provider, rename_to="hangup")
    client = await bridge(env(provider, fake_upstream, CALL_TOOLS="hangup", HANGUP_WORDS="Goodbye then."))
    resp = await client.post("/", data={"Message": "thanks, bye"})
    text = (await resp.json())["Text"]
    assert text.startswith('<imsagent_hangup endword="') and text.endswith('"/>')
    sent = fake_upstream.last.json()
    tools = sent.get("tools") or sent["parameters"]["tools"]
    assert [t.get("name") or t["function"]["name"] for t in tools] == ["hangup"]


async def test_anthropic_gets_top_p_only_without_temperature(bridge, fake_upstream):
    replay(fake_upstream, "anthropic")
    client = await bridge(env("anthropic", fake_upstream))
    for params, sent_keys in (({"temperature": 0.2, "top_p": 0.9}, {"temperature"}), ({"top_p": 0.9}, {"top_p"})):
        await client.post("/v1/chat/completions", json={"model": "m", "messages": HISTORY[:1], **params})
        assert set(fake_upstream.last.json()) & {"temperature", "top_p"} == sent_keys


async def test_anthropics_overloaded_event_at_stream_start_is_retried_like_a_529(bridge, fake_upstream):
    calls = {"n": 0}
    overloaded = fixture("anthropic")["samples"]["error_event_overloaded"]["raw"]
    answer = fixture("anthropic")["samples"]["text_stream"]["raw"]

    async def once_overloaded(request: web.Request) -> web.Response:
        calls["n"] += 1
        return web.Response(body=(overloaded if calls["n"] == 1 else answer).encode(),
                            content_type="text/event-stream")

    fake_upstream.handler = once_overloaded
    client = await bridge(env("anthropic", fake_upstream, SPEECH_FILTER="off"))
    resp = await client.post("/", data={"Message": "hi"})
    assert (await resp.json()) == {"Text": "Hello!"} and calls["n"] == 2
