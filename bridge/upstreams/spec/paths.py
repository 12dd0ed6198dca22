"""Response paths such as `choices[0].messages[0].text`, and the conditions built on them.

A path is compiled once, at start-up, into a tuple of keys and indexes, with `[*]` (every
element of a list) as a slice. Reading it from a payload never raises: a missing key, an index
out of range or a value of the wrong type yields None. A path with `[*]` yields the list of the
values found under every element (those without one left out), or None when there are none.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

Path = tuple[str | int | slice, ...]
EVERY = slice(None)

_KEY = re.compile(r'[^.\[\]"]+')
_BRACKET = re.compile(r'\[(-?\d+|\*)\]|\["([^"]*)"\]')


class PathError(ValueError):
    """A path string does not follow the syntax."""


def compile_path(text: str) -> Path:
    """`a.b[0].c`, `[0].x`, `a["key.with.dots"]`, `parts[*].text` -> ('a', 'b', 0, 'c'); '' or '.' is the payload."""
    if text in ("", "."):
        return ()
    steps: list[str | int | slice] = []
    pos = 0
    while pos < len(text):
        step, pos = _bracket(text, pos) if text[pos] == "[" else _key(text, pos, bool(steps))
        steps.append(step)
    return tuple(steps)


def _bracket(text: str, pos: int) -> tuple[str | int | slice, int]:
    match = _BRACKET.match(text, pos)
    if match is None:
        raise PathError(f"bad path {text!r} at character {pos + 1}: expected [index], [*] or [\"key\"]")
    index, quoted = match.groups()
    if index is None:
        return quoted, match.end()
    return (EVERY if index == "*" else int(index)), match.end()


def _key(text: str, pos: int, after_step: bool) -> tuple[str, int]:
    if after_step:
        if text[pos] != ".":
            raise PathError(f"bad path {text!r} at character {pos + 1}: expected '.' or '['")
        pos += 1
    match = _KEY.match(text, pos)
    if match is None:
        raise PathError(f"bad path {text!r} at character {pos + 1}: expected a key")
    return match.group(0), match.end()


def get_path(value: Any, path: Path) -> Any:
    """The value at `path` in `value`, or None when any step is missing."""
    for i, step in enumerate(path):
        if isinstance(step, str):
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        elif not isinstance(value, list):
            return None
        elif isinstance(step, slice):
            return _every(value, path[i + 1:])
        else:
            try:
                value = value[step]
            except IndexError:
                return None
        if value is None:
            return None
    return value


def _every(items: list[Any], rest: Path) -> list[Any] | None:
    """The values at `rest` under each item; a nested `[*]` adds its values one by one."""
    spread = EVERY in rest
    found: list[Any] = []
    for item in items:
        value = get_path(item, rest)
        if value is None:
            continue
        if spread:
            found.extend(value)
        else:
            found.append(value)
    return found or None


def has_every(path: Path) -> bool:
    return any(isinstance(step, slice) for step in path)


def show_path(path: Sequence[str | int]) -> str:
    """A JSON path for messages: ('calls', 'chat', 'data', 2) -> 'calls.chat.data[2]'."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out or "(top level)"
