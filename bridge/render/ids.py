"""Identifiers for the answers the bridge writes: unique, and cheap to make.

`uuid4()` reads the OS's randomness for every id (a syscall, measurable at thousands of
streams a second). Here each process draws a random prefix once (again after a fork, so
gunicorn's workers never share one) and counts: `chatcmpl-<16 hex><counter>`.
"""

from __future__ import annotations

import itertools
import os
import secrets


class _Ids:
    __slots__ = ("counter", "prefix")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.prefix = secrets.token_hex(8)
        self.counter = itertools.count(1)

    def next(self, kind: str) -> str:
        return f"{kind}-{self.prefix}{next(self.counter):x}"


_IDS = _Ids()
os.register_at_fork(after_in_child=_IDS.reset)


def completion_id() -> str:
    """A chat completion's id: `chatcmpl-...`."""
    return _IDS.next("chatcmpl")


def audio_id() -> str:
    """An audio reply's id: `audio_...`."""
    return _IDS.next("audio").replace("-", "_", 1)


def session_id() -> str:
    """A WebSocket session's id, on its log lines beside the platform's own: `sess-...`."""
    return _IDS.next("sess")
