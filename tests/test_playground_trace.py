"""The playground's page and the trace it reads, on the wire: the real app, a fake model that calls a
real HTTP tool, the official openai SDK. The browser tests are tests/test_playground_browser.py.

`X-Bridge-Trace: on` adds SSE comment lines (`: trace {...}`) to a streamed chat answer: the agent,
the filler, the first answer text, each bridge tool, the end. Without it (every platform) the
stream is byte for byte what it was; an SSE parser ignores comments, so a traced stream reads
the same through the SDK.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tests.support.app import sdk_client
from tests.support.playground import ANSWER, weather_env, weather_model

USER = [{"role": "user", "content": "What's the weather in Paris?"}]
TRACE = {"X-Bridge-Trace": "on"}


def split(raw: str) -> tuple[list[dict[str, Any]], list[Any]]:
    """A stream's trace lines and its data events, each in order."""
    traces = [json.loads(line.removeprefix(": trace ")) for line in raw.splitlines() if line.startswith(": trace ")]
    assert all(line.startswith((": trace ", "data: ")) for line in raw.splitlines() if line), raw
    data = [line.removeprefix("data: ") for line in raw.splitlines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    return traces, [json.loads(d) for d in data[:-1]]


def content(events: list[Any]) -> str:
    return "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))


def heard(text: str) -> bool:
    """The filler, then the answer, joined as speech."""
    return text == "One moment, let me check. " + ANSWER


async def test_the_trace_tells_agent_filler_tool_first_token_and_end_in_order(bridge, fake_upstream, weather_server,
                                                                              tmp_path):
    weather_model(fake_upstream)
    client = await bridge(weather_env(fake_upstream, weather_server.url("/weather"), tmp_path))
    resp = await client.post("/v1/chat/completions", json={"stream": True, "messages": USER}, headers=TRACE)
    raw = await resp.text()
    traces, events = split(raw)
    assert [t["event"] for t in traces] == ["agent", "filler", "tool", "first_token", "done"]
    agent, filler, tool, first, done = traces
    assert agent == {"event": "agent", "name": "default", "at_ms": agent["at_ms"]}
    assert filler["text"] == "One moment, let me check."
    assert set(tool) == {"event", "name", "ms", "outcome", "round", "at_ms"}
    assert (tool["name"], tool["outcome"], tool["round"]) == ("get_weather", "ok", 1) and tool["ms"] >= 0
    assert [t["at_ms"] for t in traces] == sorted(t["at_ms"] for t in traces)
    assert first["at_ms"] >= tool["at_ms"] >= tool["ms"]  # the tool ran before the answer began
    assert done["at_ms"] > 0
    # the tool's address, arguments, key and result stay in the bridge; the caller hears the answer
    for secret in (weather_server.url("/weather"), "weather-key-123456", '"celsius"', "Bearer"):
        assert secret not in raw
    assert heard(content(events))
    # each trace line comes before the chunk it tells of: the filler's line before the filler's text
    assert raw.index('"event":"filler"') < raw.index('"content":"One moment')
    assert raw.index('"event":"first_token"') < raw.index("It's sunny")


async def test_without_the_header_the_stream_has_no_trace_and_the_same_answer(bridge, fake_upstream, weather_server,
                                                                              tmp_path):
    weather_model(fake_upstream)
    client = await bridge(weather_env(fake_upstream, weather_server.url("/weather"), tmp_path))
    for headers in ({}, {"X-Bridge-Trace": "off"}, {"X-Bridge-Trace": "yes please"}):
        raw = await (await client.post("/v1/chat/completions", json={"stream": True, "messages": USER},
                                       headers=headers)).text()
        assert ": trace" not in raw and not re.search(r"^:", raw, re.MULTILINE)
        assert heard(content(split(raw)[1]))


async def test_a_whole_answer_is_not_traced(bridge, fake_upstream):
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"messages": USER}, headers=TRACE)
    body = await resp.json()
    assert body["choices"][0]["message"]["content"] == "Hello, world!" and "trace" not in json.dumps(body)


