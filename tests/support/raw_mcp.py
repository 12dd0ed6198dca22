"""A small streamable-HTTP MCP server on aiohttp that speaks JSON-RPC as the spec shows, and can misbehave.

The SDK's own server cannot list 10,000 tools in pages, hold a listing, send a 50 MB result or
spam change notifications, so hostile listings are served by this one. It speaks the
2025-06-18 handshake era of the transport:
https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http
- every client message is a POST of one JSON-RPC object; a request (it has an `id`) is
  answered with one `application/json` JSON-RPC response, a notification with 202 Accepted;
- `initialize` answers with an `Mcp-Session-Id` header, which the client echoes;
- a GET opens the server's own `text/event-stream`, where it sends notifications
  (`notifications/tools/list_changed`); DELETE ends the session.
A method it does not know (`server/discover`, the newer era's probe) gets JSON-RPC error
-32601, so the client falls back to `initialize`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

SESSION = "raw-session-1"
Body = Callable[[Any, dict[str, Any]], AsyncIterator[bytes]]  # a tools/call's (id, params) -> its body, in pieces


def tool(name: str, schema: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"name": name, "description": f"The {name} tool",
            "inputSchema": schema or {"type": "object", "properties": {"q": {"type": "string"}}}, **extra}


def text_result(text: str, **extra: Any) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}], **extra}


class RawMcpServer:
    """The server; set `pages`, `list_gate`, `call_body` or `call_result` to shape what it does."""

    def __init__(self, port: int = 0) -> None:
        self.pages: list[list[dict[str, Any]]] = [[tool("echo")]]
        self.list_gate: asyncio.Event | None = None  # tools/list waits for it when set
        self.list_started = asyncio.Event()
        self.list_count = 0
        self.listed_at: list[float] = []  # loop time of each tools/list answer
        self.calls: list[dict[str, Any]] = []
        self.call_result: Callable[[dict[str, Any]], dict[str, Any]] = \
            lambda params: text_result(f"echo {json.dumps(params.get('arguments'))}")
        self.call_body: Body | None = None  # a raw body instead of `call_result`
        self.hits: dict[str, int] = {}  # other paths asked for (a $ref that must never be fetched)
        self.other_hangs = False  # other paths never answer (a silent $ref target)
        self.streams: list[web.StreamResponse] = []
        self.stream_open = asyncio.Event()
        self.server = TestServer(self._app(), host="127.0.0.1", port=port)

    @property
    def url(self) -> str:
        return str(self.server.make_url("/mcp"))

    def other_url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def start(self) -> None:
        # a handler held on a gate that never opens must not hold the test's teardown (aiohttp waits 60 s)
        await self.server.start_server(shutdown_timeout=0.5)

    async def close(self) -> None:
        for stream in self.streams:
            stream.force_close()
        await self.server.close()

    async def notify_tools_changed(self, times: int = 1) -> None:
        """Send `notifications/tools/list_changed` on every open GET stream, `times` times."""
        event = b'event: message\ndata: {"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n\n'
        for stream in list(self.streams):
            for _ in range(times):
                await stream.write(event)

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/mcp", self._post)
        app.router.add_get("/mcp", self._get)
        app.router.add_delete("/mcp", self._delete)
        app.router.add_route("*", "/{tail:.*}", self._other)
        return app

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        return _empty(200)  # the session ends

    async def _post(self, request: web.Request) -> web.StreamResponse:
        message = await request.json()
        if "id" not in message:
            return _empty(202)
        method, params, ident = message["method"], message.get("params") or {}, message["id"]
        if method == "initialize":
            result = {"protocolVersion": params["protocolVersion"], "serverInfo": {"name": "raw", "version": "1"},
                      "capabilities": {"tools": {"listChanged": True}}}
            return web.json_response({"jsonrpc": "2.0", "id": ident, "result": result},
                                     headers={"Mcp-Session-Id": SESSION})
        if method == "tools/list":
            return await self._list(ident, params)
        if method == "tools/call":
            self.calls.append(params)
            if self.call_body is not None:
                return await _stream(request, self.call_body(ident, params))
            return web.json_response({"jsonrpc": "2.0", "id": ident, "result": self.call_result(params)})
        if method == "ping":
            return web.json_response({"jsonrpc": "2.0", "id": ident, "result": {}})
        return web.json_response({"jsonrpc": "2.0", "id": ident,
                                  "error": {"code": -32601, "message": f"Method not found: {method}"}})

    async def _list(self, ident: Any, params: dict[str, Any]) -> web.StreamResponse:
        self.list_count += 1
        self.list_started.set()
        if self.list_gate is not None:
            await self.list_gate.wait()
        index = int(params.get("cursor") or 0)
        result: dict[str, Any] = {"tools": self.pages[index]}
        if index + 1 < len(self.pages):
            result["nextCursor"] = str(index + 1)
        self.listed_at.append(asyncio.get_running_loop().time())
        return web.json_response({"jsonrpc": "2.0", "id": ident, "result": result})

    async def _get(self, request: web.Request) -> web.StreamResponse:
        stream = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await stream.prepare(request)
        self.streams.append(stream)
        self.stream_open.set()
        try:
            await asyncio.Event().wait()  # open until the client or the server goes
        finally:
            self.streams.remove(stream)
        return stream

    async def _other(self, request: web.Request) -> web.StreamResponse:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if self.other_hangs:
            await asyncio.Event().wait()
        return web.json_response({"type": "string"})


def _empty(status: int) -> web.Response:
    return web.Response(status=status)


async def _stream(request: web.Request, pieces: AsyncIterator[bytes]) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    await response.prepare(request)
    try:
        async for piece in pieces:
            await response.write(piece)
    except ConnectionError:
        pass  # the client stopped reading: what a cap does
    return response
