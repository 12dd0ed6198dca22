"""Every shipped spec against its provider's documented wire samples (tests/fixtures/providers/).

Each sample is replayed byte for byte by a fake provider (status, content type, body as the
documentation or a cited recording shows it, quirks included); the bridge's answer on the
OpenAI route must carry what the sample means: the text, the tool calls, the finish reason
and the usage the fixture's `expected` records, or the right error kind with the provider's
message.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.support.upstream import FakeUpstream

FIXTURES = Path(__file__).parent / "fixtures" / "providers"
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
}
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
}
ENV = {"minimax": {"MINIMAX_GROUP_ID": "group-1"}, "lingyi": {"LINGYI_AK": "ak-1234", "LINGYI_SK": "sk-12345678"}}


def sample(spec: str, name: str) -> dict[str, Any]:
    data = json.loads((FIXTURES / f"{FILES.get(spec, spec)}.json").read_text(encoding="utf-8"))
    return data["samples"][name]  # type: ignore[no-any-return]


def replay(fake: FakeUpstream, recorded: dict[str, Any]) -> None:
    async def handler(request: web.Request) -> web.Response:
        content_type = recorded["content_type"].split(";")[0].strip()
        return web.Response(body=recorded["raw"].encode(), status=recorded["status"],
                            headers={"Content-Type": content_type if "/" in content_type else "text/plain"})

    fake.handler = handler


async def ask(bridge: Any, fake: FakeUpstream, spec: str) -> tuple[int, list[dict[str, Any]] | dict[str, Any]]:
    upstream = f"specs/{spec}.json" if spec == "openai" else spec
    client = await bridge({"UPSTREAM": upstream, "UPSTREAM_BASE_URL": fake.url, "UPSTREAM_API_KEY": KEY,
                           "SPEECH_FILTER": "off", "UPSTREAM_TTFT_TIMEOUT": "3", **ENV.get(spec, {})})
    resp = await client.post("/v1/chat/completions", json={
        "model": "m", "stream": True, "stream_options": {"include_usage": True},
        "messages": [{"role": "user", "content": "hi"}]})
    if resp.content_type != "text/event-stream":
        return resp.status, await resp.json()
    events = [e.removeprefix("data: ") for e in (await resp.text()).split("\n\n") if e]
    assert events[-1] == "[DONE]"
    return resp.status, [json.loads(e) for e in events[:-1]]


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
        arguments = want.get("arguments") or want["function"]["arguments"]
        assert json.loads(have["arguments"]) == (json.loads(arguments) if isinstance(arguments, str) else arguments)
        if want.get("id"):
            assert have["id"] == want["id"]
    assert got["finish_reason"] == (expected.get("finish_reason") or "stop")
    for key in ("prompt_tokens", "completion_tokens"):
        if expected.get(key) is not None:
            assert got["usage"][key] == expected[key], key


@pytest.mark.parametrize("spec, name", list(ERRORS))
async def test_a_documented_error_gets_its_kind_and_the_providers_message(bridge, fake_upstream: FakeUpstream,
                                                                          log_stream, spec: str, name: str) -> None:
    recorded = sample(spec, name)
    replay(fake_upstream, recorded)
    _, body = await ask(bridge, fake_upstream, spec)
    assert isinstance(body, dict), body
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
