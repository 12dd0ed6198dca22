"""A cheap, movable deadline for one upstream call.

`asyncio.timeout` per chunk costs a timer handle per chunk. Here each chunk only moves a
float; the single timer re-arms lazily when it finds the deadline has moved. While the
caller holds the stream (writing to a slow client) the deadline is paused, so the
caller's time is never counted as the upstream's. `cut` ends the call early for a server
shutdown: at once if the upstream is being waited for, or as soon as the caller's write
returns if it is paused.
"""

from __future__ import annotations

import asyncio


class Deadline:
    """Cancels the current task when `when` passes while not paused (see `expired`)."""

    __slots__ = ("_cancelling", "_grace", "_handle", "cut_requested", "expired", "loop", "paused", "task", "when")

    def __init__(self, loop: asyncio.AbstractEventLoop, when: float, grace: float) -> None:
        self.loop = loop
        task = asyncio.current_task(loop)
        assert task is not None
        self.task = task
        self.when = when
        self.paused = False
        self.expired = False
        self.cut_requested = False
        self._grace = grace  # how long a paused deadline waits before looking again
        self._cancelling = task.cancelling()
        self._handle = self.loop.call_at(when, self._check)

    def bind(self) -> None:
        """Cancel the task running now when the deadline passes.

        Called before each wait: the one answer may be awaited from a helper task (while a
        filler phrase waits on a timer) and then from the handler's own task.
        """
        task = asyncio.current_task(self.loop)
        if task is not self.task and task is not None:
            self.task = task
            self._cancelling = task.cancelling()

    def move(self, when: float) -> None:
        """Set a new deadline; the timer is re-armed only if it would now fire too late."""
        self.when = when
        if when < self._handle.when():
            self._handle.cancel()
            self._handle = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        now = self.loop.time()
        if self.paused or now < self.when:
            self._handle = self.loop.call_at(now + self._grace if self.paused else self.when, self._check)
            return
        self.expired = True
        self.task.cancel()

    def cut(self) -> None:
        """End the call now (server shutdown): cancel the wait, unless the caller holds the stream."""
        self.cut_requested = True
        if not self.paused and not self.expired:
            self.expired = True
            self.task.cancel()

    def absorb(self) -> bool:
        """After a CancelledError: True (and the cancel undone) if this deadline alone caused it.

        If someone else cancelled the task too (the caller hung up in the same loop pass),
        the cancellation stands, as with `asyncio.timeout`.
        """
        return self.expired and self.task.uncancel() <= self._cancelling

    def close(self) -> None:
        self._handle.cancel()
