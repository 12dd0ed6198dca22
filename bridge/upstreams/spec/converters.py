"""The fixed registry of converters a spec may name. Nothing outside this table can run.

A converter is `"int"`, `{"name": "map", "values": {...}}` (a name and its arguments), or a
list of them applied in order. Each entry declares a JSON Schema for its arguments, checked
at start-up like the rest of the spec (the validators are built once, at import).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from bridge import jsonutil
from bridge.request import Message, content_text
from bridge.upstreams.spec import tool_shapes
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.templates import Context, MissingVariable, Template, compile_template, to_text

Convert = Callable[[Any, Context], Any]


class ConvertError(ValueError):
    """A value could not be converted; the message says which converter and why."""


@dataclass(frozen=True, slots=True)
class Converter:
    """A compiled converter (or chain): `apply(value, ctx)`; `templates` for start-up checks.

    `drops_system`: it leaves the system messages out (a `messages` converter whose roles have
    no `system`), so the call must send `${system}` some other way.
    """

    apply: Convert
    templates: tuple[Template, ...] = ()
    drops_system: bool = False


Factory = Callable[[dict[str, Any], list[str | int]], Converter]


def _simple(fn: Callable[[Any], Any]) -> Factory:
    return lambda args, where: Converter(lambda value, ctx: fn(value))


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


def _map(args: dict[str, Any], where: list[str | int]) -> Converter:
    values: dict[str, Any] = args["values"]
    has_default = "default" in args
    default = args.get("default")

    def convert(value: Any, ctx: Context) -> Any:
        key = value if isinstance(value, str) else to_text(value)
        if key in values:
            return values[key]
        return default if has_default else value

    return Converter(convert)


def _join(args: dict[str, Any], where: list[str | int]) -> Converter:
    key, sep = args.get("key"), args.get("sep", "")

    def convert(value: Any, ctx: Context) -> Any:
        if not isinstance(value, list):
            return value
        parts = (item.get(key) if key is not None and isinstance(item, dict) else item for item in value)
        return sep.join(p for p in parts if isinstance(p, str))

    return Converter(convert)


def _wrap(args: dict[str, Any], where: list[str | int]) -> Converter:
    """`{key: value}` with a `key`, else `[value]` (even when the value is a list already)."""
    key = args.get("key")
    if key is None:
        return Converter(lambda value, ctx: [value])
    return Converter(lambda value, ctx: {key: value})


DEFAULT_ROLES = {"system": "system", "user": "user", "assistant": "assistant"}
MESSAGE_LOCALS = ("role", "text", "name")
TOOL_TURNS = "tool turns"  # the Context note: tool turns a provider without `tools_as` cannot take


class _Messages:
    """OpenAI messages -> the provider's shape: roles renamed, each message from a template.

    Messages without text are skipped. With `tools_as` (a shape of bridge/upstreams/spec/tool_shapes.py)
    an assistant turn that called tools and the tools' results are kept in the provider's
    shape; without it they cannot be said, so they are left out and counted in the context's
    notes (the driver logs them). With `system: prepend` the system messages' text goes in
    front of the first user message (providers without a system role, such as Coze).
    """

    def __init__(self, args: dict[str, Any], where: list[str | int]) -> None:
        self.roles: dict[str, str] = args.get("roles", DEFAULT_ROLES)
        self.names: dict[str, str] = args.get("names", {})
        self.shape: str | None = args.get("tools_as")
        self.prepend = args.get("system") == "prepend"
        self.template = compile_template(args.get("message", {"role": "${role}", "content": "${text}"}),
                                         [*where, "message"], MESSAGE_LOCALS)

    def __call__(self, value: Any, ctx: Context) -> Any:
        if not isinstance(value, list):
            raise ConvertError("messages: expected a list of messages")
        if self.prepend:
            value = prepend_system(value)
        called = tool_shapes.function_names(value) if self.shape else {}
        out: list[Any] = []
        for message in value:
            if isinstance(message, dict):
                self._one(message, ctx, called, out)
        return out

    def _one(self, message: Message, ctx: Context, called: dict[str, str], out: list[Any]) -> None:
        role = message.get("role")
        text = content_text(message.get("content"))
        if role == "tool" or message.get("tool_calls"):
            if self.shape is not None:
                self._tool_turn(message, text, called, out)
                return
            ctx.note(TOOL_TURNS)
            if role == "tool":
                return
        mapped = self.roles.get(str(role))
        if mapped is None or not text:
            return
        name = self.names.get(str(role)) or message.get("name") or ""
        out.append(self.template.render(ctx.child({"role": mapped, "text": text, "name": name})))

    def _tool_turn(self, message: Message, text: str, called: dict[str, str], out: list[Any]) -> None:
        assert self.shape is not None
        if message.get("role") == "tool":
            name = called.get(str(message.get("tool_call_id") or ""), "")
            tool_shapes.tool_result(message, text, name, self.shape, out)
            return
        mapped = self.roles.get(str(message.get("role")))
        if mapped is not None:
            out.append(tool_shapes.assistant_with_calls(message, mapped, text, self.shape))


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def prepend_system(messages: list[Any]) -> list[Any]:
    """The history without system messages, their text in front of the first user message's."""
    system = "\n".join(content_text(m.get("content")) for m in messages if _role(m) == "system")
    rest = [m for m in messages if _role(m) != "system"]
    first = next((i for i, m in enumerate(rest) if _role(m) == "user"), None)
    if not system:
        return rest
    if first is None:
        return [{"role": "user", "content": system}, *rest]
    text = content_text(rest[first].get("content"))
    return [*rest[:first], {**rest[first], "content": f"{system}\n\n{text}" if text else system}, *rest[first + 1:]]


