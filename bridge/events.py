"""The canonical event stream: what every upstream driver yields and every renderer consumes.

A driver yields `Batch`es: the events one network read delivered, in order, so a renderer
writes each read to the caller with one write. A stream ends normally, or with an
`UpstreamError` (bridge.errors) raised in place of the next batch: a failure is something
the consumer cannot miss.

Events are small slotted classes, one built per upstream chunk. Consumers dispatch with
`type(event) is TextDelta`, which is both the fastest test and one mypy narrows on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from bridge.request import Message, content_text


@dataclass(slots=True)
class TextDelta:
    """New answer text, meant to be spoken."""

    text: str


@dataclass(slots=True)
class Filler:
    """A phrase the bridge says while the caller waits (slow start, tools at work).

    Streamed as answer text; never part of a collected answer (the form's `Text`).
    """

    text: str


@dataclass(slots=True)
class Reasoning:
    """The model is thinking (reasoning_content, a thinking block): progress, never spoken."""

    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a tool call, keyed by `index`; `id` and `name` come with the first one."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class Usage:
    """Token counts; `estimated` when the bridge counted them; `details` are the upstream's extras."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Usage) -> None:
        """Count `other` in too (the rounds of a tool loop): counts and numeric extras summed."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.estimated = self.estimated or other.estimated
        _add_counts(self.details, other.details)

    def as_dict(self) -> dict[str, Any]:
        """OpenAI's `usage` object, with any detail fields (`prompt_tokens_details`, ...) the upstream sent."""
        counts: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }
        return {**counts, **self.details} if self.details else counts


def _add_counts(into: dict[str, Any], more: dict[str, Any]) -> None:
    """Sum numbers key by key, nested objects of numbers too (`completion_tokens_details`)."""
    for key, value in more.items():
        mine = into.get(key)
        if isinstance(value, dict):
            into[key] = mine if isinstance(mine, dict) else {}
            _add_counts(into[key], value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            into[key] = (mine if isinstance(mine, (int, float)) else 0) + value


@dataclass(slots=True)
class Finish:
    """The answer is complete: `stop`, `length`, `tool_calls` or `content_filter`."""

    reason: str


@dataclass(slots=True)
class Metadata:
    """A platform chunk passed through untouched (Agora's custom_metadata, TRTC's meta.info).

    `raw` is its JSON text as the upstream sent it, when known: that is what the caller gets.
    """

    payload: dict[str, Any]
    raw: bytes | None = None


@dataclass(slots=True)
class Fingerprint:
    """The upstream's `system_fingerprint`, sent on with the chunks that follow."""

    value: str


@dataclass(slots=True)
class Note:
    """Something the pipeline did (a bridge tool ran), for a caller that asked to watch (the
    playground's timeline). Never spoken, never rendered for a platform."""

    name: str
    data: dict[str, Any]


Event = TextDelta | Filler | Reasoning | ToolCallDelta | Usage | Finish | Metadata | Fingerprint | Note
Batch = list[Event]  # the events of one upstream read, delivered together


# -- usage estimates, for upstreams that report none ---------------------------------------
# Linear and cheap on any input (a 4 MiB history is one UTF-8 encode, a few milliseconds),
# so an estimate never holds up the event loop.


def estimate_tokens(text: str) -> int:
    """About one token per CJK character and per four other characters.

    CJK characters take three UTF-8 bytes, so the bytes beyond one per character count them
    (characters of two bytes, such as accented Latin, count half: close enough).
    """
    if not text:
        return 0
    if text.isascii():
        return (len(text) + 3) // 4
    wide = (len(text.encode("utf-8", "surrogatepass")) - len(text)) // 2
    return wide + (len(text) - wide + 3) // 4


class TokenCount:
    """`estimate_tokens` of a text that arrives in pieces, without keeping the pieces."""

    __slots__ = ("chars", "extra_bytes")

    def __init__(self) -> None:
        self.chars = 0
        self.extra_bytes = 0  # UTF-8 bytes beyond one per character

    def add(self, text: str) -> None:
        self.chars += len(text)
        if not text.isascii():
            self.extra_bytes += len(text.encode("utf-8", "surrogatepass")) - len(text)

    @property
    def tokens(self) -> int:
        wide = self.extra_bytes // 2
        return wide + (self.chars - wide + 3) // 4 if self.chars else 0


def estimate_prompt_tokens(messages: Iterable[Message]) -> int:
    """Estimate of a prompt's tokens, with OpenAI's few tokens of framing per message."""
    return sum(4 + estimate_tokens(content_text(m.get("content"))) for m in messages) + 2
