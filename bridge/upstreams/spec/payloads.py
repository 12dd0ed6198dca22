"""A stream call's frames into events, and whether the stream ended the way the spec says.

Frames come from the framing parser (bridge/upstreams/spec/framing.py). A frame that is the
`done` payload or the `done_event` event ends the stream (the event's own payload is read
first: Cohere's `message-end` carries the usage and the finish reason); `chunk_match` picks
the JSON out of a raw line; `[DONE]` always ends a stream, whatever the framing.

A stream is complete when its end marker or a finish reason came. One that stops before is
`upstream_protocol` ("ended before the answer was complete"): a cut answer is never passed off
as a whole one. Only a call with `"end": "eof"` (a provider with no end marker at all) takes
the end of the body as the end of the answer.
"""

from __future__ import annotations

from typing import Any

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Batch
from bridge.upstreams.spec.extract import AnswerReader
from bridge.upstreams.spec.framing import Frame
from bridge.upstreams.spec.model import CallSpec

DONE = "[DONE]"  # OpenAI's end marker: never a payload, so it ends a stream even where `done` is not declared


class PayloadReader:
    """The events of a stream's frames, read after read; `error` holds what stopped it.

    A bad payload ends the stream, but the events before it still reach the caller: `check`
    raises the error after the batch has been yielded.
    """

    __slots__ = ("answer", "call", "done", "error")

    def __init__(self, call: CallSpec, answer: AnswerReader) -> None:
        self.call = call
        self.answer = answer
        self.done = False
        self.error: UpstreamError | None = None

    def feed(self, frames: list[Frame]) -> Batch:
        batch: Batch = []
        for frame in frames:
            data = self._payload(frame)
            if data is not None and data and not data.isspace():
                try:
                    batch += self.answer.feed(json_payload(data, "stream payload"), frame.event)
                except UpstreamError as exc:
                    self.error = exc
                    return batch
            if self.done:
                return batch
        return batch

    def _payload(self, frame: Frame) -> str | None:
        """The frame's JSON text, None for a frame to skip; sets `done` on the end marker."""
        call = self.call
        if call.done_event is not None and frame.event == call.done_event:
            self.done = True  # read its payload, then stop
        data = frame.data
        if call.done is not None and data.strip() == call.done:
            self.done = True
            return None
        if call.chunk_match is not None:
            match = call.chunk_match.search(data)
            if match is None:
                return None
            data = match.group(1) if call.chunk_match.groups else match.group(0)
        if data.strip() == (call.done or DONE):  # the marker, whatever the framing (`data: [DONE]` lines)
            self.done = True
            return None
        return data

    def check(self) -> None:
        """Raise the error a bad payload left, if any."""
        if self.error is not None:
            raise self.error

    def check_complete(self) -> None:
        """At the end of the body: no payload at all, or no end marker and no finish reason, is a failure."""
        if self.done:
            return
        if self.answer.payloads == 0:
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream answered with a stream that carried no payload")
        if self.answer.finish is None and self.call.end != "eof":
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream stream ended before the answer was complete")


def json_payload(data: str | bytes, what: str) -> Any:
    try:
        return jsonutil.loads(data)
    except ValueError:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream sent a {what} that is not JSON") from None
