"""Hostile tool schemas, listings and results: nothing reaches outside, holds the loop or grows without bound.

MCP servers here are real streamable-HTTP servers on 127.0.0.1 (tests/raw_mcp.py, written
against the spec's wire format); the tools-file cases go through the real loader.
"""

from __future__ import annotations

import asyncio
import gc
import io
import json
import time
import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError
from bridge.log import configure_logging
from bridge.redaction import Redactor
from bridge.tools import ToolBox, load_toolbox
from bridge.tools.loader import load_config
from tests.support.app import log_lines
from tests.support.raw_mcp import RawMcpServer, text_result, tool

BACKTRACKING = "^(a+)+$"
EVIL_TEXT = "a" * 30 + "!"  # about 20 s for Python's re against BACKTRACKING; microseconds for RE2


@pytest.fixture
def log_stream() -> io.StringIO:
    stream = io.StringIO()
    configure_logging("DEBUG", Redactor(), stream)
    return stream


def logged(stream: io.StringIO, event: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(stream) if line.get("event") == event]


@pytest.fixture
async def make_box(tmp_path: Path) -> AsyncIterator[Callable[..., ToolBox]]:
    """`make_box(url, limits={...}, startup_wait=..., **server)`: a toolbox over one MCP server (not started)."""
    boxes: list[ToolBox] = []

    def make(url: str, *, limits: dict[str, Any] | None = None, startup_wait: float | None = None,
             **server: Any) -> ToolBox:
        doc: dict[str, Any] = {"mcp_servers": [{"url": url, **server}], "limits": limits or {}}
        if startup_wait is not None:
            doc["startup_wait"] = startup_wait
        file = tmp_path / f"tools{len(boxes)}.json"
        file.write_text(json.dumps(doc))
        box = ToolBox(load_config(str(file), {}), retry=(0.05, 0.2))
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        await box.aclose()


def names(box: ToolBox) -> list[str]:
    return [d["function"]["name"] for d in box.definitions()]


async def listed(box: ToolBox, timeout: float = 10) -> None:
    """Wait for the next completed listing (the toolbox's own event), then clear it for the next."""
    await asyncio.wait_for(box.listed.wait(), timeout)
    box.listed.clear()


