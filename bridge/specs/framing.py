"""Incremental stream framing: bytes in as they arrive, payload frames out.

- `sse`: Server-Sent Events as the HTML standard parses them: lines end in CRLF, LF or CR
  (also split across reads); `data:` with or without one space; several `data:` lines join
  with "\\n"; `:` lines are comments (DashScope's `:HTTP_STATUS/200`); `event:` names the
  frame (default `message`); `id:` and `retry:` are ignored. One deliberate tolerance: at the
  end of the body a pending event is dispatched instead of discarded (a truncated one then
  fails JSON parsing and is reported, a merely unterminated one is kept).
- `ndjson`: one JSON value per line; blank lines are skipped.
- `json_lines`: JSON values one after another, separated by anything or nothing, optionally
  wrapped in one top-level array (`[{...},{...}]`, the shape of streamed JSON arrays).
"""

from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Protocol

MAX_FRAME_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"


class FramingError(ValueError):
    """The stream cannot be split into frames (a line or frame over the size limit, bad JSON)."""


@dataclass(slots=True)
class Frame:
    """One payload: its text and, for SSE, its event name."""

    data: str
    event: str | None = None


class Parser(Protocol):
    def feed(self, chunk: bytes) -> list[Frame]: ...

    def close(self) -> list[Frame]: ...


class _Lines:
    """Splits bytes into complete lines, keeping the unfinished tail for the next read."""

    def __init__(self, *, cr: bool) -> None:
        self.buffer = b""
        self.cr = cr  # does a lone CR end a line?
        self.started = False
        self.after_cr = False  # the last read ended with CR: an LF first in the next one is its CRLF

    def feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return []
        if not self.started:
            self.started = True
            if chunk.startswith(_BOM):
                chunk = chunk[len(_BOM):]
        if self.after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:]
        buffer = self.buffer + chunk if self.buffer else chunk
        if self.cr:
            # A CR at the end ends its line now (a CR-only stream must not wait for the next read).
            lines = buffer.splitlines(keepends=True)
            self.buffer = lines.pop() if lines and not lines[-1].endswith((b"\n", b"\r")) else b""
            self.after_cr = buffer.endswith(b"\r")
        else:
            lines = buffer.split(b"\n")
            self.buffer = lines.pop()
        if len(self.buffer) > MAX_FRAME_BYTES:
            raise FramingError(f"stream line longer than {MAX_FRAME_BYTES} bytes")
        return lines

    def close(self) -> list[bytes]:
        tail, self.buffer = self.buffer, b""
        return [tail] if tail else []


class SSEParser:
    """Server-Sent Events (HTML Living Standard, "Event stream interpretation")."""

    def __init__(self) -> None:
        self.lines = _Lines(cr=True)
        self.data: list[str] = []
        self.size = 0
        self.event = ""

    def feed(self, chunk: bytes) -> list[Frame]:
        return self._process(self.lines.feed(chunk))

    def close(self) -> list[Frame]:
        frames = self._process(self.lines.close())
        frame = self._dispatch()
        return [*frames, frame] if frame else frames

    def _process(self, lines: list[bytes]) -> list[Frame]:
        frames: list[Frame] = []
        for raw in lines:
            line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
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


class NDJSONParser:
    """Newline-delimited JSON: each non-blank line is one payload."""

    def __init__(self) -> None:
        self.lines = _Lines(cr=False)

    def feed(self, chunk: bytes) -> list[Frame]:
        return self._frames(self.lines.feed(chunk))

    def close(self) -> list[Frame]:
        return self._frames(self.lines.close())

    @staticmethod
    def _frames(lines: list[bytes]) -> list[Frame]:
        return [Frame(text) for text in (line.decode("utf-8", "replace").strip() for line in lines) if text]


class JSONSeqParser:
    """Concatenated JSON values, or the elements of one streamed top-level array."""

    _SKIP = " \t\r\n,"

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.json = json.JSONDecoder()
        self.text = ""
        self.array: bool | None = None  # unknown until the first value starts

    def feed(self, chunk: bytes) -> list[Frame]:
        self.text += self.decoder.decode(chunk)
        return self._frames(final=False)

    def close(self) -> list[Frame]:
        self.text += self.decoder.decode(b"", final=True)
        return self._frames(final=True)

    def _frames(self, *, final: bool) -> list[Frame]:
        frames: list[Frame] = []
        text, pos = self.text, 0
        while True:
            while pos < len(text) and (text[pos] in self._SKIP or (self.array and text[pos] == "]")):
                pos += 1
            if pos >= len(text):
                break
            if self.array is None:
                self.array = text[pos] == "["
                if self.array:
                    pos += 1
                    continue
            try:
                _, end = self.json.raw_decode(text, pos)
            except json.JSONDecodeError:
                if final:
                    raise FramingError("stream ended inside a JSON value, or sent one that is not JSON") from None
                break  # incomplete: wait for more bytes
            frames.append(Frame(text[pos:end]))
            pos = end
        self.text = text[pos:]
        if len(self.text) > MAX_FRAME_BYTES:
            raise FramingError(f"stream value larger than {MAX_FRAME_BYTES} bytes")
        return frames


PARSERS: dict[str, type] = {"sse": SSEParser, "ndjson": NDJSONParser, "json_lines": JSONSeqParser}


def make_parser(framing: str) -> Parser:
    """A fresh parser for one response body."""
    parser: Parser = PARSERS[framing]()
    return parser
