"""Every shipped spec against its provider's documented wire samples (tests/fixtures/providers/).

Each sample is replayed byte for byte by a fake provider (status, content type, body as the
documentation or a cited recording shows it, quirks included); the bridge's answer must carry
what the sample means: the text, the tool calls, the finish reason and the usage the fixture's
`expected` records, or the right error kind with the provider's message. Gemini, Cohere and
Coze are checked on every route (OpenAI streamed and not, and the form), their reasoning is
never spoken, and a cut stream from each is a failure on every route.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.config import DEFAULT_FAILURE_TEXT, read_settings
from bridge.events import Reasoning, TextDelta, ToolCallDelta, Usage
from bridge.request import ChatRequest
from bridge.upstreams import build_upstream
from bridge.upstreams.spec import available_specs, load_spec
from bridge.upstreams.spec.finish import OPENAI_REASONS, openai_reason
from tests.support.upstream import FakeUpstream

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
SPECS = Path(__file__).resolve().parents[1] / "specs"
FILES = {"minimax-v2": "minimax_v2", "async-task": "async_task"}
KEY = "sk-documented-0123456789abcdef"

# spec -> samples that answer; (spec, sample) -> the error kind an error sample must give
ANSWERS = {
    "anthropic": ["text_stream", "tool_use_stream", "cache_usage"],
    "ollama": ["chat_stream", "tool_call_stream", "chat_stream_history_final_without_message"],
    "dashscope": ["stream_incremental", "stream_thinking", "tool_call_stream"],
    "minimax": ["stream"],
    "minimax-v2": ["stream", "stream_openapi_en", "stream_observed_openai_route"],
    "lingyi": ["stream"],
    "openai": ["text_stream", "tool_call_stream"],
    "gemini": ["stream_cookbook", "function_call", "parallel_function_calls", "thinking_stream", "prompt_blocked"],
    "cohere": ["text_stream", "documents_stream", "tool_call_stream", "thinking_stream"],
    "coze": ["text_stream", "reasoning_stream", "requires_action"],
}
ROUND_TRIP = ("gemini", "cohere", "coze")  # checked on every route, and cut
ERRORS = {
    ("anthropic", "error_event_overloaded"): "upstream_http",  # retried like a 529, then reported
    ("anthropic", "http_529"): "upstream_http",
    ("anthropic", "http_400"): "upstream_bad_request",
    ("anthropic", "http_401"): "upstream_auth",
    ("ollama", "error"): "upstream_http",
    ("ollama", "error_documented"): "upstream_http",
    ("dashscope", "error"): "upstream_auth",
    ("dashscope", "error_http_400"): "upstream_bad_request",
    ("dashscope", "error_stream_http200"): "upstream_bad_request",  # InvalidParameter, in an HTTP 200
    ("minimax", "error_login_fail"): "upstream_auth",
    ("minimax", "error_insufficient_balance"): "upstream_http",
    ("minimax", "error_invalid_params"): "upstream_bad_request",
    ("minimax-v2", "error"): "upstream_auth",
    ("lingyi", "error"): "upstream_error",
    ("lingyi", "error_json_body"): "upstream_error",
    ("openai", "error_in_200"): "upstream_error",
    ("openai", "error_401"): "upstream_auth",
    ("openai", "error_400_unknown_param"): "upstream_bad_request",
    ("gemini", "error_api_key"): "upstream_auth",  # an HTTP 400 whose reason is API_KEY_INVALID
    ("gemini", "malformed_function_call"): "upstream_error",  # an error finish reason
    ("cohere", "error_401"): "upstream_auth",
    ("cohere", "error_finish"): "upstream_error",  # message-end with finish_reason ERROR
    ("coze", "error_4100"): "upstream_auth",  # in an HTTP 200
    ("coze", "chat_failed"): "upstream_error",
    ("coze", "error_event"): "upstream_error",
}
ENV = {"minimax": {"MINIMAX_GROUP_ID": "group-1"}, "lingyi": {"LINGYI_AK": "ak-1234", "LINGYI_SK": "sk-12345678"},
       "coze": {"COZE_BOT_ID": "7379462189365198898"}}


def sample(spec: str, name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{FILES.get(spec, spec)}.json").read_text(encoding="utf-8"))
    return data["samples"][name]  # type: ignore[no-any-return]


def replay(fake: FakeUpstream, recorded: dict[str, Any]) -> None:
    async def handler(request: web.Request) -> web.Response:
        content_type = recorded["content_type"].split(";")[0].strip()
        return web.Response(body=recorded["raw"].encode(), status=recorded["status"],
                            headers={"Content-Type": content_type if "/" in content_type else "text/plain"})

    fake.handler = handler


async def client_for(bridge: Any, fake: FakeUpstream, spec: str, **env: str) -> Any:
    upstream = f"specs/{spec}.json" if spec == "openai" else spec
    return await bridge({"UPSTREAM": upstream, "UPSTREAM_BASE_URL": fake.url, "UPSTREAM_API_KEY": KEY,
                         "SPEECH_FILTER": "off", "UPSTREAM_TTFT_TIMEOUT": "3", **ENV.get(spec, {}), **env})


async def ask(bridge: Any, fake: FakeUpstream, spec: str) -> tuple[int, list[dict[str, Any]] | dict[str, Any]]:
    return await ask_stream(await client_for(bridge, fake, spec))


async def ask_stream(client: Any) -> tuple[int, list[dict[str, Any]] | dict[str, Any]]:
    resp = await client.post("/v1/chat/completions", json={
        "model": "m", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}]})
    if resp.content_type != "text/event-stream":
        return resp.status, await resp.json()
    events = [e.removeprefix("data: ") for e in (await resp.text()).split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return resp.status, [json.loads(e) for e in events[:-1]]


async def ask_whole(client: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/v1/chat/completions",
                             json={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    return resp.status, await resp.json()


async def ask_form(client: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/", data={"Message": json.dumps([{"role": "user", "content": "hi"}]),
                                        "ExtendData": json.dumps({"InstanceId": "inst-1"})})
    return resp.status, await resp.json()


def answer_of(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    text, calls, finish, usage = "", {}, None, None
    for chunk in chunks:
        assert "error" not in chunk, chunk
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices", []):
            text += choice["delta"].get("content") or ""
            finish = choice.get("finish_reason") or finish
            for call in choice["delta"].get("tool_calls") or []:
                entry = calls.setdefault(call["index"], {"id": None, "name": "", "arguments": ""})
                entry["id"] = call.get("id") or entry["id"]
                entry["name"] += call["function"].get("name") or ""
                entry["arguments"] += call["function"].get("arguments") or ""
    return {"text": text, "tool_calls": [calls[i] for i in sorted(calls)], "finish_reason": finish, "usage": usage}


@pytest.mark.parametrize("spec, name", [(spec, name) for spec, names in ANSWERS.items() for name in names])
async def test_a_documented_answer_means_what_it_says(bridge, fake_upstream: FakeUpstream, spec: str,
                                                      name: str) -> None:
    recorded = sample(spec, name)
    replay(fake_upstream, recorded)
    status, chunks = await ask(bridge, fake_upstream, spec)
    assert status == 200 and isinstance(chunks, list)
    got, expected = answer_of(chunks), recorded["expected"]
    assert got["text"] == expected["text"]
    want_calls = expected.get("tool_calls") or []
    assert [c["name"] for c in got["tool_calls"]] == [c.get("name") or c["function"]["name"] for c in want_calls]
    for have, want in zip(got["tool_calls"], want_calls, strict=True):
        arguments = want["arguments"] if "arguments" in want else want["function"]["arguments"]
        assert json.loads(have["arguments"]) == (json.loads(arguments) if isinstance(arguments, str) else arguments)
        if want.get("id"):
            assert have["id"] == want["id"]
    assert got["finish_reason"] == (expected.get("finish_reason") or "stop")
    for key in ("prompt_tokens", "completion_tokens"):
        if expected.get(key) is not None:
            assert got["usage"][key] == expected[key], key
    if expected.get("reasoning"):
        assert expected["reasoning"] not in got["text"]  # thinking is never spoken


@pytest.mark.parametrize("spec, name", list(ERRORS))
async def test_a_documented_error_gets_its_kind_and_the_providers_message(bridge, fake_upstream: FakeUpstream,
                                                                          log_stream, spec: str, name: str) -> None:
    recorded = sample(spec, name)
    replay(fake_upstream, recorded)
    _, body = await ask(bridge, fake_upstream, spec)
    if isinstance(body, list):  # after text: the stream ends with an error chunk, never a finish reason
        assert recorded["expected"]["text"] and not any(c.get("finish_reason") for b in body
                                                        for c in b.get("choices", [])), body
        body = body[-1]
    assert body["error"]["code"] == ERRORS[(spec, name)]
    expected = recorded["expected"]["error"]
    message = expected["message"] if isinstance(expected, dict) else expected
    assert message[:40] in body["error"]["message"]  # the provider's own words, kept
    assert KEY not in log_stream.getvalue() and KEY not in json.dumps(body)


@pytest.mark.parametrize("outcome, kind, message", [
    ("query_failed", "upstream_error", "The size is not match"),
    ("query_unknown", "upstream_error", "UNKNOWN"),
])
async def test_the_task_apis_documented_envelope(bridge, fake_upstream: FakeUpstream, outcome: str, kind: str,
                                                 message: str) -> None:
    """async-task against DashScope's documented task answers: submitted, running, then the outcome."""
    answers = iter([sample("async-task", "submit_pending"), sample("async-task", "query_running"),
                    sample("async-task", outcome)])

    async def handler(request: web.Request) -> web.Response:
        recorded = next(answers)
        return web.Response(body=recorded["raw"].encode(), status=recorded["status"], content_type="application/json")

    fake_upstream.handler = handler
    client = await bridge({"UPSTREAM": "async-task", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}],
                                                           "stream": False})
    body = await resp.json()
    assert body["error"]["code"] == kind and message in body["error"]["message"]
    paths = [(r.method, r.path) for r in fake_upstream.requests]
    assert paths == [("POST", "/api/v1/services/aigc/text-generation/generation"),
                     ("GET", "/api/v1/tasks/0385dc79-5ff8-4d82-bcb6-xxxxxx"),
                     ("GET", "/api/v1/tasks/0385dc79-5ff8-4d82-bcb6-xxxxxx")]


