"""How providers spell tools: the shapes the `tools`, `tool_choice` and `messages` converters produce.

A spec names a shape (`"tools_as": "anthropic"`); the shapes themselves are the documented
wire formats (tests/fixtures/providers/ cites them):

- `openai` (DashScope's native API too): OpenAI's own `tools`, assistant `tool_calls` and
  `tool` messages with `tool_call_id`.
- `anthropic`: tools as `{name, description, input_schema}`; an assistant turn's calls as
  `tool_use` content blocks (`input` an object); results as `tool_result` blocks in a user
  message (consecutive results share one message); `tool_choice` as `{type: auto|any|none|tool}`.
- `ollama`: OpenAI's tools; calls with `arguments` as an object and no id; results as `tool`
  messages naming the function (`tool_name`).
- `functions`: a bare list of `{name, description, parameters}` (MiniMax ChatCompletion Pro).
- `gemini`: tools as `[{"functionDeclarations": [{name, description, parameters}]}]`; a turn's
  calls as `functionCall` parts (`args` an object) of a `model` message; results as
  `functionResponse` parts (`response` an object) of one user message per round;
  `tool_choice` as `toolConfig.functionCallingConfig` (AUTO, ANY, NONE, allowedFunctionNames).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge import jsonutil

Message = dict[str, Any]
SHAPES = ("openai", "anthropic", "ollama", "functions", "gemini")
_EMPTY_SCHEMA = {"type": "object", "properties": {}}


def _functions(value: list[Any]) -> list[dict[str, Any]]:
    return [t["function"] for t in value if isinstance(t, dict) and isinstance(t.get("function"), dict)]


def _declaration(function: dict[str, Any], schema_key: str = "parameters") -> dict[str, Any]:
    return {"name": function.get("name"), "description": function.get("description", ""),
            schema_key: function.get("parameters") or _EMPTY_SCHEMA}


_TOOLS: dict[str, Callable[[list[Any]], Any]] = {
    "anthropic": lambda value: [_declaration(f, "input_schema") for f in _functions(value)],
    "functions": lambda value: [_declaration(f) for f in _functions(value)],
    "gemini": lambda value: [{"functionDeclarations": [_declaration(f) for f in _functions(value)]}],
}


def tools(value: Any, shape: str) -> Any:
    """OpenAI `tools` in the provider's shape."""
    convert = _TOOLS.get(shape)
    return convert(value) if convert is not None and isinstance(value, list) else value


_ANTHROPIC_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}
_GEMINI_MODES = {"auto": "AUTO", "required": "ANY", "none": "NONE"}


def _named(value: Any) -> str | None:
    function = value.get("function") if isinstance(value, dict) else None
    name = function.get("name") if isinstance(function, dict) else None
    return name if isinstance(name, str) else None


def _anthropic_choice(value: Any) -> Any:
    if isinstance(value, str):
        return _ANTHROPIC_CHOICE.get(value, {"type": "auto"})
    name = _named(value)
    return {"type": "tool", "name": name} if name else {"type": "auto"}


def _gemini_choice(value: Any) -> Any:
    name = _named(value)
    if name:
        return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    return {"functionCallingConfig": {"mode": _GEMINI_MODES.get(value if isinstance(value, str) else "", "AUTO")}}


_CHOICES: dict[str, Callable[[Any], Any]] = {"anthropic": _anthropic_choice, "gemini": _gemini_choice}


def tool_choice(value: Any, shape: str) -> Any:
    """OpenAI `tool_choice` in the provider's shape."""
    convert = _CHOICES.get(shape)
    return convert(value) if convert is not None else value


def arguments_object(arguments: Any) -> Any:
    """A call's arguments as an object (providers that take objects); unparsable text becomes {}."""
    if isinstance(arguments, dict):
        return arguments
    try:
        parsed = jsonutil.loads(arguments or "{}")
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _calls(message: Message) -> list[dict[str, Any]]:
    return [c for c in message.get("tool_calls") or [] if isinstance(c, dict) and isinstance(c.get("function"), dict)]


