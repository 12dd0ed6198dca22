"""The pipeline's trace, for a caller that asked to watch (`X-Bridge-Trace: on`): SSE comment lines.

The playground draws each turn's timeline from them (docs/playground.md). A comment line
(`: trace {...}`) is ignored by every SSE parser, and platforms never ask for it, so what they
receive is unchanged. What a line may say is listed here and nothing else: the agent that
answers (once, first), a filler said, the first answer text, each bridge tool run (name,
duration, outcome, round), the end; each with `at_ms`, the milliseconds since the request
arrived. Never a setting, a URL, a tool's arguments or result, or another agent.
"""

from __future__ import annotations

import time
from typing import Any

from bridge import jsonutil
from bridge.events import Batch, Event, Filler, Note, TextDelta
from bridge.render.openai import ChunkEncoder

TRACE_HEADER = "X-Bridge-Trace"
_NOTE_FIELDS = {"tool": ("name", "ms", "outcome", "round")}  # the notes a trace shows, and their fields


class Trace:
    """The trace lines of one answer, in the order the caller gets them."""

    __slots__ = ("_agent", "_answered", "_started")

    def __init__(self, agent: str, started: float) -> None:
        self._agent: str | None = agent  # said with the first line, then None
        self._started = started  # time.perf_counter() when the request arrived
        self._answered = False  # the first answer text was traced

    def batch(self, batch: Batch) -> bytes:
        """The lines for one batch, to go before its chunks (b"" when there is nothing to say)."""
        lines: list[dict[str, Any]] = []
        if self._agent is not None:
            lines.append({"event": "agent", "name": self._agent})
            self._agent = None
        lines += [line for event in batch if (line := self._about(event)) is not None]
        return self._lines(lines)

    def _about(self, event: Event) -> dict[str, Any] | None:
        """What the trace says of one event (None: nothing)."""
        if type(event) is Note:
            fields = _NOTE_FIELDS.get(event.name)
            return None if fields is None else {"event": event.name, **{k: event.data.get(k) for k in fields}}
        if type(event) is Filler:
            return {"event": "filler", "text": event.text}
        if type(event) is TextDelta and event.text and not self._answered:
            self._answered = True
            return {"event": "first_token"}
        return None

    def end(self) -> bytes:
        return self._lines([{"event": "done"}])

    def _lines(self, lines: list[dict[str, Any]]) -> bytes:
        if not lines:
            return b""
        at_ms = round((time.perf_counter() - self._started) * 1000, 1)
        # JSON escapes line breaks, so each object stays on its one comment line
        return b"".join(b": trace " + jsonutil.dumps({**line, "at_ms": at_ms}) + b"\n" for line in lines) + b"\n"


class TracedChunks(ChunkEncoder):
    """OpenAI chunks with the trace's comment lines before each batch's chunks and before `[DONE]`."""

    __slots__ = ("trace",)

    def __init__(self, model: str, include_usage: bool, trace: Trace) -> None:
        super().__init__(model, include_usage)
        self.trace = trace

    def batch(self, batch: Batch) -> bytes:
        return self.trace.batch(batch) + super().batch(batch)

    def end(self) -> bytes:
        return self.trace.end() + super().end()
