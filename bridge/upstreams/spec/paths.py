"""Response paths such as `choices[0].messages[0].text`, and the conditions built on them.

A path is compiled once, at start-up, into a tuple of keys and indexes. Reading it from a
payload never raises: a missing key, an index out of range or a value of the wrong type
yields None.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

Path = tuple[str | int, ...]

_KEY = re.compile(r'[^.\[\]"]+')
_BRACKET = re.compile(r'\[(-?\d+)\]|\["([^"]*)"\]')


class PathError(ValueError):
    """A path string does not follow the syntax."""


def compile_path(text: str) -> Path:
    """`a.b[0].c`, `[0].x`, `a["key.with.dots"]` -> ('a', 'b', 0, 'c'); '' or '.' is the payload."""
    if text in ("", "."):
        return ()
    steps: list[str | int] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "[":
            match = _BRACKET.match(text, pos)
            if match is None:
                raise PathError(f"bad path {text!r} at character {pos + 1}: expected [index] or [\"key\"]")
            index, quoted = match.groups()
            steps.append(int(index) if index is not None else quoted)
        else:
            if steps:
                if text[pos] != ".":
                    raise PathError(f"bad path {text!r} at character {pos + 1}: expected '.' or '['")
                pos += 1
            match = _KEY.match(text, pos)
            if match is None:
                raise PathError(f"bad path {text!r} at character {pos + 1}: expected a key")
            steps.append(match.group(0))
        pos = match.end()
    return tuple(steps)


def get_path(value: Any, path: Path) -> Any:
    """The value at `path` in `value`, or None when any step is missing."""
    for step in path:
        if isinstance(step, str):
            if not isinstance(value, dict):
                return None
            value = value.get(step)
        else:
            if not isinstance(value, list):
                return None
            try:
                value = value[step]
            except IndexError:
                return None
        if value is None:
            return None
    return value


def show_path(path: Sequence[str | int]) -> str:
    """A JSON path for messages: ('calls', 'chat', 'data', 2) -> 'calls.chat.data[2]'."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += f".{step}" if out else str(step)
    return out or "(top level)"
