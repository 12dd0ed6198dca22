"""MCP tools against a real MCP server (the SDK's MCPServer over streamable HTTP on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from mcp import types

from bridge.log import configure_logging
from bridge.redaction import Redactor
from bridge.tools import ToolBox
from bridge.tools.loader import load_config
from bridge.tools.mcp_client import render
from tests.support.mcp_server import MCP_TOKEN, McpTestServer


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", Redactor(), stream)  # no secrets known here: the toolbox must mask its own
    return stream


def log_lines(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]
    return [line for line in lines if line.get("event") == event]


async def until(condition: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Poll a real condition, boundedly."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


async def within(condition: Callable[[], bool], seconds: float) -> bool:
    """Whether `condition` became true within `seconds` (polled)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.01)
    return True


def names(box: ToolBox) -> list[str]:
    return [d["function"]["name"] for d in box.definitions()]


@pytest.fixture
async def make_mcp_box(tmp_path: Path) -> AsyncIterator[Callable[..., ToolBox]]:
    """`make_mcp_box(url, **server)`: a toolbox over the one MCP server at `url`, not started yet.

    Named apart from tests/test_tools_box.py's `make_box`, which builds HTTP tools and starts them.
    """
    boxes: list[ToolBox] = []

    def make(url: str, **server: Any) -> ToolBox:
        file = tmp_path / f"tools{len(boxes)}.json"
        file.write_text(json.dumps({"mcp_servers": [{"url": url, **server}]}))
        box = ToolBox(load_config(str(file), {"MCP_TOKEN": MCP_TOKEN}), retry=(0.05, 0.2))
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        await box.aclose()


async def test_tools_are_discovered_narrowed_and_called(mcp_server: McpTestServer, log_stream: io.StringIO,
                                                        make_mcp_box: Callable[..., ToolBox]) -> None:
    box = make_mcp_box(mcp_server.url, include=["lookup_order", "lookup_ordr"],
                       headers={"X-Api-Key": "${env.MCP_TOKEN}"})
    assert box.definitions() == []  # nothing is listed before start()
    await box.start()
    await until(lambda: bool(box.definitions()), "the tools to be listed")
    [definition] = box.definitions()
    assert definition["type"] == "function"
    assert definition["function"]["name"] == "lookup_order"
    assert definition["function"]["description"] == "Look up an order by its id."
    assert definition["function"]["parameters"]["properties"]["order_id"]["type"] == "string"
    assert definition["function"]["parameters"]["required"] == ["order_id"]
    assert box.owns("lookup_order") and not box.owns("slow_report")

    result = await box.call("lookup_order", '{"order_id": "A-17"}')
    assert result.outcome == "ok"
    assert result.content == "Order A-17: shipped (internal ref [redacted])"  # its text, a secret masked
    assert mcp_server.orders == ["A-17"]
    excluded = await box.call("slow_report", '{"seconds": 0}')
    assert excluded.outcome == "unknown_tool"
    [missing] = log_lines(log_stream, "mcp_include_missing")  # a typo in `include` is pointed out
    assert missing["tools"] == ["lookup_ordr"] and missing["level"] == "warning"


async def test_all_tools_without_include_and_arguments_checked(mcp_server: McpTestServer,
                                                               make_mcp_box: Callable[..., ToolBox]) -> None:
    box = make_mcp_box(mcp_server.url)
    await box.start()
    await until(lambda: len(box.definitions()) == 2, "both tools")
    assert sorted(names(box)) == ["lookup_order", "slow_report"]
    for arguments in ('{"order": 1}', '{"order_id": 5}', "not json"):
        result = await box.call("lookup_order", arguments)
        assert result.outcome == "bad_arguments", arguments
    assert "'order_id' is a required property" in (await box.call("lookup_order", "{}")).content
    assert mcp_server.orders == []  # nothing reached the server


async def test_error_result_and_too_large(mcp_server: McpTestServer, make_mcp_box: Callable[..., ToolBox]) -> None:
    box = make_mcp_box(mcp_server.url, max_result_bytes=256)
    await box.start()
    await until(lambda: "lookup_order" in names(box), "lookup_order")
    result = await box.call("lookup_order", '{"order_id": "missing"}')
    assert result.outcome == "error" and "no order missing" in result.content
    result = await box.call("lookup_order", '{"order_id": "long"}')
    assert result.outcome == "too_large"
    body, note = result.content.rsplit("\n", 1)
    assert len(body.encode()) <= 256 and note == "[truncated: the result was larger than 256 bytes]"


async def test_timeout_and_cancellation_reach_the_server(mcp_server: McpTestServer,
                                                         make_mcp_box: Callable[..., ToolBox]) -> None:
    box = make_mcp_box(mcp_server.url, timeout=10)
    await box.start()
    await until(lambda: "slow_report" in names(box), "slow_report")

    started = time.perf_counter()
    result = await box.call("slow_report", '{"seconds": 30}', timeout=0.3)
    assert result.outcome == "timeout" and "within 0.3 s" in result.content
    assert time.perf_counter() - started < 2
    assert await asyncio.to_thread(mcp_server.slow_cancelled.wait, 5), "the server kept working after the timeout"

    mcp_server.slow_started.clear()
    mcp_server.slow_cancelled.clear()
    task = asyncio.create_task(box.call("slow_report", '{"seconds": 30}'))
    assert await asyncio.to_thread(mcp_server.slow_started.wait, 5)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.perf_counter() - started < 1
    assert await asyncio.to_thread(mcp_server.slow_cancelled.wait, 5), "the server kept working after the cancel"
    # the connection is still good afterwards
    assert (await box.call("lookup_order", '{"order_id": "B-2"}')).outcome == "ok"


