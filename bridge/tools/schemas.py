"""Tool input schemas: looked over once, then used to check the model's arguments.

A schema comes from the operator's file or from an MCP server, so nothing in it may reach
outside it or hold the event loop:

- `$ref` resolves only inside the schema. Validators get a referencing registry that cannot
  retrieve anything, and a schema whose `$ref` points anywhere else (`https://...`,
  `file://...`, another file) is refused up front (`SchemaRefused`).
- `pattern` and `patternProperties` are matched with RE2, in time linear in the text: no
  backtracking regex from a schema ever runs. A pattern RE2 cannot run (lookaround, a
  backreference) is refused in the operator's file and left unchecked for an MCP tool
  (`Survey.unchecked`; the server still checks its own input).
- Nesting is capped (`MAX_DEPTH`), so neither the checks nor validation can recurse deeply.

The metaschema check (`check`) is the slow part, about 7 ms per KB of schema under 2020-12:
the MCP client runs it off the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import Any
from urllib.parse import urldefrag, urljoin

import jsonschema
import re2  # type: ignore[import-untyped]  # google-re2 ships no type information
from jsonschema import ValidationError
from referencing import Registry

MAX_DEPTH = 64  # levels of JSON nesting (objects and lists) in one schema
REGEX_MEMORY = 1 << 20  # RE2's memory budget per compiled pattern; a pattern needing more is not run
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})  # values here are data, not schemas
_NO_RETRIEVAL: Registry[Any] = Registry()  # jsonschema adds only the bundled metaschemas
_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_RE2_OPTIONS.max_mem = REGEX_MEMORY


class SchemaRefused(ValueError):
    """The schema cannot be used: the message says why, for a log line or a ConfigError."""


@dataclass(slots=True)
class Survey:
    """What one walk over a schema found (`survey` raises for what it cannot accept)."""

    unchecked: list[str] = field(default_factory=list)  # patterns RE2 cannot run
    ids: set[str] = field(default_factory=lambda: {""})
    refs: list[tuple[str, str]] = field(default_factory=list)  # (as written, resolved)
    pattern_properties: bool = False
    unevaluated_properties: bool = False


def survey(schema: dict[str, Any], *, strict: bool) -> Survey:
    """Walk the schema once (linear in its size); SchemaRefused for what is never accepted.

    `strict` (the operator's file): a pattern RE2 cannot run is refused rather than unchecked.
    """
    found = Survey()
    for node, base in _nodes(schema):
        _note(node, base, found)
    for written, resolved in found.refs:
        if urldefrag(resolved).url not in found.ids:
            raise SchemaRefused(f"$ref {_clip(written)} points outside the schema; only references inside it "
                                "are followed")
    if found.pattern_properties and found.unevaluated_properties:
        raise SchemaRefused("patternProperties together with unevaluatedProperties is not supported "
                            "(it would need a backtracking regex)")
    if strict and found.unchecked:
        raise SchemaRefused(f"pattern {_clip(found.unchecked[0])} is not supported: patterns are matched with "
                            "RE2 (no lookaround, no backreferences)")
    return found


def check(schema: dict[str, Any]) -> None:
    """The metaschema check of the schema's own draft (2020-12 when it names none); slow."""
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "".join(f"[{step!r}]" for step in exc.absolute_path)
        raise SchemaRefused(f"not a valid JSON Schema: {where + ': ' if where else ''}{_clip(exc.message, 240)}") \
            from None


def build(schema: dict[str, Any]) -> Any:
    """A validator that never retrieves a `$ref` and matches patterns with RE2 (cheap to build)."""
    base = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return _linear(base)(schema, registry=_NO_RETRIEVAL)


def compile_schema(schema: dict[str, Any], *, strict: bool) -> tuple[Any, list[str]]:
    """`survey`, `check` and `build` in one go: the validator and the unchecked patterns."""
    found = survey(schema, strict=strict)
    check(schema)
    return build(schema), found.unchecked


@lru_cache(maxsize=256)
def linear_regex(pattern: str) -> Any | None:
    """The pattern compiled by RE2, or None when RE2 cannot run it."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error:
        return None


def _nodes(schema: dict[str, Any]) -> Iterator[tuple[dict[str, Any], str]]:
    """Every object in the schema with its base URI (`$id`s applied); SchemaRefused past MAX_DEPTH."""
    stack: list[tuple[Any, str, int]] = [(schema, "", 0)]
    while stack:
        node, base, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise SchemaRefused(f"nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, list):
            stack.extend((item, base, depth + 1) for item in node if isinstance(item, dict | list))
            continue
        ident = node.get("$id")
        if isinstance(ident, str):
            base = urljoin(base, ident)
        yield node, base
        stack.extend((value, base, depth + 1) for key, value in node.items()
                     if key not in _DATA_KEYWORDS and isinstance(value, dict | list))


def _note(node: dict[str, Any], base: str, found: Survey) -> None:
    if isinstance(node.get("$id"), str):
        found.ids.add(urldefrag(base).url)
    for key in _REF_KEYWORDS:
        ref = node.get(key)
        if isinstance(ref, str):
            found.refs.append((ref, urljoin(base, ref)))
    pattern = node.get("pattern")
    if isinstance(pattern, str) and linear_regex(pattern) is None:
        found.unchecked.append(pattern)
    properties = node.get("patternProperties")
    if isinstance(properties, dict):
        found.pattern_properties = True
        found.unchecked.extend(p for p in properties if linear_regex(p) is None)
    if "unevaluatedProperties" in node:
        found.unevaluated_properties = True


def _clip(text: str, limit: int = 80) -> str:
    shown = repr(text)
    return shown if len(shown) <= limit else shown[:limit] + "..."


# -- the keywords that match patterns, with RE2 -----------------------------------------------

def _pattern(validator: Any, pattern: str, instance: Any, schema: dict[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string"):
        regex = linear_regex(pattern)
        if regex is not None and not regex.search(instance):
            yield ValidationError(f"{_clip(instance)} does not match {_clip(pattern)}")


def _pattern_properties(validator: Any, properties: dict[str, Any], instance: Any,
                        schema: dict[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in properties.items():
        regex = linear_regex(pattern)
        if regex is None:
            continue
        for key, value in instance.items():
            if regex.search(key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, additional: Any, instance: Any,
                           schema: dict[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    extras = sorted(_extras(instance, schema), key=str)
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        shown = ", ".join(_clip(extra, 40) for extra in extras[:5]) + (", ..." if len(extras) > 5 else "")
        yield ValidationError(f"Additional properties are not allowed ({shown} unexpected)")


def _extras(instance: dict[str, Any], schema: dict[str, Any]) -> Iterator[str]:
    """Keys neither in `properties` nor matched by a `patternProperties` pattern (an unrunnable one matches all)."""
    properties = schema.get("properties", {})
    regexes = [linear_regex(p) for p in schema.get("patternProperties", {})]
    for key in instance:
        if key in properties:
            continue
        if any(regex is None or regex.search(key) for regex in regexes):
            continue
        yield key


@cache
def _linear(base: Any) -> Any:
    """The draft's validator class with the pattern keywords matched by RE2."""
    keywords = {"pattern": _pattern, "patternProperties": _pattern_properties,
                "additionalProperties": _additional_properties}
    return jsonschema.validators.extend(base, keywords)  # type: ignore[no-untyped-call]
