"""One MCP server, reached over streamable HTTP with the official `mcp` SDK as the client.

A background task connects, lists the server's tools and keeps the list current; when the
server is unreachable or the connection drops, its tools are withdrawn and the task retries
with capped, jittered backoff. Change notifications (a `subscriptions/listen` stream on
2026-07-28 connections, `notifications/tools/list_changed` on earlier ones) trigger a re-list,
at most one per `limits.relist_interval` (notifications in between are coalesced).
Every answer is read with a cap (bridge.tools.mcp_wire), and a listing is bounded and worked
in slices (bridge.tools.mcp_listing).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable
from typing import Any

import httpx2
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
from bridge.tools.loader import Limits, McpServerSpec
from bridge.tools.mcp_listing import Listing, McpTool, add_page, forget_output_schemas
from bridge.tools.mcp_wire import CappedTransport, ReadCap, call_cap, reading, tls_context

RETRY_INITIAL = 0.5
RETRY_MAX = 30.0
STABLE_AFTER = 10.0  # a connection that lived this long resets the backoff
SSE_READ_TIMEOUT = 300.0
LOGGED_SKIPS = 5  # per listing: one line each for the first few skipped tools, then a count
_CLIENT_INFO = types.Implementation(name="voice-llm-bridge", version=__version__)

__all__ = ["McpLink", "McpTool", "display_url", "error_kind", "render"]


class McpLink:
    """Connection, tool list and calls for one `mcp_servers` entry."""

    def __init__(self, spec: McpServerSpec, redact: Redactor, on_change: Callable[[bool], None], *,
                 limits: Limits | None = None, retry: tuple[float, float] | None = None, mode: str = "auto") -> None:
        self.spec = spec
        self.redact = redact
        self.limits = limits or Limits()
        self.url = display_url(spec.url, redact)
        self.tools: dict[str, McpTool] = {}
        self.attempted = asyncio.Event()  # the first attempt ended: listed, or failed
        self._on_change = on_change  # called with True after a listing, False when the tools are withdrawn
        self._retry = retry or (RETRY_INITIAL, RETRY_MAX)
        self._mode = mode
        self._client: Client | None = None
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()  # the connection is gone: reconnect
        self._listed_at = 0.0
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
        cap = ReadCap(call_cap(self.spec.max_result_bytes))
        try:
            with reading(cap):
                async with asyncio.timeout(timeout):
                    result = await client.call_tool(name, args, read_timeout_seconds=timeout + 1)
        except Exception as exc:
            if _cancelling():
                raise asyncio.CancelledError from exc
            if cap.exceeded:  # the answer was not read past its cap: the connection itself is fine
                return results.TOO_LARGE, (f"error: the tool {name} answered more than {cap.limit} bytes; "
                                           "the answer was not read")
            return self._failed(name, exc, timeout)
        content, cut = results.capped(render(result), self.spec.max_result_bytes, self.redact)
        if result.is_error:
            return results.ERROR, f"error: {content}"
        return (results.TOO_LARGE if cut else results.OK), content

    def _failed(self, name: str, exc: Exception, timeout: float) -> tuple[str, str]:
        if isinstance(exc, TimeoutError) or (isinstance(exc, MCPError) and exc.code == types.REQUEST_TIMEOUT):
            return results.TIMEOUT, f"error: the tool {name} did not answer within {timeout:g} s"
        if isinstance(exc, MCPError):
            if exc.code == types.CONNECTION_CLOSED or exc.message == "Session terminated":
                self._reconnect()
            return results.ERROR, f"error: the tool {name} failed: {results.excerpt(exc.message, self.redact)}"
        return results.ERROR, f"error: the tool {name} failed ({type(exc).__name__})"

    def _reconnect(self) -> None:
        self._lost.set()
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
                if _cancelling():
                    raise asyncio.CancelledError from exc
                error = error_kind(exc, self.redact)
            self.attempted.set()
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
        spec, page_bytes = self.spec, self.limits.max_list_page_bytes
        http = httpx2.AsyncClient(headers={"Accept-Encoding": "identity", **spec.headers},
                                  timeout=httpx2.Timeout(spec.timeout, read=SSE_READ_TIMEOUT),
                                  follow_redirects=False, trust_env=False,
                                  transport=CappedTransport(page_bytes, await tls_context()))
        client = Client(streamable_http_client(spec.url, http_client=http, max_sse_event_size=page_bytes),
                        mode=self._mode, cache=None, read_timeout_seconds=spec.timeout,
                        message_handler=self._on_message, client_info=_CLIENT_INFO)
        async with http, contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(spec.timeout * 2):
                await stack.enter_async_context(client)
                await self._refresh(client)
            self._lost.clear()
            self._wake.clear()
            self._client = client
            connected_at.append(asyncio.get_running_loop().time())
            get_logger().info("mcp_connected", url=self.url, protocol=client.protocol_version,
                              tools=sorted(self.tools), tools_count=len(self.tools))
            missing = (spec.include or frozenset()) - set(self.tools)
            if missing:
                get_logger().warning("mcp_include_missing", url=self.url, tools=sorted(missing))
            listener = asyncio.create_task(self._listen(client)) if _can_listen(client) else None
            try:
                await self._follow(client)
            finally:
                self._client = None
                if listener is not None:
                    listener.cancel()
                    await asyncio.wait([listener])

    async def _follow(self, client: Client) -> None:
        """Re-list on each change, at most once per `relist_interval`, until the connection is lost."""
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            pause = self._listed_at + self.limits.relist_interval - loop.time()
            if pause > 0 and not self._lost.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(pause):  # notifications meanwhile coalesce into this re-list
                        await self._lost.wait()
            if self._lost.is_set():
                return
            self._wake.clear()
            before = sorted(self.tools)
            async with asyncio.timeout(self.spec.timeout * 2):
                await self._refresh(client)
            if sorted(self.tools) != before:
                get_logger().info("mcp_tools_changed", url=self.url, tools=sorted(self.tools),
                                  tools_count=len(self.tools))

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
        """List every page (within the limits) and offer what was kept."""
        limits = self.limits
        listing = Listing(limits, self.spec.include, self.tools)
        cursor: str | None = None
        for _ in range(limits.max_list_pages):
            with reading(ReadCap(limits.max_list_page_bytes)):
                page = await client.list_tools(cursor=cursor)
            forget_output_schemas(page.tools)
            await add_page(listing, page.tools)
            cursor = page.next_cursor
            if cursor is None or listing.capped:
                break
        else:
            listing.capped = f"more than limits.max_list_pages ({limits.max_list_pages}) pages"
        self._listed_at = asyncio.get_running_loop().time()
        self.attempted.set()
        self._report(listing)
        self._set_tools(listing.tools, listed=True)

    def _report(self, listing: Listing) -> None:
        log = get_logger()
        for name, reason in listing.skipped[:LOGGED_SKIPS]:
            log.warning("mcp_tool_skipped", url=self.url, tool=name, reason=reason)
        if len(listing.skipped) > LOGGED_SKIPS:
            log.warning("mcp_tools_skipped", url=self.url, count=len(listing.skipped))
        for name, pattern in listing.unchecked[:LOGGED_SKIPS]:
            log.warning("mcp_pattern_unchecked", url=self.url, tool=name, pattern=pattern,
                        reason="RE2 cannot run it (lookaround or backreference); the server checks it")
        if listing.capped:
            log.warning("mcp_listing_capped", url=self.url, reason=listing.capped, kept=len(listing.tools))

    def _set_tools(self, tools: dict[str, McpTool], *, listed: bool = False) -> None:
        if tools or self.tools or listed:
            self.tools = tools
            self._on_change(listed)


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


def _cancelling() -> bool:
    """Whether this task is being cancelled: the SDK's task groups can turn a cancel into another error."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


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