@pytest.mark.parametrize("spec, name", [(spec, name) for spec in ROUND_TRIP for name in ANSWERS[spec]])
async def test_a_documented_answer_on_the_other_routes(bridge, fake_upstream: FakeUpstream, spec: str,
                                                       name: str) -> None:
    """Not streamed, the same answer in one message; on the form route, what is spoken (a call alone is not)."""
    recorded = sample(spec, name)
    expected = recorded["expected"]
    replay(fake_upstream, recorded)
    client = await client_for(bridge, fake_upstream, spec)
    status, body = await ask_whole(client)
    assert status == 200, body
    choice = body["choices"][0]
    assert (choice["message"]["content"] or "") == expected["text"]
    assert choice["finish_reason"] == expected.get("finish_reason", "stop")
    calls = choice["message"].get("tool_calls") or []
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        (c["name"], c["arguments"]) for c in expected.get("tool_calls", [])]
    assert all(c["id"] == (want.get("id") or c["id"]) and c["id"] for c, want in zip(calls, expected["tool_calls"],
                                                                                       strict=True))
    for key in ("prompt_tokens", "completion_tokens"):
        if expected.get(key) is not None:
            assert body["usage"][key] == expected[key], key
    status, form = await ask_form(client)
    assert not expected.get("reasoning") or expected["reasoning"] not in form["Text"]
    # a tool call the form cannot carry, or an answer without words (a blocked prompt), is never an empty Text
    spoken = expected["text"] or DEFAULT_FAILURE_TEXT
    assert (status, form) == (200, {"Text": spoken})


