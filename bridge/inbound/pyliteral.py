"""A safe parser for Python-literal data, such as `[{'role': 'user', 'content': 'hi'}]`.

Alibaba's docs show the form's Message field with Python quoting. This accepts only
literal lists, dicts, strings, numbers, booleans and None: the source is parsed into a
syntax tree and walked, never executed.

Parsing Python source costs far more than JSON (about a millisecond per kilobyte of tiny
tokens), and it runs on the event loop, so its cost is bounded before it starts: at most
MAX_LITERAL_CHARS characters and MAX_LITERAL_TOKENS structural characters. An IMS history
(at most 20 records) is far below both; anything larger must be JSON.
"""

from __future__ import annotations

import ast
from collections.abc import Callable
from typing import Any

from bridge import jsonutil

_CONSTANTS = (str, int, float, bool, type(None))
MAX_LITERAL_CHARS = 64 * 1024
MAX_LITERAL_TOKENS = 2000
_STRUCTURAL = ",:[]{}()"


class LiteralTooCostly(ValueError):
    """The text may be a Python literal, but too large to parse on the event loop."""


def parse_structured(text: str) -> Any:
    """JSON, else a Python literal, else the text itself when it does not look structured."""
    if not text or text[0] not in "[{\"'":
        return text
    try:
        return jsonutil.loads(text)
    except ValueError:
        pass
    if len(text) > MAX_LITERAL_CHARS or sum(text.count(c) for c in _STRUCTURAL) > MAX_LITERAL_TOKENS:
        raise LiteralTooCostly(f"too large for a Python-literal value ({MAX_LITERAL_CHARS // 1024} KiB or "
                               f"{MAX_LITERAL_TOKENS} items at most); send JSON")
    return parse_literal(text)


def parse_literal(text: str) -> Any:
    """Return the literal value of `text`; raise ValueError if it is anything but a literal."""
    try:
        tree = ast.parse(text.strip())
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise ValueError(f"not a literal: {type(exc).__name__}") from None
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.Expr):
        raise ValueError("not a single literal expression")
    try:
        return _value(tree.body[0].value)
    except RecursionError:
        raise ValueError("literal nested too deeply") from None


def _value(node: ast.AST) -> Any:
    convert = _CONVERTERS.get(type(node))
    if convert is None:
        raise ValueError(f"{type(node).__name__} is not allowed in a literal")
    return convert(node)


def _constant(node: Any) -> Any:
    if isinstance(node.value, _CONSTANTS):
        return node.value
    raise ValueError(f"{type(node.value).__name__} is not allowed in a literal")


def _sequence(node: Any) -> list[Any]:
    return [_value(item) for item in node.elts]


def _mapping(node: Any) -> dict[str, Any]:
    if any(key is None for key in node.keys):
        raise ValueError("dict unpacking is not a literal")
    return {_key(k): _value(v) for k, v in zip(node.keys, node.values, strict=True)}


def _negative(node: Any) -> int | float:
    """A minus sign before a number, nothing else."""
    operand = node.operand
    if (isinstance(node.op, ast.USub) and isinstance(operand, ast.Constant)
            and isinstance(operand.value, (int, float)) and not isinstance(operand.value, bool)):
        return -operand.value
    raise ValueError("UnaryOp is not allowed in a literal")


_CONVERTERS: dict[type[ast.AST], Callable[[Any], Any]] = {
    ast.Constant: _constant, ast.List: _sequence, ast.Tuple: _sequence, ast.Dict: _mapping, ast.UnaryOp: _negative,
}


def _key(node: ast.AST | None) -> Any:
    if node is None:
        raise ValueError("dict unpacking is not a literal")
    key = _value(node)
    if not isinstance(key, str):
        raise ValueError("dict keys must be strings")
    return key
