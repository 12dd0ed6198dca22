"""One MCP server, reached over streamable HTTP with the official `mcp` SDK as the client.

A background task connects, lists the server's tools and keeps the list current; when the
server is unreachable or the connection drops, its tools are withdrawn and the task retries
with capped, jittered backoff. Change notifications (a `subscriptions/listen` stream on
2026-07-28 connections, `notifications/tools/list_changed` on earlier ones) trigger a re-list.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx2
import jsonschema
from mcp import Client, types
from mcp.client.session import IncomingMessage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.types.version import MODERN_PROTOCOL_VERSIONS
from yarl import URL

from bridge import __version__, jsonutil
from bridge.log import get_logger
from bridge.redaction import Redactor
from bridge.tools import results
from bridge.tools.loader import NAME, McpServerSpec

RETRY_INITIAL = 0.5
RETRY_MAX = 30.0
STABLE_AFTER = 10.0  # a connection that lived this long resets the backoff
MAX_PAGES = 20
SSE_READ_TIMEOUT = 300.0
_CLIENT_INFO = types.Implementation(name="voice-llm-bridge", version=__version__)


@dataclass(frozen=True, slots=True)
class McpTool:
    """A tool the server listed, in OpenAI form, with its argument validator."""

    name: str
    definition: dict[str, Any]
    validator: Any  # a jsonschema validator for the tool's inputSchema


class McpLink:
    """Connection, tool list and calls for one `mcp_servers` entry."""

    def __init__(self, spec: McpServerSpec, redact: Redactor, on_change: Callable[[], None], *,
                 retry: tuple[float, float] | None = None, mode: str = "auto") -> None:
        self.spec = spec
        self.redact = redact
        self.url = display_url(spec.url, redact)
        self.tools: dict[str, McpTool] = {}
        self._on_change = on_change
        self._retry = retry or (RETRY_INITIAL, RETRY_MAX)
        self._mode = mode
        self._client: Client | None = None
        self._wake = asyncio.Event()
        self._broken = False
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"mcp {self.url}")

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        self._set_tools({})

    async def call(self, name: str, args: dict[str, Any], timeout: float) -> tuple[str, str]:
        """Run one tool through the SDK; (outcome, content). CancelledError propagates."""
        client = self._client
        if client is None or name not in self.tools:
            return results.ERROR, f"error: the tool {name} is unavailable right now"
        try:
            async with asyncio.timeout(timeout):
                result = await client.call_tool(name, args, read_timeout_seconds=timeout + 1)
        except TimeoutError:
            return results.TIMEOUT, f"error: the tool {name} did not answer within {timeout:g} s"
        except MCPError as exc:
            if exc.code == types.REQUEST_TIMEOUT:
                return results.TIMEOUT, f"error: the tool {name} did not answer within {timeout:g} s"
            if exc.code == types.CONNECTION_CLOSED or exc.message == "Session terminated":
                self._reconnect()
            return results.ERROR, f"error: the tool {name} failed: {results.excerpt(exc.message, self.redact)}"
        except Exception as exc:
            return results.ERROR, f"error: the tool {name} failed ({type(exc).__name__})"
        content, cut = results.capped(render(result), self.spec.max_result_bytes, self.redact)
        if result.is_error:
            return results.ERROR, f"error: {content}"
        return (results.TOO_LARGE if cut else results.OK), content

    def _reconnect(self) -> None:
        self._broken = True
        self._wake.set()

    async def _on_message(self, message: IncomingMessage) -> None:
        if isinstance(message, types.ToolListChangedNotification):
            self._wake.set()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay, failures = self._retry[0], 0
        while True:
            connected_at: list[float] = []
            try:
                await self._session(connected_at)
                error = "connection closed"
            except Exception as exc:
                error = error_kind(exc, self.redact)
            self._set_tools({})
            if connected_at:
                failures = 0
                if loop.time() - connected_at[0] >= STABLE_AFTER:
                    delay = self._retry[0]
                get_logger().warning("mcp_disconnected", url=self.url, error=error, retry_in=round(delay, 2))
            else:
                failures += 1
                get_logger().warning("mcp_unreachable", url=self.url, error=error, attempt=failures,
                                     retry_in=round(delay, 2))
            await asyncio.sleep(delay * (1 + 0.2 * random.random()))
            delay = min(delay * 2, self._retry[1])

    async def _session(self, connected_at: list[float]) -> None:
        """Connect, list, then follow changes until the connection is lost (returns or raises)."""
        spec = self.spec
        http = httpx2.AsyncClient(headers=spec.headers, timeout=httpx2.Timeout(spec.timeout, read=SSE_READ_TIMEOUT),
                                  follow_redirects=False, trust_env=False)
        client = Client(streamable_http_client(spec.url, http_client=http), mode=self._mode, cache=None,
                        read_timeout_seconds=spec.timeout, message_handler=self._on_message,
                        client_info=_CLIENT_INFO)
        async with http, contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(spec.timeout * 2):
                await stack.enter_async_context(client)
                await self._refresh(client)
            self._broken = False
            self._wake.clear()
            self._client = client
            connected_at.append(asyncio.get_running_loop().time())
            get_logger().info("mcp_connected", url=self.url, protocol=client.protocol_version,
                              tools=sorted(self.tools))
            missing = (spec.include or frozenset()) - set(self.tools)
            if missing:
                get_logger().warning("mcp_include_missing", url=self.url, tools=sorted(missing))
            listener = asyncio.create_task(self._listen(client)) if _can_listen(client) else None
            try:
                while True:
                    await self._wake.wait()
                    self._wake.clear()
                    if self._broken:
                        return
                    before = sorted(self.tools)
                    async with asyncio.timeout(spec.timeout * 2):
                        await self._refresh(client)
                    if sorted(self.tools) != before:
                        get_logger().info("mcp_tools_changed", url=self.url, tools=sorted(self.tools))
            finally:
                self._client = None
                if listener is not None:
                    listener.cancel()
                    await asyncio.wait([listener])

    async def _listen(self, client: Client) -> None:
        """Hold a subscriptions/listen stream open (2026-07-28); its end means reconnect."""
        try:
            async with client.listen(tools_list_changed=True) as subscription:
                async for _event in subscription:
                    self._wake.set()  # the event is also delivered to _on_message; one re-list is enough
        except MCPError as exc:
            if exc.code != types.CONNECTION_CLOSED:
                get_logger().info("mcp_no_change_events", url=self.url, error=error_kind(exc, self.redact))
                return
        except Exception:
            pass
        self._reconnect()

    async def _refresh(self, client: Client) -> None:
        tools: dict[str, McpTool] = {}
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor)
            for tool in page.tools:
                converted = self._convert(tool)
                if converted is not None:
                    tools[converted.name] = converted
            cursor = page.next_cursor
            if cursor is None:
                break
        self._set_tools(tools)

    def _convert(self, tool: types.Tool) -> McpTool | None:
        include = self.spec.include
        if include is not None and tool.name not in include:
            return None
        if not NAME.match(tool.name):
            get_logger().warning("mcp_tool_skipped", url=self.url, tool=tool.name[:80],
                                 reason="name is not 1 to 64 letters, digits, '_' or '-'")
            return None
        schema = tool.input_schema
        cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError:
            get_logger().warning("mcp_tool_skipped", url=self.url, tool=tool.name, reason="invalid inputSchema")
            return None
        description = tool.description or tool.title or tool.name
        definition = {"type": "function",
                      "function": {"name": tool.name, "description": description, "parameters": schema}}
        return McpTool(tool.name, definition, cls(schema))

    def _set_tools(self, tools: dict[str, McpTool]) -> None:
        if tools or self.tools:
            self.tools = tools
            self._on_change()


def render(result: types.CallToolResult) -> str:
    """The result as text: text blocks joined, anything else summarized in one line."""
    parts: list[str] = []
    for block in result.content:
        if isinstance(block, types.TextContent):
            parts.append(block.text)
        elif isinstance(block, types.ImageContent | types.AudioContent):
            parts.append(f"[{block.type}: {block.mime_type}, about {len(block.data) * 3 // 4} bytes, not shown]")
        elif isinstance(block, types.ResourceLink):
            parts.append(f"[resource link: {block.uri}]")
        elif isinstance(block, types.EmbeddedResource):
            resource = block.resource
            if isinstance(resource, types.TextResourceContents):
                parts.append(f"[resource {resource.uri}]\n{resource.text}")
            else:
                parts.append(f"[resource {resource.uri}: {resource.mime_type or 'binary'}, not shown]")
    if not parts and result.structured_content is not None:
        parts.append(jsonutil.dumps_str(result.structured_content))
    return "\n".join(parts)


def _can_listen(client: Client) -> bool:
    tools = client.server_capabilities.tools
    return client.protocol_version in MODERN_PROTOCOL_VERSIONS and bool(tools and tools.list_changed)


def display_url(url: str, redact: Redactor) -> str:
    """The URL for logs: no user info, no query string, no fragment, secrets masked."""
    try:
        parsed = URL(url)
        shown = str(parsed.with_user(None).with_query(None).with_fragment(None))
    except ValueError:
        shown = url.split("?", 1)[0].split("#", 1)[0]
    return redact(shown)


def error_kind(exc: BaseException, redact: Redactor) -> str:
    """A short, secret-free name for why a connection failed."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, MCPError):
        return f"MCPError {exc.code}: {results.excerpt(exc.message, redact, 120)}"
    if isinstance(exc, httpx2.HTTPStatusError):
        return f"HTTP {exc.response.status_code}"
    return type(exc).__name__