@pytest.mark.parametrize("spec", ROUND_TRIP)
async def test_a_cut_stream_is_a_failure_on_every_route(bridge, fake_upstream: FakeUpstream, spec: str) -> None:
    recorded = sample(spec, "cut_stream")
    replay(fake_upstream, recorded)
    client = await client_for(bridge, fake_upstream, spec, FALLBACK_TEXT="")
    status, chunks = await ask_stream(client)
    assert status == 200 and isinstance(chunks, list)
    assert chunks[-1]["error"]["code"] == "upstream_protocol"  # after the text that came, never a finish
    assert not any(choice.get("finish_reason") for chunk in chunks for choice in chunk.get("choices", []))
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c.get("choices")) == \
        recorded["expected"]["text"]
    status, body = await ask_whole(client)
    assert (status, body["error"]["code"]) == (502, "upstream_protocol")
    status, form = await ask_form(client)
    assert (status, form["kind"]) == (502, "upstream_protocol")
    client = await client_for(bridge, fake_upstream, spec)
    assert await ask_form(client) == (200, {"Text": DEFAULT_FAILURE_TEXT})


@pytest.mark.parametrize("spec, name", [("gemini", "thinking_stream"), ("cohere", "thinking_stream"),
                                        ("cohere", "tool_call_stream"), ("coze", "reasoning_stream")])
