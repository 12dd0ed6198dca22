"""One MCP server's tools/list, turned into the tools the bridge offers, within the file's limits.

A server decides how many tools it lists and how large they are, so every step is bounded:
at most `max_tools` tools are kept, a description is cut to `max_description_chars`, a tool
whose inputSchema is larger than `max_schema_bytes` is skipped, and the work is done in
slices that give the event loop back every few milliseconds. The metaschema check, the one
slow step (milliseconds per KB), runs in a worker thread of its own; a tool listed again
unchanged is not checked again.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mcp import types

from bridge import jsonutil
from bridge.tools import schemas
from bridge.tools.loader import NAME, Limits

SLICE = 0.01  # seconds of listing work between returns to the event loop
_CHECKS = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcp-schema-check")


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool the server listed, in OpenAI form, with its argument validator."""

    name: str
    definition: dict[str, Any]
    validator: Any  # checks the model's arguments against the tool's inputSchema
    schema_text: bytes  # the inputSchema as JSON: an unchanged tool is not checked again
    unchecked: tuple[str, ...] = ()  # patterns RE2 cannot run, left to the server


@dataclass(slots=True)
class Listing:
    """The tools kept so far from one listing, and what was left out."""

    limits: Limits
    include: frozenset[str] | None
    previous: dict[str, McpTool]
    tools: dict[str, McpTool] = field(default_factory=dict)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)
    unchecked: list[tuple[str, str]] = field(default_factory=list)  # (name, pattern) newly seen this listing
    capped: str | None = None  # why the listing stopped early

    @property
    def full(self) -> bool:
        return len(self.tools) >= self.limits.max_tools


async def add_page(listing: Listing, page: list[types.Tool]) -> None:
    """Convert one page's tools into `listing`, yielding to the loop every SLICE seconds."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    for tool in page:
        if listing.full:
            listing.capped = f"more than limits.max_tools ({listing.limits.max_tools}) tools"
            return
        await _add(listing, tool)
        if loop.time() - started > SLICE:
            await asyncio.sleep(0)
            started = loop.time()


def forget_output_schemas(page: list[types.Tool]) -> None:
    """Empty every tool's outputSchema, in the object the SDK keeps too.

    The SDK checks a call's structuredContent against the tool's outputSchema on the event
    loop, with Python's backtracking regexes and a metaschema check of any size. The bridge
    reads structuredContent only as text for the model, so that check buys nothing.
    """
    for tool in page:
        if tool.output_schema:
            tool.output_schema.clear()


async def _add(listing: Listing, tool: types.Tool) -> None:
    name = tool.name
    if (listing.include is not None and name not in listing.include) or name in listing.tools:
        return
    if not NAME.match(name):
        listing.skipped.append((name[:80], "name is not 1 to 64 letters, digits, '_' or '-'"))
        return
    converted = await _convert(listing, tool)
    if isinstance(converted, str):
        listing.skipped.append((name, converted))
    else:
        listing.tools[name] = converted


async def _convert(listing: Listing, tool: types.Tool) -> McpTool | str:
    """The tool as offered, or why it is skipped."""
    limits = listing.limits
    description = (tool.description or tool.title or tool.name)[:limits.max_description_chars]
    schema = tool.input_schema
    try:
        text = jsonutil.dumps(schema)
    except (TypeError, ValueError):
        return "inputSchema cannot be encoded (nested too deep?)"
    if len(text) > limits.max_schema_bytes:
        return f"inputSchema is larger than limits.max_schema_bytes ({limits.max_schema_bytes})"
    previous = listing.previous.get(tool.name)
    if previous is not None and previous.schema_text == text:
        validator, unchecked = previous.validator, previous.unchecked
    else:
        try:
            found = schemas.survey(schema, strict=False)
            await asyncio.get_running_loop().run_in_executor(_CHECKS, schemas.check, schema)
        except schemas.SchemaRefused as exc:
            return f"invalid inputSchema: {exc}"
        validator, unchecked = schemas.build(schema), tuple(found.unchecked)
        listing.unchecked.extend((tool.name, pattern) for pattern in unchecked)
    definition = {"type": "function", "function": {"name": tool.name, "description": description,
                                                    "parameters": schema}}
    return McpTool(tool.name, definition, validator, text, unchecked)
