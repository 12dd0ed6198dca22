"""Every voice platform's documented request, answered through a strict OpenAI upstream.

The fixtures in tests/fixtures/platforms/ reproduce each platform's custom-LLM request as its
public documentation shows it (source URLs inside). Each goes through the bridge, on both
OpenAI drivers, to a fake upstream that refuses what OpenAI refuses (tests/support/strict_openai.py).
Every platform: 200, the answer streamed, nothing refused, its identifiers on the log line.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from tests.support.app import log_lines
from tests.support.platform_fixtures import ANSWER, CHAT_FIXTURES, TOKEN, load, path_for, with_token
from tests.support.strict_openai import strict_openai
from tests.support.upstream import FakeUpstream


def identifier_values(fixture: dict[str, Any]) -> dict[str, Any]:
    """The identifiers the fixture says the request carries, with their values in this request."""
    found = {}
    for name, source in (fixture.get("identifiers") or {}).items():
        if not isinstance(source, str) or any(c in source for c in "*<[") or "Authorization" in source:
            continue
        if source.startswith("header:"):
            value: Any = fixture["headers"].get(source[7:])
        else:
            value = fixture["body"]
            for key in source.split("."):
                value = value.get(key) if isinstance(value, dict) else None
        if value not in (None, ""):
            found[name] = value
    return found


@pytest.fixture(params=["aiohttp", "sdk"])
def bridge_defaults(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"OPENAI_CLIENT": request.param, "BRIDGE_TOKENS": TOKEN}


@pytest.mark.parametrize("name", CHAT_FIXTURES)
async def test_the_platforms_documented_request_is_answered(bridge, fake_upstream: FakeUpstream, log_stream,
                                                            name: str) -> None:
    fixture = load(name)
    platform_chunks = fixture.get("response_chunks") or []
    refusals = strict_openai(fake_upstream, ANSWER, platform_chunks)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post(path_for(fixture), data=json.dumps(fixture["body"]).encode(),
                             headers=with_token(fixture["headers"]))
    body = await resp.read()
    assert resp.status == 200, body
    assert refusals == []  # the strict upstream accepted what the bridge sent
    if fixture["body"].get("stream"):
        events = [e.removeprefix(b"data: ") for e in body.split(b"\n\n") if e]
        assert events[-1] == b"[DONE]"
        text = "".join(json.loads(e)["choices"][0]["delta"].get("content") or ""
                       for e in events[:-1] if json.loads(e).get("choices"))
        for chunk in platform_chunks:  # the platform's own chunks reach it as the upstream sent them
            assert json.dumps(chunk).encode() in events
        chunks = [json.loads(e) for e in events[:-1] if json.loads(e).get("object") == "chat.completion.chunk"]
        assert {c["system_fingerprint"] for c in chunks} == {"fp_strict"}
        assert len({c["id"] for c in chunks}) == 1 and len({c["created"] for c in chunks}) == 1  # Volcengine's rule
    else:
        text = json.loads(body)["choices"][0]["message"]["content"]
    assert text == "".join(ANSWER)
    line = [entry for entry in log_lines(log_stream) if entry.get("event") == "request"][-1]
    logged = set(map(str, line.values()))
    for name_, value in identifier_values(fixture).items():
        shown = str(value) if not re.fullmatch(r"\+?\d{8,}", str(value)) else str(value)[:3]
        assert any(v.startswith(shown) for v in logged), (name_, value, line)


async def test_usage_details_pass_through_when_usage_is_asked_for(bridge, fake_upstream: FakeUpstream) -> None:
    fixture = load("livekit")  # sends stream_options.include_usage, as the openai SDK does
    strict_openai(fake_upstream, ANSWER)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post(path_for(fixture), json=fixture["body"], headers=with_token(fixture["headers"]))
    usage = [json.loads(e[6:]) for e in (await resp.text()).split("\n\n") if e.startswith('data: {"id"')][-1]
    assert usage["choices"] == [] and usage["usage"]["prompt_tokens_details"] == {"cached_tokens": 16}
    assert usage["usage"]["completion_tokens_details"] == {"reasoning_tokens": 0}


async def test_the_ims_form_as_documented_is_answered(bridge, fake_upstream: FakeUpstream, log_stream) -> None:
    fixture = load("ims_form")
    refusals = strict_openai(fake_upstream, ANSWER)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    form = {**fixture["form"], "Token": TOKEN}
    resp = await client.post("/", data=form)
    assert (resp.status, await resp.json()) == (200, {"Text": "".join(ANSWER)})
    assert refusals == []
    assert fake_upstream.last.json()["messages"][-1] == {"role": "user", "content": "明天天气晴怎么样?"}
    line = log_lines(log_stream)[-1]
    assert line["instance_id"] == "68e00b6640e*****3e943332fee7" and line["user_data"] == '{"aaaa":"bbbb"}'


async def test_a_platform_field_never_reaches_the_log_by_value(bridge, fake_upstream: FakeUpstream, log_stream) -> None:
    fixture = load("vapi")
    strict_openai(fake_upstream, ANSWER)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    await client.post(path_for(fixture), json=fixture["body"], headers=with_token(fixture["headers"]))
    line = log_lines(log_stream)[-1]
    assert line["platform"] == "vapi" and "call" in line["dropped"] and "customer" in line["dropped"]
    assert fixture["body"]["phoneNumber"]["twilioAccountSid"] not in log_stream.getvalue()
    assert fixture["body"]["customer"]["number"] not in log_stream.getvalue()  # masked: first 3, last 4


async def test_numbers_sent_as_strings_are_converted_and_a_non_number_is_a_clear_400(bridge, fake_upstream) -> None:
    fixture = load("aiccs")  # temperature, top_p, top_k as strings, as its parameter table says
    strict_openai(fake_upstream, ANSWER)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/chat/completions", json=fixture["body"], headers=with_token(fixture["headers"]))
    assert resp.status == 200
    sent = fake_upstream.last.json()
    assert (sent["temperature"], sent["top_p"]) == (0.1, 0.1) and "top_k" not in sent  # not OpenAI's
    resp = await client.post("/chat/completions", json={**fixture["body"], "temperature": "warm"},
                             headers=with_token(fixture["headers"]))
    body = await resp.json()
    assert resp.status == 400 and body["error"]["param"] == "temperature" and "'warm'" in body["error"]["message"]


async def test_upstream_extra_params_forwards_exactly_the_names_it_lists(bridge, fake_upstream: FakeUpstream) -> None:
    received: list[dict[str, Any]] = []

    async def lenient(request: Any) -> Any:
        received.append(await request.json())
        return await fake_upstream.stream_openai(request)

    fake_upstream.handler = lenient
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1",
                           "UPSTREAM_EXTRA_PARAMS": "enable_thinking,top_k"})
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "enable_thinking": False, "top_k": "20",
            "repetition_penalty": 1.1, "maxTokens": 64}
    await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    extras = set(received[-1]) - {"model", "messages", "stream", "stream_options"}
    assert extras == {"enable_thinking", "top_k", "max_tokens"}  # maxTokens is Volcengine's max_tokens
    assert received[-1]["top_k"] == 20 and received[-1]["max_tokens"] == 64


async def test_models_are_listed_in_openais_shape(bridge) -> None:
    client = await bridge({"UPSTREAM_MODEL": "qwen-plus"})
    for path in ("/v1/models", "/models"):
        resp = await client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
        body = await resp.json()
        assert resp.status == 200 and body["object"] == "list"
        assert [m["id"] for m in body["data"]] == ["qwen-plus"] and body["data"][0]["object"] == "model"
    assert (await client.get("/v1/models")).status == 401


def test_every_platform_is_recognised_by_a_body_field_a_header_or_a_query_parameter() -> None:
    from bridge.inbound.platforms import PLATFORMS
    for platform in PLATFORMS:
        assert platform.detect, platform.name
        assert all(marker.startswith(("body:", "header:", "query:")) for marker in platform.detect), platform.name
