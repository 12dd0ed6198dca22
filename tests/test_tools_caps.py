"""Bounds on what the model's tool calls may cost (issue 20, item 8): calls per round
(MAX_TOOL_CALLS) and the size of one call's streamed arguments (MAX_TOOL_ARGUMENT_CHARS)."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from bridge.tools import load_toolbox
from tests.support.app import log_lines
from tests.support.tool_servers import WeatherToolServer, tools_file, weather_tool
from tests.support.upstream import FakeUpstream, sse, text_chunks

USER = [{"role": "user", "content": "weather?"}]


def model_calling_many(fake: FakeUpstream, calls: int, arguments: list[str]) -> None:
    """Round 1: `calls` calls to get_weather, the arguments of each streamed in `arguments`' pieces.
    Round 2: an answer naming the results it got."""
    base = text_chunks([])[0]

    async def handler(request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        results = [m["content"] for m in messages if m["role"] == "tool"]
        if results:
            return web.Response(body=sse(text_chunks([json.dumps(results)])), content_type="text/event-stream")
        chunks: list[dict[str, Any]] = [base]
        for i in range(calls):
            chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
                "index": i, "id": f"call_{i}", "type": "function",
                "function": {"name": "get_weather", "arguments": ""}}]}, "finish_reason": None}]})
            chunks += [{**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
                "index": i, "function": {"arguments": piece}}]}, "finish_reason": None}]} for piece in arguments]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        return web.Response(body=sse(chunks), content_type="text/event-stream")

    fake.handler = handler


async def test_calls_past_the_cap_are_not_run(bridge, fake_upstream, weather_server: WeatherToolServer, tmp_path,
                                              log_stream):
    model_calling_many(fake_upstream, 5, ['{"city": "Paris"}'])
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "MAX_TOOL_CALLS": "2",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))]),
                           "WEATHER_KEY": "wk-1234567890", "SPEECH_FILTER": "off"})
    resp = await client.post("/", data={"Message": "weather?"})
    assert len(json.loads((await resp.json())["Text"])) == 2  # the model read two results
    assert len(weather_server.bodies) == 2
    second = fake_upstream.requests[-1].json()["messages"]
    assert [len(m.get("tool_calls") or []) for m in second if m["role"] == "assistant"] == [2]
    line = [e for e in log_lines(log_stream) if e.get("event") == "request"][-1]
    assert line["tools_dropped"] == 3 and len(line["tools"]) == 2


async def test_arguments_past_the_cap_are_refused_not_kept(bridge, fake_upstream, weather_server: WeatherToolServer,
                                                           tmp_path):
    pieces = ['{"city": "', *["x" * 1000] * 200, '"}']  # 200,000 characters of arguments
    model_calling_many(fake_upstream, 1, pieces)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "MAX_TOOL_ARGUMENT_CHARS": "4096",
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))]),
                           "WEATHER_KEY": "wk-1234567890", "SPEECH_FILTER": "off"})
    resp = await client.post("/", data={"Message": "weather?"})
    (result,) = json.loads((await resp.json())["Text"])
    assert "longer than 4096 characters; the tool was not run" in result
    assert weather_server.bodies == []
    sent = fake_upstream.requests[-1].json()["messages"]
    (turn,) = [m for m in sent if m["role"] == "assistant"]
    assert turn["tool_calls"][0]["function"]["arguments"] == ""  # what passed the cap was never kept


def test_metrics_name_only_the_toolboxes_tools(tmp_path):
    """A model's invented tool names (answered as unknown tools) must not grow /metrics without a bound."""
    box = load_toolbox(tools_file(tmp_path, [weather_tool("http://127.0.0.1:9/weather")]), {"WEATHER_KEY": "wk-123456"})
    assert box.label("get_weather") == "get_weather"
    assert {box.label(f"invented_{i}") for i in range(100)} == {"unknown"}
