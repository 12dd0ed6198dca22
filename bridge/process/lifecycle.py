"""Serving the app, and a shutdown that drains honestly within DRAIN_TIMEOUT.

`python app.py` and each gunicorn worker run the same sequence. On SIGTERM (or SIGINT):

1. `/readyz` answers 503 at once. For DRAIN_DELAY seconds the listener still accepts new
   requests, so a load balancer that polls readiness can take the process out of rotation
   before connections are refused (Kubernetes without a preStop pause, a PaaS router).
2. The listener closes, idle keep-alive connections close, and requests in flight get the
   rest of DRAIN_TIMEOUT (counted from the signal) to finish.
3. At DRAIN_TIMEOUT every answer still waiting on its upstream is cut: a stream ends with an
   error event (`shutdown`) and `[DONE]`, a form request gets the failure phrase, both logged
   as cut by the server. They have CUT_GRACE seconds to be written.
4. Whatever still runs is cancelled, the upstream pools close, and the process exits: within
   DRAIN_TIMEOUT + 1 second of the signal.

SIGHUP reads BRIDGE_AGENTS again (bridge/process/app.py, `reload`); under gunicorn the master
passes it on to every worker (gunicorn.conf.py) instead of restarting them.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import socket
from collections.abc import Callable, Sequence

from aiohttp import web

from bridge.compat import GreedySite, QuietRunner
from bridge.config import Settings
from bridge.log import get_logger
from bridge.process.state import PROCESS

CUT_GRACE = 0.4  # seconds for cut answers to write their last event
CANCEL_GRACE = 0.2  # seconds aiohttp waits for handlers, twice, before and after cancelling them
GC_THRESHOLD = 10_000  # allocations between young-generation collections (Python's default: 700)
KEEPALIVE_TIMEOUT = 75.0  # aiohttp's default; gunicorn's 2 s suits sync workers, not streaming ones


class StartupError(Exception):
    """The server could not start listening; the message names the address and the reason."""


class Lifecycle:
    """One serving process: `start` listening, then `drain` on the way out."""

    def __init__(self, app: web.Application, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.runner = QuietRunner(app, handle_signals=False, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT,
                                   shutdown_timeout=CANCEL_GRACE, handler_cancellation=True)

    async def start(self, sockets: Sequence[socket.socket] = ()) -> None:
        """Listen on HOST:PORT (or on the given sockets, gunicorn's); StartupError when that fails."""
        server = self.settings.server
        await self.runner.setup()
        # gunicorn's sockets too: serving one listens again, with the site's backlog (default 128).
        try:
            listening = list(sockets) or [socket.create_server(
                (server.host, server.port), backlog=server.listen_backlog, family=_family(server.host))]
        except OSError as exc:
            await self.runner.cleanup()
            where = f"http://{server.host}:{server.port}"
            raise StartupError(f"could not listen on {where}: {exc.strerror or exc}") from None
        sites: list[web.BaseSite] = [GreedySite(self.runner, sock, backlog=server.listen_backlog) for sock in listening]
        for site in sites:
            try:
                await site.start()
            except OSError as exc:
                await self.runner.cleanup()
                raise StartupError(f"could not listen on {site.name}: {exc.strerror or exc}") from None
        settle_garbage_collector()
        state = self.app[PROCESS]
        get_logger().info("started", listening=[site.name for site in sites],
                          upstreams=[u.name for u in state.services.roster.default.pipeline.upstreams],
                          agents=len(state.services.roster.agents), max_history=self.settings.answer.max_history)

    async def drain(self, tick: Callable[[], None] | None = None) -> None:
        """Stop serving (steps 1-4 above); `tick` is called every second meanwhile (gunicorn's heartbeat)."""
        loop = asyncio.get_running_loop()
        server = self.settings.server
        state = self.app[PROCESS]
        deadline = loop.time() + server.drain_timeout
        ticker = asyncio.ensure_future(_tick(tick)) if tick is not None else None
        state.draining = True
        log = get_logger()
        log.info("draining", in_flight=state.inflight.count, active=state.active,
                 drain_timeout=server.drain_timeout, drain_delay=server.drain_delay)
        try:
            if server.drain_delay:
                await asyncio.sleep(server.drain_delay)
            for site in list(self.runner.sites):
                await site.stop()
            state.closing = True
            state.services.closing.set()  # socket routes end their connections between turns
            if self.runner.server is not None:
                self.runner.server.pre_shutdown()  # idle keep-alive connections now, busy ones after their answer
            if not await _idle(state.idle, lambda: state.active, deadline - loop.time()):
                log.warning("drain_timeout", active=state.active, in_flight=state.inflight.count,
                            detail="cutting the answers still running")
                state.inflight.cut()
                await _idle(state.idle, lambda: state.active, CUT_GRACE)
            await self.runner.cleanup()
        finally:
            if ticker is not None:
                ticker.cancel()
        log.info("stopped")


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def settle_garbage_collector() -> None:
    """After start-up: what start-up built lives as long as the process, so the collector stops
    scanning it (gc.freeze), and collects young objects less often (an answer's objects are
    freed by reference counting; cycles are rare). Collection was about 4% of the CPU per
    stream in the fleet-scale profile (issue 16)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


async def _idle(idle: asyncio.Event, active: Callable[[], int], timeout: float) -> bool:
    """Wait until no request is active, at most `timeout` seconds; True when none is."""
    idle.clear()
    if active() == 0:
        return True
    try:
        async with asyncio.timeout(max(timeout, 0.0)):
            while active():
                idle.clear()
                await idle.wait()
    except TimeoutError:
        return active() == 0
    return True


async def _tick(tick: Callable[[], None]) -> None:
    while True:
        tick()
        await asyncio.sleep(1.0)


async def serve_until(stop: asyncio.Event, app: web.Application, settings: Settings,
                      sockets: Sequence[socket.socket] = ()) -> None:
    """Listen until `stop` is set, then drain; StartupError when listening fails."""
    lifecycle = Lifecycle(app, settings)
    await lifecycle.start(sockets)
    await stop.wait()
    await lifecycle.drain()


def reload_on_sighup(app: web.Application) -> None:
    """SIGHUP: read BRIDGE_AGENTS again (one reload at a time; a bad file keeps the agents running)."""
    from bridge.process.app import reload

    loop = asyncio.get_running_loop()
    running: list[asyncio.Task[bool]] = []

    def on_sighup() -> None:
        if not running or running[-1].done():
            running[:] = [loop.create_task(reload(app))]

    loop.add_signal_handler(signal.SIGHUP, on_sighup)
