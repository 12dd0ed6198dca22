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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge import jsonutil

Message = dict[str, Any]
SHAPES = ("openai", "anthropic", "ollama", "functions")


def tools(value: Any, shape: str) -> Any:
    """OpenAI `tools` in the provider's shape."""
    if shape in ("openai", "ollama") or not isinstance(value, list):
        return value
    functions = [t["function"] for t in value if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    if shape == "anthropic":
        return [{"name": f.get("name"), "description": f.get("description", ""),
                 "input_schema": f.get("parameters") or {"type": "object", "properties": {}}} for f in functions]
    return [{"name": f.get("name"), "description": f.get("description", ""),
             "parameters": f.get("parameters") or {"type": "object", "properties": {}}} for f in functions]


_ANTHROPIC_CHOICE = {"auto": {"type": "auto"}, "required": {"type": "any"}, "none": {"type": "none"}}


def tool_choice(value: Any, shape: str) -> Any:
    """OpenAI `tool_choice` in the provider's shape."""
    if shape != "anthropic":
        return value
    if isinstance(value, str):
        return _ANTHROPIC_CHOICE.get(value, {"type": "auto"})
    function = value.get("function") if isinstance(value, dict) else None
    if isinstance(function, dict) and isinstance(function.get("name"), str):
        return {"type": "tool", "name": function["name"]}
    return {"type": "auto"}


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


def assistant_with_calls(message: Message, role: str, text: str, shape: str) -> Message:
    """An assistant turn that called tools, in the provider's shape."""
    calls = _calls(message)
    if shape == "anthropic":
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        blocks += [{"type": "tool_use", "id": c.get("id") or f"call_{i}", "name": c["function"].get("name"),
                    "input": arguments_object(c["function"].get("arguments"))} for i, c in enumerate(calls)]
        return {"role": role, "content": blocks}
    if shape == "ollama":
        return {"role": role, "content": text, "tool_calls": [
            {"function": {"name": c["function"].get("name"),
                          "arguments": arguments_object(c["function"].get("arguments"))}} for c in calls]}
    return {"role": role, "content": text, "tool_calls": calls}


def tool_result(message: Message, text: str, function_name: str, shape: str, out: list[Message]) -> None:
    """Append a tool's result to `out`, in the provider's shape (Anthropic merges consecutive results)."""
    call_id = message.get("tool_call_id") or ""
    if shape == "anthropic":
        block = {"type": "tool_result", "tool_use_id": call_id, "content": text}
        last = out[-1] if out else None
        if last is not None and last.get("role") == "user" and isinstance(last.get("content"), list) \
                and all(isinstance(b, dict) and b.get("type") == "tool_result" for b in last["content"]):
            last["content"].append(block)
        else:
            out.append({"role": "user", "content": [block]})
    elif shape == "ollama":
        out.append({"role": "tool", "content": text, "tool_name": function_name})
    else:
        out.append({"role": "tool", "content": text, "tool_call_id": call_id})


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
