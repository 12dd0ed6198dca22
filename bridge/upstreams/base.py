"""The upstream driver interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from bridge.events import Batch, Event
from bridge.request import ChatRequest


class Upstream(Protocol):
    """A model behind the bridge.

    `stream` yields canonical events for one request and raises `UpstreamError` on failure.
    Closing the iterator early (a barge-in) must release the upstream connection at once.
    An upstream may also set `first_event_timeout` (seconds) when its first event can
    legitimately come later than UPSTREAM_TTFT_TIMEOUT, as with submit-and-poll APIs.
    """

    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[Event | Batch]: ...

    async def aclose(self) -> None: ...
