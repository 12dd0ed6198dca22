"""Reading OpenAI Chat Completions SSE: `data:` lines into canonical events.

Shared by both OpenAI drivers. Each `chat.completion.chunk` is parsed once with the fast
JSON decoder straight into events; no intermediate objects.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

from bridge import jsonutil
from bridge.events import (
    Batch,
    Event,
    Finish,
    Metadata,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
)

USAGE_OPTIONS = {"include_usage": True}
MAX_LINE = 8 * 1024 * 1024  # one SSE line; a larger one is a broken or hostile upstream


class ChunkReader:
    """Turns the bytes of an OpenAI SSE stream, as they arrive, into event batches.

    `feed` returns the events of every complete line in what has arrived so far. A bad
    line ends the stream, but what came before it still reaches the caller: the error is
    raised by `check` after the batch has been yielded.
    """

    __slots__ = ("pending", "done", "finished", "error")

    def __init__(self) -> None:
        self.pending = bytearray()  # an unfinished line
        self.done = False  # `[DONE]` seen
        self.finished = False  # a finish_reason seen
        self.error: UpstreamError | None = None

    def feed(self, data: bytes) -> Batch:
        if b"\n" not in data:  # the middle of a long line: append, never re-copy what came before
            self.pending += data
            if len(self.pending) > MAX_LINE:
                self.error = UpstreamError("upstream_protocol", f"upstream sent a line over {MAX_LINE} bytes")
            return []
        self.pending += data
        lines = bytes(self.pending).split(b"\n")
        self.pending = bytearray(lines.pop())
        batch: Batch = []
        for line in lines:
            try:
                events, self.done = line_events(line)
            except UpstreamError as exc:
                self.error = exc
                break
            batch += events
            if self.done:
                break
        if not self.finished:
            self.finished = any(type(e) is Finish for e in batch)
        return batch

    def flush(self) -> Batch:
        """At the end of the body: the last line, even without its newline."""
        return self.feed(b"\n") if self.pending else []

    def check(self) -> None:
        """Raise the error a bad line left, if any."""
        if self.error is not None:
            raise self.error

    def check_complete(self) -> None:
        """At the end of the body: an answer with neither [DONE] nor a finish_reason was cut."""
        if not (self.done or self.finished):
            raise UpstreamError("upstream_protocol", "upstream stream ended before the answer was complete")


async def read_batches(chunks: AsyncIterable[bytes]) -> AsyncGenerator[Batch, None]:
    """The event batches of an SSE body, one per network read, ending at `[DONE]` or EOF.

    Raises UpstreamError for a bad line (after the events before it) or a cut-off answer.
    """
    reader = ChunkReader()
    async for data in chunks:
        batch = reader.feed(data)
        if batch:
            yield batch
        reader.check()
        if reader.done:
            return
    batch = reader.flush()
    if batch:
        yield batch
    reader.check()
    reader.check_complete()


def line_events(line: bytes) -> tuple[Batch, bool]:
    """Events of one SSE line, and whether it was the `[DONE]` sentinel."""
    if not line.startswith(b"data:"):
        return [], False  # blank separators, comments, `event:` / `id:` fields
    data = line[5:].strip()
    if data == b"[DONE]":
        return [], True
    return chunk_events(parse_chunk(data)), False


def parse_chunk(data: bytes) -> dict[str, Any]:
    """One chunk's JSON object; anything else is a protocol error."""
    try:
        chunk = jsonutil.loads(data)
    except ValueError:
        raise UpstreamError("upstream_protocol", "upstream sent a stream line that is not JSON") from None
    if not isinstance(chunk, dict):
        raise UpstreamError("upstream_protocol", "upstream sent a stream chunk that is not an object")
    return chunk


def chunk_events(chunk: dict[str, Any]) -> list[Event]:
    """Canonical events of one chat.completion.chunk (only choice 0 is used).

    Reasoning text (`reasoning_content`) is dropped: it is not meant to be spoken.
    """
    events: list[Event] = []
    choices = chunk.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content:
                events.append(TextDelta(content))
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                events.extend(_tool_call(tc) for tc in tool_calls)
        reason = choice.get("finish_reason")
        if reason:
            events.append(Finish(reason))
    elif chunk.get("object") == "chat.completion.custom_metadata":
        events.append(Metadata(chunk))
    elif "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise UpstreamError("upstream_error", f"upstream reported an error mid-stream: {str(message)[:300]}")
    usage = chunk.get("usage")
    if usage:
        events.append(Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)))
    return events


def _tool_call(tc: dict[str, Any]) -> ToolCallDelta:
    function = tc.get("function") or {}
    return ToolCallDelta(
        index=int(tc.get("index") or 0),
        id=tc.get("id"),
        name=function.get("name"),
        arguments=function.get("arguments") or "",
    )
