"""A real MCP server for the tests: the mcp SDK's own MCPServer, served by uvicorn on 127.0.0.1.

Imported only where it is used (the SDK is heavy): tests/conftest.py's `mcp_server` fixture,
tests/test_tools_mcp.py, tests/test_tools_doc.py.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable, Coroutine
from typing import Any

import anyio
import uvicorn
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.session import ServerSession
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.subscriptions import ToolsListChanged

MCP_TOKEN = "orderdesk-9Yx8Qw2Er7Ty1Ui3Zz"  # shaped like no known credential: only configuration can mask it


class CountingBus(InMemorySubscriptionBus):
    """The in-memory bus, telling the test when a client has opened a subscriptions/listen stream."""

    def __init__(self) -> None:
        super().__init__()
        self.listening = threading.Event()

    def subscribe(self, listener: Callable[[Any], None]) -> Callable[[], None]:
        unsubscribe = super().subscribe(listener)
        self.listening.set()
        return unsubscribe


class McpTestServer:
    """MCPServer with two tools, served by uvicorn in its own thread and loop on a pre-bound socket.

    Until `start()`, the port is bound but not listening, so connections are refused.
    """

    def __init__(self, port: int = 0) -> None:
        self.bus = CountingBus()
        self.mcp = MCPServer("order-desk", subscriptions=self.bus, log_level="WARNING")
        self.sessions: list[ServerSession] = []
        self.requests: list[tuple[dict[str, str], str]] = []
        self.orders: list[str] = []
        self.slow_started = threading.Event()
        self.slow_cancelled = threading.Event()
        self._add_tools()
        self.mcp.middleware.append(self._remember_session)
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"

    def _add_tools(self) -> None:
        orders, started, cancelled = self.orders, self.slow_started, self.slow_cancelled

        @self.mcp.tool()
        def lookup_order(order_id: str) -> str:
            """Look up an order by its id."""
            orders.append(order_id)
            if order_id == "missing":
                raise ToolError(f"no order {order_id}")
            if order_id == "long":
                return "line of order history. " * 200
            return f"Order {order_id}: shipped (internal ref {MCP_TOKEN})"

        @self.mcp.tool()
        async def slow_report(seconds: float) -> str:
            """Build a report; takes a while."""
            started.set()
            try:
                await anyio.sleep(seconds)  # the tool's own work, not test synchronisation
            except BaseException:
                cancelled.set()
                raise
            return "report ready"

    async def _remember_session(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.session not in self.sessions:
            self.sessions.append(ctx.session)
        return await call_next(ctx)

    def start(self) -> None:
        inner = self.mcp.streamable_http_app()

        async def recording(scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] == "http":
                headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
                self.requests.append((headers, scope["query_string"].decode()))
            await inner(scope, receive, send)

        ready = threading.Event()

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets)
                ready.set()

        self._server = Server(uvicorn.Config(recording, log_level="warning", lifespan="on",
                                             timeout_graceful_shutdown=0.2))  # type: ignore[arg-type]

        def serve() -> None:
            self.loop = asyncio.new_event_loop()
            assert self._server is not None
            self.loop.run_until_complete(self._server.serve(sockets=[self.sock]))
            self.loop.close()

        self._thread = threading.Thread(target=serve, name=f"mcp-server-{self.port}", daemon=True)
        self._thread.start()
        assert ready.wait(5), "the MCP server did not start"

    def stop(self) -> None:
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(5)
            assert not self._thread.is_alive(), "the MCP server did not stop"
        self.sock.close()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        """Run `coro` on the server's own loop and wait for it."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(5)

    def add_tool_and_notify(self, *, legacy: bool) -> None:
        """Add `track_parcel`, then announce the change the way the connection's era expects."""

        def track_parcel(parcel_id: str) -> str:
            return f"parcel {parcel_id} is out for delivery"

        async def change() -> None:
            if "track_parcel" not in {tool.name for tool in await self.mcp.list_tools()}:
                self.mcp.add_tool(track_parcel, description="Where a parcel is now")
            if legacy:
                for session in self.sessions:
                    await session.send_tool_list_changed()
            else:
                await self.bus.publish(ToolsListChanged())

        self.run(change())
