"""A safe parser for Python-literal data, such as `[{'role': 'user', 'content': 'hi'}]`.

Alibaba's docs show the form's Message field with Python quoting. This accepts only
literal lists, dicts, strings, numbers, booleans and None: the source is parsed into a
syntax tree and walked, never executed.
"""

from __future__ import annotations

import ast
from typing import Any

_CONSTANTS = (str, int, float, bool, type(None))


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
    if isinstance(node, ast.Constant) and isinstance(node.value, _CONSTANTS):
        return node.value
    if isinstance(node, (ast.List, ast.Tuple)):
        return [_value(item) for item in node.elts]
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise ValueError("dict unpacking is not a literal")
        return {_key(k): _value(v) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant):
        value = node.operand.value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return -value
    raise ValueError(f"{type(node).__name__} is not allowed in a literal")


def _key(node: ast.AST | None) -> Any:
    key = _value(node)  # type: ignore[arg-type]
    if not isinstance(key, str):
        raise ValueError("dict keys must be strings")
    return key
