"""Conditions on a payload or its SSE event name: `chunk_filter` rules and `when` clauses.

    {"path": "base_resp.status_code", "op": "ne", "value": 0}
    {"path": "reply", "op": "exists"}
    {"event": ["content_block_delta", "message_delta"], "op": "not_in"}

`ne` and `not_in` hold only when the value exists: a chunk without `base_resp` is not an
error chunk. `regex` searches a string value. `gt`, `lt`, `ge` and `le` compare numbers with
numbers and strings with strings; a missing value, or one of another type, never matches.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.paths import Path, PathError, compile_path, get_path

ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "gt": operator.gt, "lt": operator.lt, "ge": operator.ge, "le": operator.le}


def _ordered(op: str) -> Callable[[Any, Any, re.Pattern[str] | None], bool]:
    compare = ORDERING[op]
    return lambda subject, value, _: subject is not None and _comparable(subject, value) and compare(subject, value)


# op -> test(subject, value, pattern); `ne`, `not_in` and `regex` need a value to compare
TESTS: dict[str, Callable[[Any, Any, re.Pattern[str] | None], bool]] = {
    "exists": lambda subject, value, _: subject is not None,
    "not_exists": lambda subject, value, _: subject is None,
    "eq": lambda subject, value, _: bool(subject == value),
    "in": lambda subject, value, _: subject in value,
    "ne": lambda subject, value, _: subject is not None and bool(subject != value),
    "not_in": lambda subject, value, _: subject is not None and subject not in value,
    "regex": lambda subject, value, pattern: isinstance(subject, str) and pattern is not None
    and pattern.search(subject) is not None,
    **{op: _ordered(op) for op in ORDERING},
}


class Condition:
    """One compiled test against a payload (by `path`) or the frame's event name (`event`)."""

    __slots__ = ("on_event", "op", "path", "pattern", "test", "value")

    def __init__(self, raw: dict[str, Any], where: Sequence[str | int]) -> None:
        self.on_event = "event" in raw
        self.path: Path = () if self.on_event else _path(raw["path"], where)
        if self.on_event:
            self.value = raw["event"]
            self.op = raw.get("op") or ("in" if isinstance(self.value, list) else "eq")
        else:
            self.value = raw.get("value")
            self.op = raw.get("op") or ("eq" if "value" in raw else "exists")
            if self.op in ("eq", "ne") and "value" not in raw:
                raise SpecError(where, f"op {self.op!r} needs a value")
        _check_value(self.op, self.value, where)
        self.pattern = _regex(self.value, where) if self.op == "regex" else None
        self.test = TESTS[self.op]

    def matches(self, payload: Any, event: str | None) -> bool:
        subject = event if self.on_event else get_path(payload, self.path)
        return self.test(subject, self.value, self.pattern)


def _path(text: str, where: Sequence[str | int]) -> Path:
    try:
        return compile_path(text)
    except PathError as exc:
        raise SpecError([*where, "path"], str(exc)) from None


def _check_value(op: str, value: Any, where: Sequence[str | int]) -> None:
    if op in ("in", "not_in") and not isinstance(value, list):
        raise SpecError([*where, "value"], f"op {op!r} needs a list value")
    if op in ORDERING and (not isinstance(value, (int, float, str)) or isinstance(value, bool)):
        raise SpecError([*where, "value"], f"op {op!r} needs a number or a string value")
    if op == "regex" and not isinstance(value, str):
        raise SpecError([*where, "value"], "op 'regex' needs a string value")


def _regex(text: str, where: Sequence[str | int]) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise SpecError([*where, "value"], f"bad regular expression: {exc}") from None


def _comparable(subject: Any, value: Any) -> bool:
    """Numbers compare with numbers (booleans are not numbers), strings with strings."""
    if isinstance(value, str):
        return isinstance(subject, str)
    return isinstance(subject, (int, float)) and not isinstance(subject, bool)


def compile_conditions(raw: dict[str, Any] | list[dict[str, Any]], where: Sequence[str | int]) -> list[Condition]:
    """A condition or a list of conditions (all must hold)."""
    if isinstance(raw, dict):
        return [Condition(raw, where)]
    return [Condition(item, [*where, i]) for i, item in enumerate(raw)]


def all_match(conditions: list[Condition], payload: Any, event: str | None) -> bool:
    return all(c.matches(payload, event) for c in conditions)