async def test_server_down_at_start_is_logged_then_picked_up(make_mcp_box: Callable[..., ToolBox],
                                                             log_stream: io.StringIO) -> None:
    server = McpTestServer()  # bound, not listening yet
    box = make_mcp_box(server.url + "?token=${env.MCP_TOKEN}", include=["lookup_order"],
                   headers={"Authorization": "Bearer ${env.MCP_TOKEN}"})
    try:
        await box.start()
        await until(lambda: bool(log_lines(log_stream, "mcp_unreachable")), "the warning")
        warning = log_lines(log_stream, "mcp_unreachable")[0]
        assert warning["level"] == "warning" and warning["url"] == server.url  # no query string
        assert box.definitions() == []
        result = await box.call("lookup_order", '{"order_id": "1"}')
        assert result.outcome == "error" and "unavailable right now" in result.content

        server.start()
        await until(lambda: names(box) == ["lookup_order"], "the server's tools after it came up")
        assert (await box.call("lookup_order", '{"order_id": "7"}')).outcome == "ok"
        headers, query = server.requests[-1]
        assert headers["authorization"] == f"Bearer {MCP_TOKEN}" and query == f"token={MCP_TOKEN}"
        [connected] = log_lines(log_stream, "mcp_connected")
        assert connected["url"] == server.url and connected["tools"] == ["lookup_order"]
        assert MCP_TOKEN not in log_stream.getvalue()
    finally:
        await box.aclose()  # before the server stops, so it has no open stream to wait for
        server.stop()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_server_restart_withdraws_then_restores_its_tools(make_mcp_box: Callable[..., ToolBox],
                                                                log_stream: io.StringIO, mode: str) -> None:
    server = McpTestServer()
    server.start()
    port = server.port
    box = make_mcp_box(server.url)
    box.links[0]._mode = mode
    await box.start()
    await until(lambda: len(names(box)) == 2, "the tools")
    server.stop()
    # a 2026-07-28 connection notices at once (its listen stream drops), a legacy one at the
    # first failed call; either way the call fails cleanly and the tools are withdrawn
    result = await box.call("lookup_order", '{"order_id": "3"}')
    assert result.outcome == "error"
    await until(lambda: names(box) == [], "the tools to be withdrawn")
    assert box.owns("lookup_order")  # still a bridge tool while its server is away
    assert log_lines(log_stream, "mcp_disconnected")

    again = McpTestServer(port)
    again.start()
    try:
        await until(lambda: len(names(box)) == 2, "the tools after the restart")
        assert (await box.call("lookup_order", '{"order_id": "4"}')).outcome == "ok"
        assert again.orders == ["4"]
    finally:
        await box.aclose()
        again.stop()


async def test_aclose_while_retrying_is_prompt(make_mcp_box: Callable[..., ToolBox], log_stream: io.StringIO) -> None:
    server = McpTestServer()  # never listens
    try:
        box = make_mcp_box(server.url)
        await box.start()
        await until(lambda: len(log_lines(log_stream, "mcp_unreachable")) >= 2, "two failed attempts")
        started = time.perf_counter()
        await box.aclose()
        assert time.perf_counter() - started < 0.5
        assert box.links[0]._task is None
        count = len(log_lines(log_stream, "mcp_unreachable"))
        assert not await within(lambda: len(log_lines(log_stream, "mcp_unreachable")) > count, 0.3)
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_tools_list_changed_refreshes_definitions(mcp_server: McpTestServer,
                                                        make_mcp_box: Callable[..., ToolBox], mode: str) -> None:
    box = make_mcp_box(mcp_server.url)
    box.links[0]._mode = mode  # "auto" negotiates 2026-07-28 (subscriptions/listen); "legacy" the handshake era
    await box.start()
    await until(lambda: len(names(box)) == 2, "the tools")
    if mode == "auto":  # a 2026-07-28 client asks for change events with subscriptions/listen
        assert await asyncio.to_thread(mcp_server.bus.listening.wait, 5)
    # announce until seen: a legacy client's GET stream may still be opening when the first goes out
    for _ in range(10):
        mcp_server.add_tool_and_notify(legacy=mode == "legacy")
        if await within(lambda: "track_parcel" in names(box), 0.5):
            break
    assert "track_parcel" in names(box), "the change was never picked up"
    result = await box.call("track_parcel", '{"parcel_id": "P9"}')
    assert (result.outcome, result.content) == ("ok", "parcel P9 is out for delivery")


def test_render_summarizes_what_is_not_text() -> None:
    result = types.CallToolResult(content=[
        types.TextContent(text="two parts:"),
        types.ImageContent(data="AAAA" * 100, mime_type="image/png"),
        types.ResourceLink(uri="https://files.example.com/r.pdf", name="r.pdf"),
        types.EmbeddedResource(resource=types.TextResourceContents(uri="memo://1", text="memo text")),
    ])
    assert render(result) == ("two parts:\n[image: image/png, about 300 bytes, not shown]\n"
                              "[resource link: https://files.example.com/r.pdf]\n[resource memo://1]\nmemo text")
    structured = types.CallToolResult(content=[], structured_content={"total": 3})
    assert render(structured) == '{"total":3}'
