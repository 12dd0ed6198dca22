"""Tool-path hardening through the real app: tool call names resent whole, the start-up window, bounded log lines."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.inbound.context import SERVICES
from bridge.log import configure_logging, get_logger
from bridge.redaction import Redactor
from tests.support.app import log_lines, sse_events
from tests.support.raw_mcp import RawMcpServer
from tests.support.tool_servers import WeatherToolServer, tools_file, weather_tool
from tests.support.upstream import FakeUpstream, sse, text_chunks

USER = [{"role": "user", "content": "What's the weather in Paris?"}]

TOKEN_ENV = {"WEATHER_KEY": "weather-key-123456"}


def model_calling(fake: FakeUpstream, name: str, pieces: list[str], *, name_in_every_delta: bool) -> None:
    """Round 1: a call to `name`, its arguments in `pieces`; then an answer quoting the tool's result."""
    base = text_chunks([])[0]

    async def handler(request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        if messages[-1]["role"] == "tool":
            return web.Response(body=sse(text_chunks([f"Result: {messages[-1]['content']}"])),
                                content_type="text/event-stream")
        chunks = [base]
        for i, piece in enumerate(pieces):
            function = {"arguments": piece}
            if i == 0 or name_in_every_delta:
                function["name"] = name
            call = {"index": 0, "id": "call_1", "type": "function", "function": function}
            chunks.append({**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]})
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        return web.Response(body=sse(chunks), content_type="text/event-stream")

    fake.handler = handler


# -- 9. a name resent in every delta ----------------------------------------------------------------

@pytest.mark.parametrize("every", [True, False])
async def test_a_tool_name_resent_in_every_delta_is_one_name(bridge, fake_upstream, weather_server: WeatherToolServer,
                                                             tmp_path: Path, every: bool) -> None:
    model_calling(fake_upstream, "get_weather", ['{"ci', 'ty": "Pa', 'ris"}'], name_in_every_delta=every)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", **TOKEN_ENV,
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))])})
    resp = await client.post("/", data={"Message": "weather in Paris?"})
    assert await resp.json() == {"Text": 'Result: {"city":"Paris","sky":"sunny","celsius":21}'}
    assert weather_server.bodies == [{"city": "Paris"}]
    second = fake_upstream.requests[1].json()["messages"][-2]
    assert second["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": '{"city": "Paris"}'}


async def test_a_name_resent_whole_reaches_the_caller_once(bridge, fake_upstream, tmp_path: Path,
                                                           weather_server: WeatherToolServer) -> None:
    model_calling(fake_upstream, "hangup", ['{"reason"', ': "bye"}'], name_in_every_delta=True)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", **TOKEN_ENV,
                           "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))])})
    hangup = {"type": "function", "function": {"name": "hangup", "parameters": {"type": "object"}}}
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": False,
                                                           "tools": [hangup]})
    [call] = (await resp.json())["choices"][0]["message"]["tool_calls"]
    assert call["function"] == {"name": "hangup", "arguments": '{"reason": "bye"}'}


# -- 10. the start-up window -------------------------------------------------------------------------

async def test_readyz_waits_for_the_first_listing_and_a_call_meanwhile_stays_with_the_bridge(
        bridge, fake_upstream, raw_mcp: RawMcpServer, tmp_path: Path, log_stream) -> None:
    raw_mcp.list_gate = asyncio.Event()
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"mcp_servers": [{"url": raw_mcp.url}]}))
    model_calling(fake_upstream, "echo", ['{"q": "hi"}'], name_in_every_delta=False)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOOLS": str(path)})
    await asyncio.wait_for(raw_mcp.list_started.wait(), 5)
    resp = await client.get("/readyz")
    assert resp.status == 503 and (await resp.json())["status"] == "starting"

    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    events = sse_events(await resp.text())
    assert not any(e["choices"][0]["delta"].get("tool_calls") for e in events if e.get("choices"))
    text = "".join(e["choices"][0]["delta"].get("content") or "" for e in events if e.get("choices"))
    assert text.startswith("Result: error: there is no tool named 'echo' yet")
    assert raw_mcp.calls == []

    raw_mcp.list_gate.set()
    toolbox = client.server.app[SERVICES].roster.default.pipeline.toolbox
    await asyncio.wait_for(toolbox.wait_ready(), 5)
    resp = await client.get("/readyz")
    assert resp.status == 200
    ready = await log_stream.wait_for_line(lambda e: e.get("event") == "tools_ready")
    assert ready["tools"] == ["echo"] and ready["mcp_servers"] == 1  # logged once listed, MCP tools included
    resp = await client.post("/", data={"Message": "echo hi"})
    assert (await resp.json())["Text"] == 'Result: echo {"q": "hi"}' and len(raw_mcp.calls) == 1


