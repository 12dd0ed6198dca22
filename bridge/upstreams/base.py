"""The upstream driver interface."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from bridge.events import Event
from bridge.request import ChatRequest


class Upstream(Protocol):
    """A model behind the bridge.

    `stream` yields canonical events for one request and raises `UpstreamError` on failure.
    Closing the iterator early (a barge-in) must release the upstream connection at once.
    """

    name: str

    def stream(self, request: ChatRequest) -> AsyncIterator[Event]: ...

    async def aclose(self) -> None: ...
