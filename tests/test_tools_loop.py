"""Bridge tools end to end: the real app, a fake model, a real tool server and a real MCP server.

The fake model calls a bridge tool, then answers from the tool's result (it reads the `tool`
message the bridge added to the history). The caller never sees the bridge's tool call.
"""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import web

from bridge.inbound.context import SERVICES
from tests.support.app import log_lines, sse_events
from tests.support.tool_servers import model_that_uses, tools_file, weather_tool

USER = [{"role": "user", "content": "What's the weather in Paris?"}]


async def test_filler_first_then_an_answer_built_from_the_tool_and_no_bridge_call_seen(
        bridge, fake_upstream, weather_server, tmp_path, log_stream):
    model_that_uses(fake_upstream, "get_weather", {"city": "Paris"})
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))],
                                                      filler="One moment, let me check.")})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    events = sse_events(await resp.text())
    texts = [e["choices"][0]["delta"].get("content") for e in events if e.get("choices")]
    assert texts[0] == "One moment, let me check."
    # joined as speech: "One moment, let me check." + " Result: ..." (the speech filter keeps the space)
    assert "".join(t or "" for t in texts[1:]) == ' Result: {"city":"Paris","sky":"sunny","celsius":21}'
    assert not any(e["choices"][0]["delta"].get("tool_calls") for e in events if e.get("choices"))
    assert [e["choices"][0]["finish_reason"] for e in events if e.get("choices")][-1] == "stop"
    assert weather_server.bodies == [{"city": "Paris"}]  # the model's arguments are the body
    assert weather_server.headers[0]["Authorization"] == "Bearer weather-key-123456"
    second = fake_upstream.requests[1].json()
    assert [m["role"] for m in second["messages"]][-2:] == ["assistant", "tool"]
    assert [t["function"]["name"] for t in second["tools"]] == ["get_weather"]
    line = log_lines(log_stream)[-1]
    assert [(t["name"], t["outcome"], t["round"]) for t in line["tools"]] == [("get_weather", "ok", 1)]
    assert "weather-key-123456" not in log_stream.getvalue()
    metrics = await (await client.get("/metrics")).text()
    assert 'bridge_tool_duration_seconds_count{tool="get_weather"} 1.0' in metrics


async def test_the_form_route_answers_from_the_tool_result(bridge, fake_upstream, weather_server, tmp_path):
    model_that_uses(fake_upstream, "get_weather", {"city": "Lyon"})
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))],
                                                      filler="One moment.")})
    resp = await client.post("/", data={"Message": "weather in Lyon?"})
    assert await resp.json() == {"Text": 'Result: {"city":"Lyon","sky":"sunny","celsius":21}'}  # no filler in Text


async def test_an_mcp_tool_is_discovered_and_called(bridge, fake_upstream, mcp_server, tmp_path):
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"mcp_servers": [{"url": mcp_server.url, "include": ["lookup_order"]}]}))
    model_that_uses(fake_upstream, "lookup_order", {"order_id": "A-17"})
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOOLS": str(path),
                           "SPEECH_FILTER": "off"})
    toolbox = client.server.app[SERVICES].roster.default.pipeline.toolbox
    for _ in range(500):  # discovery runs in the background: wait for the listing, boundedly
        if toolbox.definitions():
            break
        await asyncio.sleep(0.01)
    resp = await client.post("/", data={"Message": "where is order A-17?"})
    text = (await resp.json())["Text"]
    assert text.startswith("Result: Order A-17: shipped") and mcp_server.orders == ["A-17"]


async def test_the_callers_own_tool_passes_through(bridge, fake_upstream, weather_server, tmp_path):
    model_that_uses(fake_upstream, "hangup", {"reason": "bye"}, said="Goodbye!")
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))])})
    hangup = {"type": "function", "function": {"name": "hangup", "parameters": {"type": "object"}}}
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True,
                                                           "tools": [hangup]})
    events = sse_events(await resp.text())
    calls = [c for e in events if e.get("choices") for c in e["choices"][0]["delta"].get("tool_calls") or []]
    assert calls[0]["function"]["name"] == "hangup"
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    sent = [t["function"]["name"] for t in fake_upstream.last.json()["tools"]]
    assert sent == ["hangup", "get_weather"] and weather_server.bodies == []


@pytest.mark.parametrize("path, timeout, outcome", [("/missing", 3, "error"), ("/slow", 0.2, "timeout")])
async def test_a_failing_or_hanging_tool_still_ends_in_a_spoken_answer(bridge, fake_upstream, weather_server, tmp_path,
                                                                       log_stream, path, timeout, outcome):
    model_that_uses(fake_upstream, "get_weather", {"city": "Oslo"})
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url(path), timeout)])})
    resp = await client.post("/", data={"Message": "weather in Oslo?"})
    assert resp.status == 200 and (await resp.json())["Text"].startswith("Result: error:")
    assert log_lines(log_stream)[-1]["tools"][0]["outcome"] == outcome