async def test_readyz_gives_up_waiting_after_the_startup_wait(bridge, raw_mcp: RawMcpServer, tmp_path: Path) -> None:
    raw_mcp.list_gate = asyncio.Event()  # never answers
    path = tmp_path / "tools.json"
    path.write_text(json.dumps({"mcp_servers": [{"url": raw_mcp.url, "timeout": 30}], "startup_wait": 0.2}))
    client = await bridge({"BRIDGE_TOOLS": str(path)})
    assert (await client.get("/readyz")).status == 503
    await asyncio.wait_for(client.server.app[SERVICES].roster.default.pipeline.toolbox.wait_ready(), 5)
    assert (await client.get("/readyz")).status == 200


# -- 11. every logged field bounded -----------------------------------------------------------------

async def test_huge_platform_fields_make_a_short_log_line(bridge, fake_upstream, log_stream) -> None:
    number = "+1" + "5" * 1_000_000
    unknown = {f"field_{i}": 1 for i in range(10_000)}
    body = {"model": "m", "messages": USER, "stream": False, **unknown,
            "call": {"id": "c" * 1_000_000, "customer": {"number": number}},
            "customer": {"number": number}, "phoneNumber": {"number": {"nested": ["x" * 1000] * 100}}}
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json=body)
    assert resp.status == 200
    raw = [line for line in log_stream.getvalue().splitlines() if '"event":"request"' in line][-1]
    assert len(raw) < 4000, len(raw)
    line = json.loads(raw)
    assert line["platform"] == "vapi"
    assert line["customer"] == "+15" + "*" * 16 + "5555"
    assert line["phone_number"] == "<dict not shown>"
    assert len(line["call_id"]) <= 203
    assert len(line["dropped"]) == 20 and line["dropped_count"] >= 10_000


async def test_an_ims_caller_number_that_is_an_object_is_named_not_written(bridge, fake_upstream, log_stream) -> None:
    extend = {"instanceId": "i-1", "callerNumber": {"a": ["1" * 100] * 1000}, "calleeNumber": 8613800001234}
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": False,
                                                           "extendData": extend})
    assert resp.status == 200
    line = log_lines(log_stream)[-1]
    assert line["caller"] == "<dict not shown>" and line["callee"] == "861******1234"


def test_any_logged_value_is_bounded() -> None:
    log_stream = io.StringIO()
    configure_logging("INFO", Redactor(), log_stream)
    get_logger().info("probe", text="t" * 10_000, names=[f"n{i}" for i in range(10_000)],
                      nested={"k": [list(range(100))] * 100, "deep": {"a": {"b": {"c": {"d": {"e": 1}}}}}},
                      many={f"k{i}": i for i in range(1000)}, thing=object())
    raw = log_stream.getvalue().splitlines()[-1]
    assert len(raw) < 6000, len(raw)
    line: dict[str, Any] = json.loads(raw)
    assert line["text"] == "t" * 200 + "..."
    assert len(line["names"]) == 20 and line["names_count"] == 10_000
    assert line["nested"]["k"][0][-1] == "... 80 more" and len(line["nested"]["k"]) == 21
    assert line["nested"]["deep"]["a"]["b"] == {"c": "<dict not shown>"}
    assert len(line["many"]) == 32 and line["thing"].startswith("<object object at")
