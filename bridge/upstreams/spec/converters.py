"""The fixed registry of converters a spec may name. Nothing outside this table can run.

A converter is `"int"`, `{"name": "map", "values": {...}}` (a name and its arguments), or a
list of them applied in order. Each entry declares a JSON Schema for its arguments, checked
at start-up like the rest of the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from bridge import jsonutil
from bridge.request import content_text
from bridge.upstreams.spec import tool_shapes
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.templates import Context, MissingVariable, Template, compile_template, to_text

Convert = Callable[[Any, Context], Any]
Factory = Callable[[dict[str, Any], list[str | int]], tuple[Convert, list[Template]]]


class ConvertError(ValueError):
    """A value could not be converted; the message says which converter and why."""


@dataclass(frozen=True, slots=True)
class Converter:
    """A compiled converter (or chain): `apply(value, ctx)`; `templates` for start-up checks."""

    apply: Convert
    templates: tuple[Template, ...] = ()


def _simple(fn: Callable[[Any], Any]) -> Factory:
    return lambda args, where: ((lambda value, ctx: fn(value)), [])


def _to_int(value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        if isinstance(value, float):
            return int(value)
        if isinstance(value, str):
            text = value.strip()
            return int(text) if text.lstrip("-").isdigit() else int(float(text))
    except (ValueError, OverflowError):
        pass
    raise ConvertError(f"int: cannot convert {_show(value)}")


def _map(args: dict[str, Any], where: list[str | int]) -> tuple[Convert, list[Template]]:
    values: dict[str, Any] = args["values"]
    has_default = "default" in args
    default = args.get("default")

    def convert(value: Any, ctx: Context) -> Any:
        key = value if isinstance(value, str) else to_text(value)
        if key in values:
            return values[key]
        return default if has_default else value

    return convert, []


def _join(args: dict[str, Any], where: list[str | int]) -> tuple[Convert, list[Template]]:
    key, sep = args.get("key"), args.get("sep", "")

    def convert(value: Any, ctx: Context) -> Any:
        if not isinstance(value, list):
            return value
        parts = (item.get(key) if key is not None and isinstance(item, dict) else item for item in value)
        return sep.join(p for p in parts if isinstance(p, str))

    return convert, []


DEFAULT_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
MESSAGE_LOCALS = ("role", "text", "name")


def _messages(args: dict[str, Any], where: list[str | int]) -> tuple[Convert, list[Template]]:
    """OpenAI messages -> the provider's shape: roles renamed, each message from a template.

    Messages without text are skipped. With `tools_as` (a shape of bridge/upstreams/spec/tool_shapes.py)
    an assistant turn that called tools and the tools' results are kept in the provider's
    shape; without it, a provider that has no tools gets neither.
    """
    roles: dict[str, str] = args.get("roles", DEFAULT_ROLES)
    names: dict[str, str] = args.get("names", {})
    shape: str | None = args.get("tools_as")
    template = compile_template(args.get("message", {"role": "${role}", "content": "${text}"}),
                                [*where, "message"], MESSAGE_LOCALS)

    def convert(value: Any, ctx: Context) -> Any:
        if not isinstance(value, list):
            raise ConvertError("messages: expected a list of messages")
        out: list[Any] = []
        called = tool_shapes.function_names(value) if shape else {}
        for message in value:
            if not isinstance(message, dict):
                continue
            text = content_text(message.get("content"))
            if shape and message.get("role") == "tool":
                name = called.get(str(message.get("tool_call_id") or ""), "")
                tool_shapes.tool_result(message, text, name, shape, out)
                continue
            role = roles.get(str(message.get("role")))
            if role is None:
                continue
            if shape and message.get("tool_calls"):
                out.append(tool_shapes.assistant_with_calls(message, role, text, shape))
                continue
            if not text:
                continue
            name = names.get(message["role"]) or message.get("name") or ""
            out.append(template.render(ctx.child({"role": role, "text": text, "name": name})))
        return out

    return convert, [template]


def _shaped(kind: str) -> Factory:
    """`tools` / `tool_choice` in the provider's shape (`as`)."""
    convert = tool_shapes.CONVERTERS[kind]
    return lambda args, where: ((lambda value, ctx: convert(value, args["as"])), [])


def _sum(args: dict[str, Any], where: list[str | int]) -> tuple[Convert, list[Template]]:
    """The sum of the counts at `keys` of an object (Anthropic's prompt: input + cache read + cache write)."""
    keys: list[str] = args["keys"]

    def convert(value: Any, ctx: Context) -> Any:
        if not isinstance(value, dict):
            return None
        counts = [value[k] for k in keys if isinstance(value.get(k), int) and not isinstance(value.get(k), bool)]
        return sum(counts) if counts else None

    return convert, []


_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SHAPE = {"enum": list(tool_shapes.SHAPES)}
REGISTRY: dict[str, tuple[dict[str, Any], Factory]] = {
    "to_json_string": ({}, _simple(jsonutil.dumps_str)),
    "int": ({}, _simple(_to_int)),
    "list": ({}, _simple(lambda v: v if isinstance(v, list) else [v])),
    "map": ({"required": ["values"], "properties": {"values": {"type": "object"}, "default": {}}}, _map),
    "join": ({"properties": {"key": {"type": "string"}, "sep": {"type": "string"}}}, _join),
    "sum": ({"required": ["keys"], "properties": {"keys": {"type": "array", "items": {"type": "string"},
                                                            "minItems": 1}}}, _sum),
    "messages": ({"properties": {"roles": _STR_MAP, "names": _STR_MAP, "message": {}, "tools_as": _SHAPE}},
                 _messages),
    "tools": ({"required": ["as"], "properties": {"as": _SHAPE}}, _shaped("tools")),
    "tool_choice": ({"required": ["as"], "properties": {"as": _SHAPE}}, _shaped("tool_choice")),
}


def compile_converter(raw: Any, where: Sequence[str | int]) -> Converter:
    """Compile a converter entry (name, object or list) into one callable."""
    where = list(where)
    if isinstance(raw, list):
        steps = [compile_converter(item, [*where, i]) for i, item in enumerate(raw)]
        chained = tuple(t for step in steps for t in step.templates)

        def chain(value: Any, ctx: Context) -> Any:
            for step in steps:
                value = step.apply(value, ctx)
            return value

        return Converter(chain, chained)
    args = {"name": raw} if isinstance(raw, str) else dict(raw)
    name = args.pop("name", None)
    at = where if isinstance(raw, str) else [*where, "name"]
    if name not in REGISTRY:
        raise SpecError(at, f"unknown converter {name!r}; known: {', '.join(REGISTRY)}")
    schema, factory = REGISTRY[name]
    schema = {"type": "object", "additionalProperties": False, "properties": {}, **schema}
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(args))
    if error is not None:
        raise SpecError([*where, *error.absolute_path], f"converter {name!r}: {error.message}")
    convert, templates = factory(args, where)
    return Converter(convert, tuple(templates))


def apply_safely(converter: Converter, value: Any, ctx: Context) -> Any:
    """Apply a converter; a failure raises ConvertError (MissingVariable passes through)."""
    try:
        return converter.apply(value, ctx)
    except (ConvertError, MissingVariable):
        raise
    except (TypeError, ValueError, AttributeError, KeyError) as exc:
        raise ConvertError(f"cannot convert {_show(value)} ({type(exc).__name__})") from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."