async def test_a_model_that_never_stops_calling_tools_stops_at_max_rounds(bridge, fake_upstream, weather_server,
                                                                          tmp_path, log_stream):
    model_that_uses(fake_upstream, "get_weather", {"city": "Rome"}, forever=True)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "FALLBACK_TEXT": "Sorry, I could not finish that.",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))],
                                                      max_rounds=2)})
    resp = await client.post("/", data={"Message": "weather in Rome?"})
    assert await resp.json() == {"Text": "Sorry, I could not finish that."}
    assert len(fake_upstream.requests) == 3 and len(weather_server.bodies) == 2  # 2 rounds of tools, then no more
    assert log_lines(log_stream)[-1]["error_kind"] == "tool_rounds"


async def test_a_barge_in_cancels_a_running_tool(bridge, fake_upstream, weather_server, tmp_path):
    model_that_uses(fake_upstream, "get_weather", {"city": "Kyiv"})
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/slow"), 30)],
                                                      filler="Checking.")})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert b"Checking." in await resp.content.readuntil(b"\n\n")  # the tool is running now
    resp.close()  # the caller barges in
    await asyncio.wait_for(weather_server.gone.wait(), 5)  # and the tool's request is dropped at once


async def test_a_callers_tool_with_a_bridge_tools_name_is_the_callers(bridge, fake_upstream, weather_server, tmp_path):
    """On a name clash the model is offered the caller's tool, and its call goes to the caller."""
    model_that_uses(fake_upstream, "get_weather", {"city": "Oslo"})
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))])})
    own = {"type": "function", "function": {"name": "get_weather", "description": "the caller's own",
                                            "parameters": {"type": "object", "properties": {}}}}
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True,
                                                           "tools": [own]})
    events = sse_events(await resp.text())
    calls = [c for e in events if e.get("choices") for c in e["choices"][0]["delta"].get("tool_calls") or []]
    assert [c["function"]["name"] for c in calls] == ["get_weather"]
    assert events[-1]["choices"][0]["finish_reason"] == "tool_calls"
    assert fake_upstream.last.json()["tools"] == [own] and weather_server.bodies == []  # the bridge ran nothing


async def test_the_tools_phrase_is_the_only_filler(bridge, fake_upstream, tmp_path, aiohttp_server):
    """FILLER_AFTER_MS does not add its phrase after the tools' own: the caller heard something."""
    async def slow_weather(request: web.Request) -> web.Response:
        await asyncio.sleep(0.5)  # the tool is slow: longer than FILLER_AFTER_MS, the behaviour under test
        return web.json_response({"sky": "grey"})

    app = web.Application()
    app.router.add_post("/weather", slow_weather)
    slow = await aiohttp_server(app, host="127.0.0.1")
    model_that_uses(fake_upstream, "get_weather", {"city": "Bergen"})
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "FILLER_AFTER_MS": "200", "FILLER_PHRASES": "One moment.",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(str(slow.make_url("/weather")))],
                                                      filler="Checking the weather.")})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    texts = [e["choices"][0]["delta"].get("content") for e in sse_events(await resp.text()) if e.get("choices")]
    assert [t for t in texts if t][:2] == ["Checking the weather.", ' Result: {"sky":"grey"}']


async def test_the_log_line_counts_every_round_and_one_first_token(bridge, fake_upstream, weather_server, tmp_path,
                                                                  log_stream):
    model_that_uses(fake_upstream, "get_weather", {"city": "Nice"}, said="Let me look.")
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))])})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True,
                                                           "stream_options": {"include_usage": True}})
    events = sse_events(await resp.text())
    line = log_lines(log_stream)[-1]
    assert line["usage"] == events[-1]["usage"]  # what the caller was billed: both rounds
    assert line["usage"]["completion_tokens"] > 0 and line["usage_estimated"] is True
    metrics = await (await client.get("/metrics")).text()
    # one answer, one first token
    assert 'bridge_ttft_seconds_count{agent="default",route="/v1/chat/completions"} 1.0' in metrics


async def test_rounds_running_out_fail_like_an_upstream_without_fallback_text(bridge, fake_upstream, weather_server,
                                                                              tmp_path):
    model_that_uses(fake_upstream, "get_weather", {"city": "Rome"}, forever=True)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "WEATHER_KEY": "weather-key-123456",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))],
                                                      max_rounds=1)})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status == 502 and (await resp.json())["error"]["code"] == "tool_rounds"