def _messages(args: dict[str, Any], where: list[str | int]) -> Converter:
    mapper = _Messages(args, where)
    return Converter(mapper, (mapper.template,), drops_system="system" not in mapper.roles and not mapper.prepend)


def _shaped(kind: str) -> Factory:
    """`tools` / `tool_choice` in the provider's shape (`as`)."""
    convert = tool_shapes.CONVERTERS[kind]
    return lambda args, where: Converter(lambda value, ctx: convert(value, args["as"]))


def _sum(args: dict[str, Any], where: list[str | int]) -> Converter:
    """The sum of the counts at `keys` of an object (Anthropic's prompt: input + cache read + cache write)."""
    keys: list[str] = args["keys"]

    def convert(value: Any, ctx: Context) -> Any:
        if not isinstance(value, dict):
            return None
        counts = [value[k] for k in keys if isinstance(value.get(k), int) and not isinstance(value.get(k), bool)]
        return sum(counts) if counts else None

    return Converter(convert)


_STR_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_SHAPE = {"enum": list(tool_shapes.SHAPES)}
_ARGS: dict[str, tuple[dict[str, Any], Factory]] = {
    "to_json_string": ({}, _simple(jsonutil.dumps_str)),
    "int": ({}, _simple(_to_int)),
    "list": ({}, _simple(lambda v: v if isinstance(v, list) else [v])),
    "wrap": ({"properties": {"key": {"type": "string", "minLength": 1}}}, _wrap),
    "map": ({"required": ["values"], "properties": {"values": {"type": "object"}, "default": {}}}, _map),
    "join": ({"properties": {"key": {"type": "string"}, "sep": {"type": "string"}}}, _join),
    "sum": ({"required": ["keys"], "properties": {"keys": {"type": "array", "items": {"type": "string"},
                                                            "minItems": 1}}}, _sum),
    "messages": ({"properties": {"roles": _STR_MAP, "names": _STR_MAP, "message": {}, "tools_as": _SHAPE,
                                 "system": {"enum": ["role", "prepend"]}}}, _messages),
    "tools": ({"required": ["as"], "properties": {"as": _SHAPE}}, _shaped("tools")),
    "tool_choice": ({"required": ["as"], "properties": {"as": _SHAPE}}, _shaped("tool_choice")),
}
#: name -> (a validator of its arguments, its factory)
REGISTRY: dict[str, tuple[jsonschema.Draft202012Validator, Factory]] = {
    name: (jsonschema.Draft202012Validator({"type": "object", "additionalProperties": False, "properties": {},
                                           **schema}), factory)
    for name, (schema, factory) in _ARGS.items()
}


def compile_converter(raw: Any, where: Sequence[str | int]) -> Converter:
    """Compile a converter entry (name, object or list) into one callable."""
    where = list(where)
    if isinstance(raw, list):
        return _chain([compile_converter(item, [*where, i]) for i, item in enumerate(raw)])
    args = {"name": raw} if isinstance(raw, str) else dict(raw)
    name = args.pop("name", None)
    if name not in REGISTRY:
        raise SpecError(where if isinstance(raw, str) else [*where, "name"],
                        f"unknown converter {name!r}{suggest(name, REGISTRY)}; known: {', '.join(REGISTRY)}")
    validator, factory = REGISTRY[name]
    error = jsonschema.exceptions.best_match(validator.iter_errors(args))
    if error is not None:
        raise SpecError([*where, *error.absolute_path], f"converter {name!r}: {error.message}")
    return factory(args, where)


def _chain(steps: list[Converter]) -> Converter:
    def chain(value: Any, ctx: Context) -> Any:
        for step in steps:
            value = step.apply(value, ctx)
        return value

    return Converter(chain, tuple(t for step in steps for t in step.templates),
                     drops_system=any(step.drops_system for step in steps))


def suggest(word: object, known: Sequence[str] | dict[str, Any]) -> str:
    """` (did you mean 'x'?)` for a likely typo, else ''."""
    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6) if isinstance(word, str) else []
    return f" (did you mean {close[0]!r}?)" if close else ""


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