class LoopWatch:
    """The most CPU the event loop's thread spent without getting back to a 1 ms ticker.

    CPU time, not wall time: on a shared machine the process may wait for a core, which is
    not the loop being held by the code under test. (Work in other threads is not counted.)
    """

    def __init__(self) -> None:
        self.worst = 0.0
        self._task: asyncio.Task[None] | None = None

    async def _tick(self) -> None:
        while True:
            before = time.thread_time()
            await asyncio.sleep(0.001)
            self.worst = max(self.worst, time.thread_time() - before)

    async def __aenter__(self) -> LoopWatch:
        self._task = asyncio.create_task(self._tick())
        await asyncio.sleep(0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.wait([self._task])


def tools_file(tmp_path: Path, parameters: dict[str, Any], url: str = "http://127.0.0.1:9/t") -> str:
    file = tmp_path / "tools.json"
    file.write_text(json.dumps({"tools": [{"name": "lookup", "description": "Looks up a thing",
                                           "parameters": parameters, "http": {"url": url}}]}))
    return str(file)


def with_ref(ref: str) -> dict[str, Any]:
    return {"type": "object", "properties": {"q": {"$ref": ref}}}


# -- 1. a $ref never reaches outside the schema ---------------------------------------------------

@pytest.mark.parametrize("ref", ["http://127.0.0.1:9/schema.json", "file:///etc/passwd", "other.json",
                                 "https://json-schema.org/draft/2020-12/schema#/nowhere/x"])
def test_a_tools_file_schema_with_an_outside_ref_stops_start_up(tmp_path: Path, ref: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_toolbox(tools_file(tmp_path, with_ref(ref)), {})
    message = str(caught.value)
    assert "tools[0].parameters: tool 'lookup': $ref" in message and "points outside the schema" in message


def test_refs_inside_the_schema_are_followed(tmp_path: Path) -> None:
    schema = {"type": "object", "$defs": {"code": {"type": "string", "maxLength": 3}},
              "properties": {"q": {"$ref": "#/$defs/code"}, "self": {"$ref": "#"}}}
    box = load_toolbox(tools_file(tmp_path, schema), {})
    assert box.definitions()[0]["function"]["parameters"] == schema


async def test_an_mcp_tool_with_an_outside_ref_is_skipped_and_nothing_is_fetched(
        raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox], log_stream: io.StringIO) -> None:
    raw_mcp.pages = [[tool("fetcher", with_ref(raw_mcp.other_url("/internal/schema.json"))),
                      tool("reader", with_ref("file:///etc/hostname")),
                      tool("local", {"type": "object", "$defs": {"n": {"type": "integer"}},
                                     "properties": {"q": {"$ref": "#/$defs/n"}}})]]
    box = make_box(raw_mcp.url)
    await box.start()
    await listed(box)
    assert names(box) == ["local"]
    for name in ("fetcher", "reader"):
        assert (await box.call(name, '{"q": 1}')).outcome == "unknown_tool"
    assert (await box.call("local", '{"q": "x"}')).outcome == "bad_arguments"  # the inside $ref is followed
    assert raw_mcp.hits == {}  # the internal URL was never asked for
    skipped = {line["tool"]: line["reason"] for line in logged(log_stream, "mcp_tool_skipped")}
    assert set(skipped) == {"fetcher", "reader"}
    assert all("points outside the schema" in reason for reason in skipped.values())


# -- 2. no backtracking regex from a schema ------------------------------------------------------

@pytest.mark.parametrize("schema, arguments", [
    ({"type": "object", "properties": {"code": {"type": "string", "pattern": BACKTRACKING}}}, {"code": EVIL_TEXT}),
    ({"type": "object", "patternProperties": {BACKTRACKING: {"type": "integer"}}, "additionalProperties": False},
     {EVIL_TEXT: 1}),
    ({"type": "object", "propertyNames": {"pattern": BACKTRACKING}}, {EVIL_TEXT: 1}),
])
async def test_a_backtracking_pattern_is_matched_in_linear_time(tmp_path: Path, schema: dict[str, Any],
                                                                arguments: dict[str, Any]) -> None:
    box = load_toolbox(tools_file(tmp_path, schema), {})
    async with LoopWatch() as watch:
        result = await box.call("lookup", json.dumps(arguments))
    assert result.outcome == "bad_arguments"
    assert watch.worst < 0.05 and result.duration_ms < 500  # wall time: generous on a shared machine


async def test_a_pattern_still_accepts_what_it_matches(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"code": {"type": "string", "pattern": r"^[A-Z]-\d+$"}},
              "patternProperties": {"^x-": {"type": "integer"}}, "additionalProperties": False}
    box = load_toolbox(tools_file(tmp_path, schema), {})
    assert (await box.call("lookup", '{"code": "A-17", "x-n": 2}')).outcome != "bad_arguments"
    for bad in ('{"code": "a-17"}', '{"x-n": "two"}', '{"other": 1}'):
        assert (await box.call("lookup", bad)).outcome == "bad_arguments", bad


def test_a_tools_file_pattern_re2_cannot_run_stops_start_up(tmp_path: Path) -> None:
    schema = {"type": "object", "properties": {"email": {"type": "string", "pattern": r"^(?!\.)[a-z.]+@x\.com$"}}}
    with pytest.raises(ConfigError, match=r"tool 'lookup': pattern .* is not supported: patterns are matched with RE2"):
        load_toolbox(tools_file(tmp_path, schema), {})


async def test_an_mcp_pattern_re2_cannot_run_is_left_to_the_server(raw_mcp: RawMcpServer, log_stream: io.StringIO,
                                                                   make_box: Callable[..., ToolBox]) -> None:
    lookahead = r"^(?!\.)[a-z.]+@x\.com$"  # zod emits patterns like this one for emails
    raw_mcp.pages = [[tool("mail", {"type": "object", "properties": {"to": {"type": "string", "pattern": lookahead}}})]]
    box = make_box(raw_mcp.url)
    await box.start()
    await listed(box)
    assert names(box) == ["mail"]
    assert (await box.call("mail", '{"to": ".x@x.com"}')).outcome == "ok"  # not checked here
    [line] = logged(log_stream, "mcp_pattern_unchecked")
    assert line["tool"] == "mail" and line["pattern"] == lookahead


async def test_an_output_schema_pattern_never_runs_on_the_loop(raw_mcp: RawMcpServer,
                                                               make_box: Callable[..., ToolBox]) -> None:
    output = {"type": "object", "properties": {"code": {"type": "string", "pattern": BACKTRACKING}}}
    raw_mcp.pages = [[tool("coded", outputSchema=output)]]
    raw_mcp.call_result = lambda params: text_result("coded", structuredContent={"code": "a" * 27 + "!"})
    box = make_box(raw_mcp.url)
    await box.start()
    await listed(box)
    async with LoopWatch() as watch:
        result = await box.call("coded", "{}")
    assert result.outcome == "ok" and result.content == "coded"
    assert watch.worst < 0.05


