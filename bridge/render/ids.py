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


def response_id() -> str:
    """A Responses API response's id: `resp_` and 32 random hex digits.

    Unlike the counted ids above it is drawn whole from the OS's randomness: it names a stored
    conversation (`previous_response_id`), so knowing one must not tell the next.
    """
    return "resp_" + secrets.token_hex(16)


def message_id() -> str:
    """An output message item's id: `msg_...`."""
    return _IDS.next("msg").replace("-", "_", 1)


def function_call_id() -> str:
    """A function-call output item's id: `fc_...`."""
    return _IDS.next("fc").replace("-", "_", 1)


def call_id() -> str:
    """A tool call's `call_id` when the upstream named none: `call_...`."""
    return _IDS.next("call").replace("-", "_", 1)
