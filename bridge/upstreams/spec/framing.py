"""Incremental stream framing: bytes in as they arrive, payload frames out.

Lines are split by the splitter every driver shares (bridge/upstreams/lines.py: LF, CRLF or
a lone CR, also across reads; a line over MAX_FRAME_BYTES is an error).

- `sse`: Server-Sent Events as the HTML standard parses them: `data:` with or without one
  space; several `data:` lines join with "\\n"; `:` lines are comments (DashScope's
  `:HTTP_STATUS/200`); `event:` names the frame (default `message`); `id:` and `retry:` are
  ignored. One deliberate tolerance: at the end of the body a pending event is dispatched
  instead of discarded (a truncated one then fails JSON parsing and is reported, a merely
  unterminated one is kept).
- `ndjson`: one JSON value per line; blank lines are skipped.
- `lines`: raw lines; each non-empty line is one frame, exactly as sent, with no SSE field
  parsing: a call's `chunk_match` then picks the payload out of it (the original LLM JSON
  format's `"data: (.*)"`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from bridge.upstreams.lines import LineSplitter, LineTooLong

MAX_FRAME_BYTES = 1 << 20


class FramingError(ValueError):
    """The stream cannot be split into frames (a line or frame over the size limit)."""


@dataclass(slots=True)
class Frame:
    """One payload: its text and, for SSE, its event name."""

    data: str
    event: str | None = None


class Parser(Protocol):
    def feed(self, chunk: bytes) -> list[Frame]: ...

    def close(self) -> list[Frame]: ...


class _LineParser:
    """What the three framings share: lines in, frames out."""

    def __init__(self) -> None:
        self.lines = LineSplitter(MAX_FRAME_BYTES)

    def feed(self, chunk: bytes) -> list[Frame]:
        try:
            return self._process(self.lines.feed(chunk))
        except LineTooLong as exc:
            raise FramingError(str(exc)) from None

    def close(self) -> list[Frame]:
        return self._process(self.lines.close())

    def _process(self, lines: list[bytes]) -> list[Frame]:
        raise NotImplementedError


class SSEParser(_LineParser):
    """Server-Sent Events (HTML Living Standard, "Event stream interpretation")."""

    def __init__(self) -> None:
        super().__init__()
        self.data: list[str] = []
        self.size = 0
        self.event = ""

    def close(self) -> list[Frame]:
        frames = super().close()
        frame = self._dispatch()
        return [*frames, frame] if frame else frames

    def _process(self, lines: list[bytes]) -> list[Frame]:
        frames: list[Frame] = []
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            if not line:
                frame = self._dispatch()
                if frame is not None:
                    frames.append(frame)
                continue
            if line[0] == ":":
                continue
            field, sep, value = line.partition(":")
            if sep and value[:1] == " ":
                value = value[1:]
            if field == "data":
                self.data.append(value)
                self.size += len(value)
                if self.size > MAX_FRAME_BYTES:
                    raise FramingError(f"stream event larger than {MAX_FRAME_BYTES} bytes")
            elif field == "event":
                self.event = value
        return frames

    def _dispatch(self) -> Frame | None:
        data, event = self.data, self.event
        self.data, self.size, self.event = [], 0, ""
        if not data:
            return None
        return Frame("\n".join(data), event or "message")


class NDJSONParser(_LineParser):
    """Newline-delimited JSON: each non-blank line is one payload."""

    def _process(self, lines: list[bytes]) -> list[Frame]:
        return [Frame(text) for text in (line.decode("utf-8", "replace").strip() for line in lines) if text]


class LineParser(_LineParser):
    """Raw lines: each non-empty line is one frame, its text exactly as sent (no field parsing)."""

    def _process(self, lines: list[bytes]) -> list[Frame]:
        return [Frame(line.decode("utf-8", "replace")) for line in lines if line]


PARSERS: dict[str, type[_LineParser]] = {"sse": SSEParser, "ndjson": NDJSONParser, "lines": LineParser}


def make_parser(framing: str) -> Parser:
    """A fresh parser for one response body."""
    return PARSERS[framing]()
