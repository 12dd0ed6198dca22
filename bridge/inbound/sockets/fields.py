"""Reading a platform's message fields with every size bounded.

A message is at most 64 KiB, but what a session keeps lives as long as the call: each caller
utterance, each identifier and each custom parameter is cut to a fixed size here, so a
session's memory is bounded by MAX_HISTORY times these caps whatever the platform sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from bridge.log import mask_number, short

MAX_UTTERANCE_CHARS = 4000  # one thing the caller said (a minute of speech is about 1,000 characters)
MAX_KEPT_ANSWER_CHARS = 8000  # of one answer, kept in the session's history
MAX_ID_CHARS = 128  # a call, session or account identifier
MAX_PARAMETERS = 32  # custom parameters kept (TwiML <Parameter>, Telnyx's, Retell's dynamic variables)
MAX_PARAMETER_CHARS = 256  # a custom parameter's name or value
PHONE_FIELDS = frozenset({"from", "to", "forwardedFrom", "from_number", "to_number"})


def text(value: Any, limit: int = MAX_UTTERANCE_CHARS) -> str:
    """A string field, cut to `limit` characters; anything else is ''."""
    return value[:limit] if isinstance(value, str) else ""


def identifiers(message: Mapping[str, Any], names: Iterable[str]) -> dict[str, str]:
    """The named identifiers the message carries (strings only), each cut to MAX_ID_CHARS."""
    found: dict[str, str] = {}
    for name in names:
        value = message.get(name)
        if isinstance(value, str) and value:
            found[name] = value[:MAX_ID_CHARS]
    return found


def logged(ids: Mapping[str, str]) -> dict[str, Any]:
    """Identifiers as they go on a log line: phone numbers masked, the rest shortened."""
    return {name: mask_number(value) if name in PHONE_FIELDS else short(value) for name, value in ids.items()}


def parameters(value: Any) -> dict[str, str]:
    """Custom parameters: the first MAX_PARAMETERS string-keyed scalar entries, names and values cut."""
    if not isinstance(value, dict):
        return {}
    kept: dict[str, str] = {}
    for name, item in value.items():
        if len(kept) == MAX_PARAMETERS:
            break
        if isinstance(item, (str, int, float, bool)):
            kept[str(name)[:MAX_PARAMETER_CHARS]] = str(item)[:MAX_PARAMETER_CHARS]
    return kept


def whole_number(value: Any) -> int | None:
    """A non-negative integer field (never a bool, never beyond 2^53), else None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 53:
        return None
    return value
