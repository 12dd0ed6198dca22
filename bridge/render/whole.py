"""A whole answer: the event stream collected, for replies that are not streamed (form, JSON)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from bridge.events import Batch, Event, Fingerprint, Finish, Metadata, Reasoning, TextDelta, ToolCallDelta, Usage


class WholeAnswer:
    """The complete answer: text, tool calls, finish reason, usage, platform chunks.

    Fillers (phrases said while the caller waited) are not part of it.
    """

    __slots__ = ("fingerprint", "finish_reason", "metadata", "parts", "reasoning", "tool_calls", "usage")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.finish_reason = "stop"
        self.usage: Usage | None = None
        self.metadata: list[Metadata] = []
        self.fingerprint: str | None = None
        self.reasoning: list[str] = []  # only when the route passes it on (REASONING=pass)

    @classmethod
    def of(cls, batch: Batch) -> WholeAnswer:
        """The answer one batch makes."""
        answer = cls()
        for event in batch:
            answer.add(event)
        return answer

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def calls(self) -> list[dict[str, Any]]:
        """The tool calls in order, OpenAI-shaped (their argument fragments joined)."""
        for call in self.tool_calls.values():
            function = call["function"]
            if type(function["arguments"]) is list:
                function["arguments"] = "".join(function["arguments"])
        return [self.tool_calls[i] for i in sorted(self.tool_calls)]

    def add(self, event: Event) -> None:
        if type(event) is TextDelta:
            self.parts.append(event.text)
        elif type(event) is ToolCallDelta:
            self._add_tool_call(event)
        elif type(event) is Finish:
            self.finish_reason = event.reason
        elif type(event) is Usage:
            self.usage = event
        elif type(event) is Metadata:
            self.metadata.append(event)
        elif type(event) is Fingerprint:
            self.fingerprint = event.value
        elif type(event) is Reasoning:
            self.reasoning.append(event.text)

    def _add_tool_call(self, delta: ToolCallDelta) -> None:
        """A fragment of a call; arguments are kept as a list of fragments until `calls` (adding to
        a string each time would copy it each time: quadratic in a long argument)."""
        call = self.tool_calls.get(delta.index)
        if call is None:
            call = {"id": delta.id or f"call_{delta.index}", "type": "function",
                    "function": {"name": delta.name or "", "arguments": []}}
            self.tool_calls[delta.index] = call
        elif delta.name:
            call["function"]["name"] += delta.name
        arguments = call["function"]["arguments"]
        if type(arguments) is str:  # joined by `calls` already: more came after
            arguments = call["function"]["arguments"] = [arguments]
        arguments.append(delta.arguments)


async def collect(batches: AsyncGenerator[Batch, None]) -> WholeAnswer:
    """Consume a stream of event batches into an WholeAnswer (UpstreamError propagates)."""
    answer = WholeAnswer()
    async with aclosing(batches) as stream:
        async for batch in stream:
            for event in batch:
                answer.add(event)
    return answer
