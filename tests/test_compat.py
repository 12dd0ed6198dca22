"""Every private aiohttp and gunicorn hook the bridge uses still exists (bridge/compat.py): the day
an upgrade removes one, this fails, instead of the service misbehaving quietly."""

from __future__ import annotations

import asyncio
import socket

from aiohttp import ClientSession, web

from bridge.compat import GreedySite, QuietRunner, missing_hooks


async def test_no_hook_is_missing() -> None:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        return web.Response()

    server = web.Server(handler)
    assert missing_hooks(server) == []


async def test_a_greedy_site_takes_a_burst_of_connections_and_stops_cleanly() -> None:
    """GreedySite accepts every pending connection when its socket is readable; stopping it
    closes the socket, so a new connection is refused."""

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hi")

    app = web.Application()
    app.router.add_get("/", hello)
    runner = QuietRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0), backlog=512)
    port = sock.getsockname()[1]
    site = GreedySite(runner, sock, backlog=512)
    await site.start()
    try:
        async with ClientSession() as session:
            async def one() -> str:
                async with session.get(f"http://127.0.0.1:{port}/") as resp:
                    return await resp.text()

            assert await asyncio.gather(*(one() for _ in range(300))) == ["hi"] * 300
    finally:
        await runner.cleanup()
    assert sock.fileno() == -1
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        refused = False
    except OSError:
        refused = True
    assert refused
