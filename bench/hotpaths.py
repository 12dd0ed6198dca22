"""What the tools' hot paths cost per tool, and the longest the event loop is held meanwhile.

    .venv/bin/python bench/hotpaths.py      # ~20 seconds

In one process, no network: an MCP server's tools/list page of `--tools` tools (each with a
schema of six properties: strings with a pattern and a length, an enum, a number range, a
nested object, an array) turned into what the bridge offers (bridge/tools/mcp_listing.py), the
first time (every schema surveyed, checked against the metaschema in a worker thread, compiled)
and again unchanged (a re-list after `tools/list_changed`); the same tools as an HTTP tools
file read at start-up; and per call, checking the model's arguments against one schema. A
ticker task measures the longest gap between two turns of the event loop during each listing.
Medians of `--runs`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mcp import types

from bridge.tools.loader import Limits, load_config
from bridge.tools.mcp_listing import Listing, add_page


def schema(i: int) -> dict[str, Any]:
    return {"type": "object", "required": ["order_id"], "additionalProperties": False, "properties": {
        "order_id": {"type": "string", "pattern": "^[A-Z]{2}-[0-9]{6}$", "description": f"Order {i}"},
        "email": {"type": "string", "maxLength": 254, "format": "email"},
        "channel": {"type": "string", "enum": ["phone", "web", "store"]},
        "amount": {"type": "number", "minimum": 0, "maximum": 100000},
        "address": {"type": "object", "properties": {"city": {"type": "string"}, "zip": {"type": "string"}}},
        "items": {"type": "array", "maxItems": 20, "items": {"type": "string", "minLength": 1}},
    }}


def page(count: int) -> list[types.Tool]:
    return [types.Tool(name=f"tool_{i:03d}", description=f"Looks up thing {i}.", input_schema=schema(i))
            for i in range(count)]


async def listing_us(count: int, previous: dict[str, Any] | None = None) -> tuple[float, float, dict[str, Any]]:
    """µs per tool to convert a page, the longest event-loop gap (ms), and the tools kept."""
    tools = page(count)
    gaps: list[float] = []
    stop = asyncio.Event()

    async def ticker() -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        while not stop.is_set():
            await asyncio.sleep(0)
            now = loop.time()
            gaps.append(now - last)
            last = now

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    listing = Listing(Limits(max_tools=max(count, 128)), None, previous or {})
    started = time.perf_counter()
    await add_page(listing, tools)
    elapsed = time.perf_counter() - started
    stop.set()
    await tick
    assert len(listing.tools) == count, listing.skipped[:3]
    return elapsed / count * 1e6, max(gaps) * 1000, listing.tools


def http_file_us(count: int) -> float:
    """µs per tool to read and check an HTTP tools file of `count` tools (start-up, and each reload)."""
    tools = [{"name": f"tool_{i:03d}", "description": f"Looks up thing {i}.", "parameters": schema(i),
              "http": {"url": f"http://127.0.0.1:9/things/{i}"}} for i in range(count)]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump({"tools": tools}, file)
    started = time.perf_counter()
    load_config(file.name, {})
    return (time.perf_counter() - started) / count * 1e6


def validate_us(tools: dict[str, Any]) -> float:
    validator = next(iter(tools.values())).validator
    arguments = {"order_id": "AB-123456", "email": "ann@example.com", "channel": "phone", "amount": 12.5,
                 "address": {"city": "Paris", "zip": "75001"}, "items": ["a", "b"]}
    runs = 2000
    started = time.perf_counter()
    for _ in range(runs):
        assert not list(validator.iter_errors(arguments))
    return (time.perf_counter() - started) / runs * 1e6


async def measure(count: int, runs: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {k: [] for k in ("first", "first_gap", "again", "again_gap", "file", "validate")}
    for _ in range(runs):
        first, first_gap, tools = await listing_us(count)
        again, again_gap, _ = await listing_us(count, tools)
        out["first"].append(first)
        out["first_gap"].append(first_gap)
        out["again"].append(again)
        out["again_gap"].append(again_gap)
        out["file"].append(http_file_us(count))
        out["validate"].append(validate_us(tools))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tools", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    figures = asyncio.run(measure(args.tools, args.runs))
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"{args.tools} tools, medians of {args.runs} runs\n")
    print("| path | µs per tool | longest event-loop hold |\n|---|---|---|")
    print(f"| MCP tools/list, first listing (survey, metaschema check in a thread, compile) | {med['first']:.0f} "
          f"| {med['first_gap']:.1f} ms |")
    print(f"| MCP tools/list, listed again unchanged | {med['again']:.1f} | {med['again_gap']:.1f} ms |")
    print(f"| HTTP tools file read and checked (start-up, reload) | {med['file']:.0f} | (not on the loop) |")
    print(f"| the model's arguments checked against one schema, per call | {med['validate']:.1f} | |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