def _anthropic_turn(calls: list[dict[str, Any]], role: str, text: str) -> Message:
    blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    blocks += [{"type": "tool_use", "id": c.get("id") or f"call_{i}", "name": c["function"].get("name"),
                "input": arguments_object(c["function"].get("arguments"))} for i, c in enumerate(calls)]
    return {"role": role, "content": blocks}


def _ollama_turn(calls: list[dict[str, Any]], role: str, text: str) -> Message:
    return {"role": role, "content": text, "tool_calls": [
        {"function": {"name": c["function"].get("name"), "arguments": arguments_object(c["function"].get("arguments"))}}
        for c in calls]}


def _gemini_turn(calls: list[dict[str, Any]], role: str, text: str) -> Message:
    parts: list[dict[str, Any]] = [{"text": text}] if text else []
    parts += [{"functionCall": {"name": c["function"].get("name"),
                                "args": arguments_object(c["function"].get("arguments"))}} for c in calls]
    return {"role": role, "parts": parts}


_TURNS: dict[str, Callable[[list[dict[str, Any]], str, str], Message]] = {
    "anthropic": _anthropic_turn, "ollama": _ollama_turn, "gemini": _gemini_turn}


def assistant_with_calls(message: Message, role: str, text: str, shape: str) -> Message:
    """An assistant turn that called tools, in the provider's shape."""
    turn = _TURNS.get(shape)
    if turn is not None:
        return turn(_calls(message), role, text)
    return {"role": role, "content": text, "tool_calls": _calls(message)}


def _joins(out: list[Message], key: str, is_result: Callable[[Any], bool]) -> list[Any] | None:
    """The list at `key` of the last message, a user one that holds only results (to join the next)."""
    last = out[-1] if out else {}
    blocks = last.get(key) if last.get("role") == "user" else None
    return blocks if isinstance(blocks, list) and blocks and all(is_result(b) for b in blocks) else None


def _anthropic_block(block: Any) -> bool:
    return isinstance(block, dict) and block.get("type") == "tool_result"


def _gemini_part(part: Any) -> bool:
    return isinstance(part, dict) and "functionResponse" in part


def _anthropic_result(message: Message, text: str, function_name: str, out: list[Message]) -> None:
    block = {"type": "tool_result", "tool_use_id": message.get("tool_call_id") or "", "content": text}
    joined = _joins(out, "content", _anthropic_block)
    if joined is not None:
        joined.append(block)
    else:
        out.append({"role": "user", "content": [block]})


def _gemini_result(message: Message, text: str, function_name: str, out: list[Message]) -> None:
    parsed = arguments_object(text) if text.lstrip().startswith("{") else {}
    part = {"functionResponse": {"name": function_name, "response": parsed or {"result": text}}}
    joined = _joins(out, "parts", _gemini_part)
    if joined is not None:
        joined.append(part)
    else:
        out.append({"role": "user", "parts": [part]})


_RESULTS: dict[str, Callable[[Message, str, str, list[Message]], None]] = {
    "anthropic": _anthropic_result,
    "gemini": _gemini_result,
    "ollama": lambda message, text, name, out: out.append({"role": "tool", "content": text, "tool_name": name}),
}


def tool_result(message: Message, text: str, function_name: str, shape: str, out: list[Message]) -> None:
    """Append a tool's result to `out`, in the provider's shape (Anthropic and Gemini join consecutive results)."""
    result = _RESULTS.get(shape)
    if result is not None:
        result(message, text, function_name, out)
    else:
        out.append({"role": "tool", "content": text, "tool_call_id": message.get("tool_call_id") or ""})


def function_names(messages: list[Any]) -> dict[str, str]:
    """Tool call id -> function name, from the assistant turns of a history."""
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict):
            for call in _calls(message):
                if isinstance(call.get("id"), str):
                    names[call["id"]] = call["function"].get("name") or ""
    return names


CONVERTERS: dict[str, Callable[[Any, str], Any]] = {"tools": tools, "tool_choice": tool_choice}
