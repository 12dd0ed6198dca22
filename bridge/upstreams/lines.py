"""Splitting a streamed body into lines as it arrives: LF, CRLF or a lone CR end a line.

Shared by the OpenAI drivers and the spec framings. A CR at the end of one read ends its
line at once (a CR-only stream must not wait for the next read); an LF opening the next
read is then the rest of that CRLF. A line longer than `limit` is an error, never a buffer
that grows without bound, and a long line arriving in many reads is appended, never re-copied.
"""

from __future__ import annotations

_BOM = b"\xef\xbb\xbf"


class LineTooLong(ValueError):
    """A line exceeded the limit."""


class LineSplitter:
    """Feed bytes, get complete lines (without their endings); `close` returns the last one."""

    __slots__ = ("after_cr", "limit", "pending", "started")

    def __init__(self, limit: int) -> None:
        self.pending = bytearray()
        self.after_cr = False  # the last read ended with CR
        self.started = False
        self.limit = limit

    def feed(self, data: bytes) -> list[bytes]:
        if not self.started or self.after_cr:
            data = self._edge(data)
        if not data:
            return []
        has_cr = b"\r" in data
        if not has_cr and b"\n" not in data:  # the middle of a long line
            self._hold(data)
            return []
        return self._lines(bytes(self.pending) + data if self.pending else data, has_cr)

    def _lines(self, buffer: bytes, has_cr: bool) -> list[bytes]:
        """The complete lines of `buffer`; its unfinished rest is kept for the next read."""
        lines, tail = self._split(buffer, has_cr)
        if tail or self.pending:
            self.pending = bytearray(tail)
        if len(buffer) > self.limit and max(len(tail), *map(len, lines)) > self.limit:
            raise LineTooLong(f"a stream line is longer than {self.limit} bytes")
        return lines

    def _hold(self, data: bytes) -> None:
        """More of a line that has not ended yet."""
        self.pending += data
        self.after_cr = False
        if len(self.pending) > self.limit:
            raise LineTooLong(f"a stream line is longer than {self.limit} bytes")

    def _edge(self, data: bytes) -> bytes:
        """The first read without its byte-order mark; after a CR, the LF that completes it."""
        if not self.started and data:
            self.started = True
            if data.startswith(_BOM):
                data = data[len(_BOM):]
        if self.after_cr and data[:1] == b"\n":
            data = data[1:]
        return data

    def _split(self, buffer: bytes, has_cr: bool) -> tuple[list[bytes], bytes]:
        """The complete lines of `buffer` and the unfinished rest (what is pending never holds an ending)."""
        if has_cr:
            lines = buffer.splitlines()
            tail = b"" if buffer.endswith((b"\n", b"\r")) else lines.pop()
            self.after_cr = buffer.endswith(b"\r")
        else:
            lines = buffer.split(b"\n")
            tail = lines.pop()  # b"" after a final LF, else the unfinished line
            self.after_cr = False
        return lines, tail

    def close(self) -> list[bytes]:
        """At the end of the body: the last line, even without its ending."""
        tail, self.pending = bytes(self.pending), bytearray()
        return [tail] if tail else []
