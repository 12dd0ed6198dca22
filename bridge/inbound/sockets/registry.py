"""The process's open sessions, so the drain's cut reaches each of them.

A session must end on its own while the drain lasts (the access middleware counts its
upgrade request as active for the socket's whole life, so the drain waits for it). When
DRAIN_TIMEOUT runs out the pipeline's `cut_event` is set; one watcher per process then shuts
every open session down at once (a goodbye, the platform's end message, close 1001), within
the moments the process has left.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from bridge.inbound.sockets.session import Session
from bridge.log import bound_logger
from bridge.pipeline import InFlight

CUT_BUDGET = 0.3  # seconds every session's goodbye may take together (the process exits soon after)


class Sessions:
    """The open sessions, and the watcher that cuts them at the end of the drain."""

    def __init__(self) -> None:
        self.live: set[Session] = set()
        self.logger: Any = bound_logger()  # the turn lines' logger, bound once to this app's configuration
        self._watcher: asyncio.Task[None] | None = None

    def add(self, session: Session, inflight: InFlight) -> None:
        self.live.add(session)
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._cut_when(inflight))

    def discard(self, session: Session) -> None:
        self.live.discard(session)

    async def _cut_when(self, inflight: InFlight) -> None:
        await inflight.cut_event.wait()
        sessions = list(self.live)
        if sessions:
            await asyncio.wait([asyncio.ensure_future(s.shut_down()) for s in sessions], timeout=CUT_BUDGET)

    async def aclose(self, app: web.Application) -> None:
        if self._watcher is not None:
            self._watcher.cancel()


SESSIONS = web.AppKey("socket_sessions", Sessions)


def setup(app: web.Application) -> None:
    """Keep the process's sessions on the app (called by bridge/inbound/routes.py)."""
    sessions = Sessions()
    app[SESSIONS] = sessions
    app.on_cleanup.append(sessions.aclose)
