"""The gunicorn worker: several bridge processes sharing one port (see gunicorn.conf.py).

aiohttp's `GunicornWebWorker` builds its own `AppRunner` without handler cancellation and
with a drain derived from gunicorn's `graceful_timeout`. This subclass builds the runner
the way `python app.py` runs the app: a caller hanging up cancels its handler (so the
upstream request is closed at once), SIGTERM drains in-flight streams for DRAIN_TIMEOUT
seconds, no access log (the bridge writes its own line), and the uvloop event loop.
An invalid configuration stops the worker as a boot error, so gunicorn halts with the
message instead of respawning workers forever.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from types import FrameType

from aiohttp import web
from aiohttp.worker import GunicornWebWorker
from gunicorn.workers import base

from bridge.config import ConfigError, Settings

try:  # imported here, in the master: a forked worker must reach its signal handlers quickly
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a pinned dependency on Linux
    uvloop = None  # type: ignore[assignment]

# gunicorn's exit status for "worker failed to boot": the master stops instead of respawning.
WORKER_BOOT_ERROR = 3
KEEPALIVE_TIMEOUT = 75.0  # aiohttp's default, as under `python app.py`; gunicorn's 2 s suits sync workers


class BridgeWorker(GunicornWebWorker):  # type: ignore[misc]
    """aiohttp's gunicorn worker with the bridge's runner options and a clean config failure."""

    def init_process(self) -> None:
        """Make the event loop GunicornWebWorker creates after the fork a uvloop one."""
        if uvloop is not None:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        super().init_process()

    def init_signals(self) -> None:
        """Until the event loop runs, catch signals with gunicorn's plain handlers.

        uvloop drops a signal delivered before its loop runs, and a worker spends its first
        moments building the app: a SIGTERM then would leave it running until SIGKILL.
        `make_runner`, the first code in the running loop, installs aiohttp's loop handlers.
        """
        base.Worker.init_signals(self)

    def load_wsgi(self) -> None:
        """Import the app factory gunicorn is pointed at (`bridge.server:create_app`), serve it our way."""
        super().load_wsgi()
        self.app_factory: Callable[[Settings], web.Application] = self.wsgi  # type: ignore[has-type]
        self.wsgi = self.make_runner

    async def make_runner(self) -> web.AppRunner:
        """Build settings, the app and its runner inside the worker's event loop."""
        super().init_signals()  # the loop runs now: aiohttp's handlers, which wake it at once
        try:
            settings = Settings.from_env()
            app = self.app_factory(settings)
        except ConfigError as exc:
            self.log.error("configuration error: %s", exc)
            sys.exit(WORKER_BOOT_ERROR)
        return web.AppRunner(
            app,
            handle_signals=False,
            access_log=None,
            keepalive_timeout=KEEPALIVE_TIMEOUT,
            shutdown_timeout=settings.drain_timeout,
            handler_cancellation=True,
        )

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM: stop at once (start draining), not at the next one-second heartbeat."""
        super().handle_exit(sig, frame)
        self._notify_waiter_done()