async def test_the_openai_sdk_reads_a_traced_stream_as_a_plain_one(bridge, fake_upstream, weather_server, tmp_path):
    weather_model(fake_upstream)
    env = weather_env(fake_upstream, weather_server.url("/weather"), tmp_path, BRIDGE_TOKENS="tok-1234")
    client = await bridge(env)
    sdk = sdk_client(str(client.make_url("/v1")), "tok-1234")
    texts = []
    async with sdk:
        for headers in (TRACE, {}):
            stream = await sdk.chat.completions.create(model="m", messages=USER, stream=True, extra_headers=headers)
            texts.append("".join([c.choices[0].delta.content or "" async for c in stream if c.choices]))
    assert heard(texts[0]) and texts[0] == texts[1]


async def test_the_trace_names_the_agent_the_token_or_path_chose_and_no_other(bridge, fake_upstream, tmp_path):
    path = tmp_path / "agents.json"
    path.write_text(json.dumps({"agents": {
        "sales": {"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOKENS": "sales-tok-1234"},
        "support": {"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOKENS": "support-tok-5678"}}}))
    client = await bridge({"BRIDGE_AGENTS": str(path), "BRIDGE_TOKENS": "env-tok-9012",
                           "OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    seen = {}
    for url, token in (("/v1/chat/completions", "sales-tok-1234"), ("/v1/chat/completions", "env-tok-9012"),
                       ("/agents/support/v1/chat/completions", "support-tok-5678")):
        raw = await (await client.post(url, json={"stream": True, "messages": USER},
                                       headers={**TRACE, "Authorization": f"Bearer {token}"})).text()
        traces, events = split(raw)
        seen[token] = [t["name"] for t in traces if t["event"] == "agent"]
        assert content(events) == "Hello, world!"
        assert "default" not in raw or token == "env-tok-9012"
    assert seen == {"sales-tok-1234": ["sales"], "env-tok-9012": ["default"], "support-tok-5678": ["support"]}
    refused = await client.post("/v1/chat/completions", json={"stream": True, "messages": USER}, headers=TRACE)
    assert refused.status == 401 and "trace" not in await refused.text()


async def test_the_page_and_its_files_are_served_with_a_strict_policy(bridge):
    client = await bridge()
    for path in ("/playground", "/agents/default/playground"):
        resp = await client.get(path)
        assert resp.status == 200 and resp.content_type == "text/html"
        policy = resp.headers["Content-Security-Policy"]
        assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "unsafe" not in policy
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        page = await resp.text()
        # every script is a file of the page's own (no inline script), nothing names another site
        assert re.findall(r"<script[^>]*>", page) == ['<script src="playground/app.js" defer>']
        assert "http" not in page.replace("http-equiv", "")
    for name, kind in (("app.js", "text/javascript"), ("style.css", "text/css"), ("icon.svg", "image/svg+xml")):
        resp = await client.get(f"/playground/{name}")
        assert resp.status == 200 and resp.content_type == kind
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", await resp.text()), name  # nothing fetched
    assert (await client.get("/playground/../app.py")).status == 404
    assert (await client.get("/playground/nothing.js")).status == 404


async def test_playground_off_answers_404_as_an_unknown_path_and_traces_nothing(bridge, fake_upstream):
    client = await bridge({"PLAYGROUND": "off", "OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    unknown = await client.get("/nothing-here")
    for path in ("/playground", "/playground/app.js", "/agents/default/playground"):
        resp = await client.get(path)
        assert resp.status == 404 == unknown.status
        assert await resp.json() == {"error": f"No route for {path}."}
        assert resp.content_type == unknown.content_type and "Content-Security-Policy" not in resp.headers
    raw = await (await client.post("/v1/chat/completions", json={"stream": True, "messages": USER},
                                   headers=TRACE)).text()
    assert ": trace" not in raw and content(split(raw)[1]) == "Hello, world!"
