"""Every private aiohttp and gunicorn hook the bridge uses still exists (bridge/compat.py): the day
an upgrade removes one, this fails, instead of the service misbehaving quietly."""

from __future__ import annotations

import asyncio
import socket
import sys

from aiohttp import ClientSession, web

from bridge.compat import GreedySite, QuietRunner, missing_hooks
from tests.support.processes import ROOT


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


SERVER = r"""
import asyncio, resource, socket, sys
from aiohttp import web
from bridge.compat import GreedySite, QuietRunner
from bridge.log import configure_logging
from bridge.redaction import Redactor

async def main():
    configure_logging("INFO", Redactor(), sys.stdout)
    app = web.Application()
    runner = QuietRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", 0), backlog=256)
    await GreedySite(runner, sock, backlog=256).start()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (40, hard))  # few descriptors left for callers
    print(sock.getsockname()[1], flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_out_of_descriptors_the_accept_loop_pauses_instead_of_spinning(tmp_path) -> None:
    """EMFILE leaves the listening socket readable: retrying at once would spin at 100% CPU and
    write a line per try (39,000 a second, measured). It pauses ACCEPT_RETRY seconds instead."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", SERVER, cwd=ROOT,
                                                stdout=asyncio.subprocess.PIPE)
    assert proc.stdout is not None
    port = int(await asyncio.wait_for(proc.stdout.readline(), 10))
    callers = [socket.create_connection(("127.0.0.1", port)) for _ in range(80)]
    try:
        paused = []
        while len(paused) < 2:  # the first pause, and the one after ACCEPT_RETRY (still out of descriptors)
            line = await asyncio.wait_for(proc.stdout.readline(), 5)
            assert b'"accept_paused"' in line, line
            paused.append(line)
    finally:
        proc.kill()
        rest = await proc.stdout.read()
        for caller in callers:
            caller.close()
    assert rest.count(b"accept_paused") <= 1  # no flood: at most the next retry's line
