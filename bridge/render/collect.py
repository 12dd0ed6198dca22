"""Collects a whole event stream into one answer, for non-streaming replies."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from bridge.events import Batch, Event, Finish, Metadata, TextDelta, ToolCallDelta, Usage


class Answer:
    """The complete answer: text, tool calls, finish reason and usage."""

    __slots__ = ("parts", "tool_calls", "finish_reason", "usage", "metadata")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason = "stop"
        self.usage: Usage | None = None
        self.metadata: list[dict[str, Any]] = []

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def add(self, event: Event) -> None:
        kind = type(event)
        if kind is TextDelta:
            self.parts.append(event.text)  # type: ignore[union-attr]
        elif kind is ToolCallDelta:
            self._add_tool_call(event)  # type: ignore[arg-type]
        elif kind is Finish:
            self.finish_reason = event.reason  # type: ignore[union-attr]
        elif kind is Usage:
            self.usage = event  # type: ignore[assignment]
        elif kind is Metadata:
            self.metadata.append(event.payload)  # type: ignore[union-attr]

    def _add_tool_call(self, delta: ToolCallDelta) -> None:
        call = self.tool_calls.get(delta.index)
        if call is None:
            call = {"id": delta.id or f"call_{delta.index}", "type": "function",
                    "function": {"name": delta.name or "", "arguments": ""}}
            self.tool_calls[delta.index] = call
        elif delta.name:
            call["function"]["name"] += delta.name
        call["function"]["arguments"] += delta.arguments


async def collect(batches: AsyncIterator[Batch]) -> Answer:
    """Consume a stream of event batches into an Answer (UpstreamError propagates)."""
    answer = Answer()
    async for batch in batches:
        for event in batch:
            answer.add(event)
    return answer