# -- 7. listings are bounded, worked in slices, rate-limited, and never delay exit ---------------

async def test_ten_thousand_tools_keep_the_loop_free_and_offer_at_most_max_tools(
        raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox], log_stream: io.StringIO) -> None:
    raw_mcp.pages = [[tool(f"t{page}_{i}") for i in range(1000)] for page in range(10)]
    box = make_box(raw_mcp.url)
    # A full garbage collection walks every live object, the fake server's 10,000 tools and
    # pytest's own included: freeze what exists now, so the watch measures the listing.
    gc.collect()
    gc.freeze()
    try:
        async with LoopWatch() as watch:
            await box.start()
            await listed(box, timeout=20)
    finally:
        gc.unfreeze()
    assert len(names(box)) == 128 and names(box)[0] == "t0_0"
    assert raw_mcp.list_count == 1  # full after the first page: the other nine are never asked for
    assert watch.worst < 0.05, f"the loop was held {watch.worst * 1000:.0f} ms"
    [capped] = logged(log_stream, "mcp_listing_capped")
    assert capped["kept"] == 128 and "limits.max_tools (128)" in capped["reason"]
    [connected] = logged(log_stream, "mcp_connected")
    assert connected["tools_count"] == 128 and len(connected["tools"]) <= 20  # the line stays short


async def test_pages_are_capped(raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox],
                                log_stream: io.StringIO) -> None:
    raw_mcp.pages = [[tool(f"p{i}")] for i in range(30)]
    box = make_box(raw_mcp.url, limits={"max_list_pages": 4})
    await box.start()
    await listed(box)
    assert names(box) == ["p0", "p1", "p2", "p3"] and raw_mcp.list_count == 4
    assert "limits.max_list_pages (4)" in logged(log_stream, "mcp_listing_capped")[0]["reason"]


async def test_a_page_larger_than_its_cap_is_not_read(raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox],
                                                      log_stream: io.StringIO) -> None:
    raw_mcp.pages = [[tool(f"big_{i}") for i in range(1000)]]  # about 110 KB
    box = make_box(raw_mcp.url, limits={"max_list_page_bytes": 65536})
    await box.start()
    await asyncio.wait_for(box.wait_ready(), 5)  # the first attempt failed
    assert names(box) == []
    assert "larger than 65536 bytes" in logged(log_stream, "mcp_unreachable")[0]["error"]


async def test_big_descriptions_are_cut_and_big_schemas_skipped(raw_mcp: RawMcpServer, log_stream: io.StringIO,
                                                                make_box: Callable[..., ToolBox]) -> None:
    huge_schema = {"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(200)}}
    raw_mcp.pages = [[{**tool("wordy"), "description": "word " * 5000}, tool("huge", huge_schema)]]
    box = make_box(raw_mcp.url, limits={"max_description_chars": 100, "max_schema_bytes": 2048})
    await box.start()
    await listed(box)
    [definition] = box.definitions()
    assert definition["function"]["name"] == "wordy" and len(definition["function"]["description"]) == 100
    [skipped] = logged(log_stream, "mcp_tool_skipped")
    assert skipped["tool"] == "huge" and "limits.max_schema_bytes (2048)" in skipped["reason"]


async def test_change_notifications_coalesce_into_one_relist_per_interval(
        raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox]) -> None:
    interval = 0.4
    box = make_box(raw_mcp.url, limits={"relist_interval": interval})
    await box.start()
    await listed(box)
    await asyncio.wait_for(raw_mcp.stream_open.wait(), 5)
    await raw_mcp.notify_tools_changed(200)
    await listed(box)
    await raw_mcp.notify_tools_changed(200)
    await listed(box)
    assert raw_mcp.list_count == 3  # 400 notifications, two re-lists
    gaps = [b - a for a, b in zip(raw_mcp.listed_at, raw_mcp.listed_at[1:], strict=False)]
    assert all(gap >= interval * 0.9 for gap in gaps), gaps


async def test_the_owned_names_are_a_bounded_memory(raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox]) -> None:
    box = make_box(raw_mcp.url, limits={"relist_interval": 0.1, "max_remembered_names": 128})
    raw_mcp.pages = [[tool(f"a{i}") for i in range(128)]]
    await box.start()
    await listed(box)
    await asyncio.wait_for(raw_mcp.stream_open.wait(), 5)
    for batch in "bc":
        raw_mcp.pages = [[tool(f"{batch}{i}") for i in range(128)]]
        await raw_mcp.notify_tools_changed()
        await listed(box)
    assert box.owns("c5") and not box.owns("a5") and not box.owns("b5")


