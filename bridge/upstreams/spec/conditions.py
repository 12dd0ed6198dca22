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


class Condition:
    """One compiled test against a payload (by `path`) or the frame's event name (`event`)."""

    __slots__ = ("on_event", "op", "path", "pattern", "value")

    def __init__(self, raw: dict[str, Any], where: Sequence[str | int]) -> None:
        self.on_event = "event" in raw
        self.path: Path = ()
        if self.on_event:
            value = raw["event"]
            op = raw.get("op") or ("in" if isinstance(value, list) else "eq")
        else:
            try:
                self.path = compile_path(raw["path"])
            except PathError as exc:
                raise SpecError([*where, "path"], str(exc)) from None
            value = raw.get("value")
            op = raw.get("op") or ("eq" if "value" in raw else "exists")
        if op in ("in", "not_in") and not isinstance(value, list):
            raise SpecError([*where, "value"], f"op {op!r} needs a list value")
        if op in ("eq", "ne") and not self.on_event and "value" not in raw:
            raise SpecError(where, f"op {op!r} needs a value")
        if op in ORDERING and (not isinstance(value, (int, float, str)) or isinstance(value, bool)):
            raise SpecError([*where, "value"], f"op {op!r} needs a number or a string value")
        self.pattern: re.Pattern[str] | None = None
        if op == "regex":
            if not isinstance(value, str):
                raise SpecError([*where, "value"], "op 'regex' needs a string value")
            try:
                self.pattern = re.compile(value)
            except re.error as exc:
                raise SpecError([*where, "value"], f"bad regular expression: {exc}") from None
        self.op = op
        self.value = value

    def matches(self, payload: Any, event: str | None) -> bool:
        subject = event if self.on_event else get_path(payload, self.path)
        op = self.op
        if op == "exists":
            return subject is not None
        if op == "not_exists":
            return subject is None
        if op == "eq":
            return bool(subject == self.value)
        if op == "in":
            return subject in self.value
        if subject is None:
            return False  # ne / not_in / regex need a value to compare
        if op == "ne":
            return bool(subject != self.value)
        if op == "not_in":
            return subject not in self.value
        if op in ORDERING:
            return _comparable(subject, self.value) and ORDERING[op](subject, self.value)
        return isinstance(subject, str) and self.pattern is not None and self.pattern.search(subject) is not None


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