async def test_the_driver_gives_reasoning_as_reasoning_and_usage_extras(fake_upstream: FakeUpstream, spec: str,
                                                                        name: str) -> None:
    """Reasoning reaches the pipeline as Reasoning events, never as text; Gemini's thought count as a detail."""
    recorded = sample(spec, name)
    replay(fake_upstream, recorded)
    settings = read_settings({"UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY, **ENV.get(spec, {})})
    upstream = build_upstream(spec, settings)
    events = [e async for batch in upstream.stream(ChatRequest([{"role": "user", "content": "hi"}], model="m",
                                                               route="test")) for e in batch]
    await upstream.aclose()
    expected = recorded["expected"]
    assert "".join(e.text for e in events if type(e) is Reasoning) == expected["reasoning"]
    assert "".join(e.text for e in events if type(e) is TextDelta) == expected["text"]
    usage = next(e for e in events if type(e) is Usage)
    if expected.get("reasoning_tokens"):
        assert usage.details == {"completion_tokens_details": {"reasoning_tokens": expected["reasoning_tokens"]}}
        assert usage.as_dict()["completion_tokens_details"] == {"reasoning_tokens": expected["reasoning_tokens"]}
    calls = [e for e in events if type(e) is ToolCallDelta and e.id]
    assert [c.id for c in calls] == [c["id"] for c in expected["tool_calls"]]


WORDS = ["COMPLETE", "STOP", "stop", "end_turn", "MAX_TOKENS", "TOOL_CALL", "ERROR", "SAFETY", "completed",
         "requires_action", "max_output", "length", "tool_calls", "function_call", "content_filter", "null", "",
         "weird", "OTHER", "FINISH_REASON_UNSPECIFIED", "pause_turn", "refusal", "tool_use", "TIMEOUT", "failed"]


@pytest.mark.parametrize("spec", [*available_specs(), "original/minimax"])
def test_no_provider_finish_reason_reaches_a_caller(spec: str) -> None:
    """Every shipped spec's every call puts every word (its own table's and any other) in OpenAI's words."""
    for call in load_spec(SPECS / f"{spec}.json", "UPSTREAM").calls.values():
        for word in [*WORDS, *call.finish_reasons]:
            assert openai_reason(word, call.finish_reasons) in (*OPENAI_REASONS, "error"), (spec, word)
