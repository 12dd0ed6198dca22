"""Finish reasons in OpenAI's words, whatever the provider says.

A call's `finish_reasons` table maps the provider's values (`"COMPLETE"`, `"end_turn"`,
`"MAX_TOKENS"`) to OpenAI's: `stop`, `length`, `tool_calls`, `content_filter`, or `error`, which
makes the answer a failure (`upstream_error`) instead of a successful partial one. OpenAI's
own values need no entry; any other value the table does not name is `stop`. So no caller
ever sees a provider's word for it.
"""

from __future__ import annotations

from typing import Any

from bridge.errors import ErrorKind, UpstreamError
from bridge.upstreams.spec.templates import to_text

OPENAI_REASONS = ("stop", "length", "tool_calls", "content_filter")
TARGETS = (*OPENAI_REASONS, "error")
DEFAULT = "stop"
BUILT_IN = {**{reason: reason for reason in OPENAI_REASONS}, "function_call": "tool_calls"}


def compile_table(table: dict[str, str]) -> dict[str, str]:
    """The spec's table over OpenAI's own values (the schema allows only TARGETS as values)."""
    return {**BUILT_IN, **table}


def openai_reason(raw: Any, table: dict[str, str]) -> str:
    """The OpenAI finish reason (or `error`) for a provider's value."""
    return table.get(raw if isinstance(raw, str) else to_text(raw), DEFAULT)


def failed(raw: Any, detail: str = "") -> UpstreamError:
    """The failure an `error` finish reason stands for, naming the provider's value."""
    said = f": {detail}" if detail else ""
    return UpstreamError(ErrorKind.UPSTREAM_ERROR, f"upstream ended the answer with finish reason "
                                                   f"{to_text(raw)[:40]!r}{said}")
