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
import re
from dataclasses import dataclass
from typing import Protocol

MAX_FRAME_BYTES = 1 << 20
MAX_DEPTH = 256  # json_lines nesting; deeper provider JSON is refused, not recursed into
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
    """Concatenated JSON values, or the elements of one streamed top-level array.

    Finds where each value ends by scanning only the new text of every read (strings, escapes
    and nesting depth carry over between reads), so a large value costs one pass, however it
    is split. Frames are not parsed here: the driver parses each one and reports bad JSON.
    """

    _SKIP = " \t\r\n,\ufeff"
    _IN_VALUE = re.compile(r'[\\"{}\[\]]')
    _IN_STRING = re.compile(r'[\\"]')
    _SCALAR_END = re.compile(r'[\s,\[\]{}"]')

    def __init__(self) -> None:
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.array: bool | None = None  # unknown until the first value starts
        self.parts: list[str] = []  # the unfinished value's text so far
        self.size = 0
        self.scalar = False  # the unfinished value is a number or literal, not an object, array or string
        self.depth = 0
        self.in_string = False
        self.escaped = False  # the previous read ended with a backslash inside a string

    def feed(self, chunk: bytes) -> list[Frame]:
        return self._read(self.decoder.decode(chunk), final=False)

    def close(self) -> list[Frame]:
        return self._read(self.decoder.decode(b"", final=True), final=True)

    def _read(self, text: str, *, final: bool) -> list[Frame]:
        frames: list[Frame] = []
        pos, n = 0, len(text)
        while True:
            if not self.parts:  # between values
                while pos < n and (text[pos] in self._SKIP or (self.array and text[pos] == "]")):
                    pos += 1
                if pos >= n:
                    break
                if self.array is None:
                    self.array = text[pos] == "["
                    if self.array:
                        pos += 1
                        continue
                self.scalar = text[pos] not in '{["'
            end = self._scan_scalar(text, pos, final) if self.scalar else self._scan(text, pos)
            if end < 0:
                self.parts.append(text[pos:])
                self.size += n - pos
                if self.size > MAX_FRAME_BYTES:
                    raise FramingError(f"stream value larger than {MAX_FRAME_BYTES} bytes")
                break
            frames.append(Frame("".join(self.parts) + text[pos:end]))
            self.parts, self.size = [], 0
            pos = end
        if final and self.parts:
            raise FramingError("stream ended inside a JSON value")
        return frames

    def _scan(self, text: str, pos: int) -> int:
        """Where the object, array or string under way ends in `text` (exclusive), or -1."""
        if self.escaped:
            self.escaped, pos = False, pos + 1
        while True:
            match = (self._IN_STRING if self.in_string else self._IN_VALUE).search(text, pos)
            if match is None:
                return -1
            char, at = match.group(), match.start()
            pos = at + 1
            if char == "\\":
                if self.in_string:
                    if pos >= len(text):
                        self.escaped = True
                        return -1
                    pos += 1
                continue
            if char == '"':
                self.in_string = not self.in_string
            elif char in "{[":
                self.depth += 1
                if self.depth > MAX_DEPTH:
                    raise FramingError(f"stream value nested deeper than {MAX_DEPTH} levels")
            else:
                self.depth -= 1
            if self.depth <= 0 and not self.in_string:
                self.depth = 0
                return pos

    def _scan_scalar(self, text: str, pos: int, final: bool) -> int:
        """Where the number or literal under way ends: at the next separator, or at the body's end."""
        match = self._SCALAR_END.search(text, pos + (0 if self.parts else 1))
        if match is not None:
            return match.start()
        return len(text) if final else -1


PARSERS: dict[str, type] = {"sse": SSEParser, "ndjson": NDJSONParser, "json_lines": JSONSeqParser}


def make_parser(framing: str) -> Parser:
    """A fresh parser for one response body."""
    parser: Parser = PARSERS[framing]()
    return parser
