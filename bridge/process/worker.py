"""The gunicorn worker: several bridge processes sharing one port (see gunicorn.conf.py).

Each worker serves the app exactly as `python app.py` does (bridge/process/lifecycle.py: handler
cancellation when a caller hangs up, no access log, the same honest drain on SIGTERM) on the
uvloop event loop, with gunicorn's listening sockets. An invalid configuration stops the
worker as a boot error, so gunicorn halts with the message instead of respawning workers.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Callable
from types import FrameType

from aiohttp import web

from bridge.compat import WorkerHooks
from bridge.config import ConfigError, Settings, read_settings
from bridge.process.lifecycle import Lifecycle, StartupError, reload_on_sighup

try:  # imported here, in the master: a forked worker must reach its signal handlers quickly
    import uvloop
except ImportError:  # pragma: no cover - uvloop is a pinned dependency on Linux
    uvloop = None  # type: ignore[assignment]

# gunicorn's exit status for "worker failed to boot": the master stops instead of respawning.
WORKER_BOOT_ERROR = 3


class BridgeWorker(WorkerHooks):
    """aiohttp's gunicorn worker running the bridge's own lifecycle."""

    def init_process(self) -> None:
        """Make the event loop GunicornWebWorker creates after the fork a uvloop one."""
        if uvloop is not None:
            asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        super().init_process()

    def early_signals(self) -> None:
        """Until the event loop runs, catch signals with gunicorn's plain handlers.

        uvloop drops a signal delivered before its loop runs, and a worker spends its first
        moments building the app: a SIGTERM then would leave it running until SIGKILL.
        `serve`, the first code in the running loop, installs aiohttp's loop handlers.
        """
        super().early_signals()

    def load_wsgi(self) -> None:
        """Import the app factory gunicorn is pointed at (`bridge.process.app:create_app`)."""
        super().load_wsgi()
        self.app_factory: Callable[[Settings], web.Application] = self.wsgi

    async def serve(self) -> None:
        self.loop_signals()  # the loop runs now: aiohttp's handlers, which wake it at once
        try:
            settings = read_settings()
            app = self.app_factory(settings)
            lifecycle = Lifecycle(app, settings)
            # Our own copies of gunicorn's sockets: closing them is ours, closing the originals gunicorn's.
            await lifecycle.start([socket.fromfd(s.fileno(), s.family, s.type) for s in self.sockets])
        except (ConfigError, StartupError) as exc:
            self.log.error("%s error: %s", "configuration" if isinstance(exc, ConfigError) else "start-up", exc)
            sys.exit(WORKER_BOOT_ERROR)
        self.booted = True
        reload_on_sighup(app)  # the master passes SIGHUP on (gunicorn.conf.py): reload in place
        pid = os.getpid()
        while self.alive:
            self.notify()
            if self.ppid != os.getppid() and pid == os.getpid():
                self.log.info("Parent changed, shutting down: %s", self)
                break
            await self.next_heartbeat()
        await lifecycle.drain(tick=self.notify)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """SIGTERM: stop at once (start draining), not at the next one-second heartbeat."""
        super().handle_exit(sig, frame)
        self.wake()
