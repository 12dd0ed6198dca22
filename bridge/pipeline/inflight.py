"""What is in flight in this process: the concurrency cap and the drain's cut.

One per process, shared by every agent's pipeline: MAX_CONCURRENCY counts answers waiting on
an upstream whichever agent they belong to, and when the drain runs out (bridge/process/
lifecycle.py) `cut` ends every one of them honestly, each with a `shutdown` failure.
"""

from __future__ import annotations

import asyncio

from bridge.errors import overloaded
from bridge.metrics import Metrics
from bridge.pipeline.deadline import Deadline


class InFlight:
    """Counts answers in flight against `limit`, and cuts them all at the end of the drain."""

    def __init__(self, limit: int, metrics: Metrics) -> None:
        self.limit = limit
        self.metrics = metrics
        self.count = 0
        self.cutting = False
        self.cut_event = asyncio.Event()  # tool rounds wait on it
        self.deadlines: set[Deadline] = set()  # each upstream call's, so a cut reaches the wait in progress

    def check(self) -> None:
        """Raise the `overloaded` failure when `limit` answers are in flight."""
        if self.count >= self.limit:
            raise overloaded()

    def enter(self) -> None:
        self.check()
        self.count += 1
        self.metrics.in_flight.inc()

    def leave(self) -> None:
        self.count -= 1
        self.metrics.in_flight.dec()

    def cut(self) -> None:
        """End every answer in flight now: each ends with a `shutdown` failure."""
        self.cutting = True
        self.cut_event.set()
        for deadline in list(self.deadlines):
            deadline.cut()

