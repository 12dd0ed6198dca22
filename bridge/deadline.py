"""A cheap, movable deadline for one upstream call.

`asyncio.timeout` per chunk costs a timer handle per chunk. Here each chunk only moves a
float; the single timer re-arms lazily when it finds the deadline has moved. While the
caller holds the stream (writing to a slow client) the deadline is paused, so the
caller's time is never counted as the upstream's.
"""

from __future__ import annotations

import asyncio


class Deadline:
    """Cancels the current task when `when` passes while not paused (see `expired`)."""

    __slots__ = ("loop", "task", "when", "paused", "expired", "_grace", "_handle")

    def __init__(self, when: float, grace: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.task = asyncio.current_task()
        self.when = when
        self.paused = False
        self.expired = False
        self._grace = grace  # how long a paused deadline waits before looking again
        self._handle = self.loop.call_at(when, self._check)

    def _check(self) -> None:
        now = self.loop.time()
        if self.paused or now < self.when:
            self._handle = self.loop.call_at(now + self._grace if self.paused else self.when, self._check)
            return
        self.expired = True
        assert self.task is not None
        self.task.cancel()

    def absorb(self) -> bool:
        """After a CancelledError: True (and the cancel undone) if this deadline caused it."""
        if self.expired and self.task is not None:
            self.task.uncancel()
            return True
        return False

    def close(self) -> None:
        self._handle.cancel()