async def test_aclose_during_a_held_listing_is_prompt(raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox]) -> None:
    raw_mcp.list_gate = asyncio.Event()  # never set: the listing never answers
    box = make_box(raw_mcp.url, timeout=30)
    await box.start()
    await asyncio.wait_for(raw_mcp.list_started.wait(), 5)
    started = time.perf_counter()
    await box.aclose()
    assert time.perf_counter() - started < 1.0


async def test_aclose_during_a_costly_listing_is_prompt(raw_mcp: RawMcpServer,
                                                        make_box: Callable[..., ToolBox]) -> None:
    schema = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "d"} for i in range(60)}}
    raw_mcp.pages = [[tool(f"slow{i}", schema) for i in range(128)]]  # about 20 ms of checking each
    box = make_box(raw_mcp.url, timeout=30)
    await box.start()
    await asyncio.wait_for(raw_mcp.list_started.wait(), 5)
    await asyncio.sleep(0)  # (the answer goes out now; the checking begins)
    answered = raw_mcp.listed_at or [asyncio.get_running_loop().time()]
    await box.aclose()
    assert asyncio.get_running_loop().time() - answered[0] < 1.5  # checking them all takes about 2.5 s
    assert len(names(box)) < 128  # it was cut short, not finished


# -- 10. ready only once listed (or the start-up wait is over) -----------------------------------

async def test_not_ready_until_listed_and_unknown_names_are_kept_from_the_caller(
        raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox]) -> None:
    raw_mcp.list_gate = asyncio.Event()
    box = make_box(raw_mcp.url)
    await box.start()
    await asyncio.wait_for(raw_mcp.list_started.wait(), 5)
    assert not box.ready
    assert box.owns("echo") and box.owns("anything")  # may be an MCP tool still being listed
    result = await box.call("echo", "{}")
    assert result.outcome == "unknown_tool" and "still being listed" in result.content
    raw_mcp.list_gate.set()
    await asyncio.wait_for(box.wait_ready(), 5)
    assert names(box) == ["echo"] and box.owns("echo") and not box.owns("anything")


async def test_the_startup_wait_bounds_readiness(raw_mcp: RawMcpServer, make_box: Callable[..., ToolBox],
                                                 log_stream: io.StringIO) -> None:
    raw_mcp.list_gate = asyncio.Event()
    box = make_box(raw_mcp.url, timeout=30, startup_wait=0.2)
    started = time.perf_counter()
    await box.start()
    await asyncio.wait_for(box.wait_ready(), 5)
    assert 0.15 < time.perf_counter() - started < 2
    assert names(box) == [] and not box.owns("anything")
    [line] = logged(log_stream, "tools_startup_wait_over")
    assert line["mcp_servers"] == [raw_mcp.url]


# -- 8. a result is read only up to its cap -------------------------------------------------------

def fifty_megabytes(ident: Any, params: dict[str, Any]) -> AsyncIterator[bytes]:
    async def pieces() -> AsyncIterator[bytes]:
        yield b'{"jsonrpc":"2.0","id":' + json.dumps(ident).encode() + b',"result":{"content":[' \
              b'{"type":"text","text":"'
        chunk = b"x" * 65536
        for _ in range(800):
            yield chunk
        yield b'"}]}}'
    return pieces()


async def test_a_fifty_megabyte_result_is_not_read_past_its_cap(raw_mcp: RawMcpServer,
                                                                make_box: Callable[..., ToolBox]) -> None:
    raw_mcp.call_body = fifty_megabytes
    box = make_box(raw_mcp.url, timeout=20)
    await box.start()
    await listed(box)
    tracemalloc.start()
    try:
        async with LoopWatch() as watch:
            results = await asyncio.gather(*(box.call("echo", "{}") for _ in range(4)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    for result in results:
        assert result.outcome == "too_large"
        assert result.content == ("error: the tool echo answered more than 131072 bytes; the answer was not read")
    assert peak < 16 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    assert watch.worst < 0.1
    assert (await box.call("echo", "{}")).outcome == "too_large"  # the connection is still good; no reconnect
    raw_mcp.call_body = None
    assert (await box.call("echo", '{"q": "hi"}')).content == 'echo {"q": "hi"}'
