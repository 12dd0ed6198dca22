"""The outbound contract: exactly what an OpenAI-compatible upstream may receive.

One table of OpenAI's documented Chat Completions request parameters with their JSON types
(from openai/openai-openapi; tests/fixtures/openai/contract.json cites it), and of the
fields each message role may carry. Everything else a platform sends is dropped before the
upstream call and its name logged, because a strict upstream refuses unknown fields
("Unrecognized request argument supplied"). Operators forward provider extensions by name
with UPSTREAM_EXTRA_PARAMS.

Reading is lenient where voice platforms are sloppy: a number sent as a string ("0.1", as
Alibaba's contact center does) is converted, and a value that is not a number is a clear 400.
"""

from __future__ import annotations

from typing import Any

# name -> the JSON types OpenAI accepts (null is accepted everywhere and means "not given")
PARAMETERS: dict[str, tuple[str, ...]] = {
    "audio": ("object",),
    "frequency_penalty": ("number",),
    "function_call": ("string", "object"),
    "functions": ("array",),
    "logit_bias": ("object",),
    "logprobs": ("boolean",),
    "max_completion_tokens": ("integer",),
    "max_tokens": ("integer",),
    "metadata": ("object",),
    "modalities": ("array",),
    "moderation": ("object",),
    "parallel_tool_calls": ("boolean",),
    "prediction": ("object",),
    "presence_penalty": ("number",),
    "prompt_cache_key": ("string",),
    "prompt_cache_options": ("object",),
    "prompt_cache_retention": ("string",),
    "reasoning_effort": ("string",),
    "response_format": ("object",),
    "safety_identifier": ("string",),
    "seed": ("integer",),
    "service_tier": ("string",),
    "stop": ("string", "array"),
    "store": ("boolean",),
    "temperature": ("number",),
    "tool_choice": ("string", "object"),
    "tools": ("array",),
    "top_logprobs": ("integer",),
    "top_p": ("number",),
    "user": ("string",),
    "verbosity": ("string",),
    "web_search_options": ("object",),
}
# Set by the bridge itself on every upstream call (always streamed, usage always asked for).
MANAGED = frozenset({"messages", "model", "stream", "stream_options", "n"})

MESSAGE_FIELDS: dict[str, frozenset[str]] = {
    "system": frozenset({"role", "content", "name"}),
    "developer": frozenset({"role", "content", "name"}),
    "user": frozenset({"role", "content", "name"}),
    "assistant": frozenset({"role", "content", "refusal", "name", "audio", "tool_calls", "function_call"}),
    "tool": frozenset({"role", "content", "tool_call_id"}),
    "function": frozenset({"role", "content", "name"}),
}
METADATA_LIMITS = (16, 64, 512)  # pairs, key characters, value characters

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "number": (int, float), "integer": (int,), "boolean": (bool,), "string": (str,), "object": (dict,),
    "array": (list,),
}


class ContractError(ValueError):
    """A parameter has a value no upstream would take; `param` names it."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.param = param


def check_param(name: str, value: Any) -> Any:
    """`value` as the upstream must receive it (numbers from numeric strings); ContractError if impossible."""
    kinds = PARAMETERS[name]
    if any(_fits(value, kind) for kind in kinds):
        return value
    if isinstance(value, str) and kinds[0] in ("number", "integer", "boolean"):
        return _from_text(name, value, kinds[0])
    if isinstance(value, float) and kinds == ("integer",) and value.is_integer():
        return int(value)
    expected = " or ".join(f"an {k}" if k[0] in "aeiou" else f"a {k}" for k in kinds)
    raise ContractError(f"Invalid type for '{name}': expected {expected}, but got {_json_type(value)} instead.",
                        name)


def _fits(value: Any, kind: str) -> bool:
    """Whether `value` is of JSON type `kind` as sent (a boolean is no number; NaN cannot be sent)."""
    if not isinstance(value, _JSON_TYPES[kind]):
        return False
    if kind == "boolean":
        return True
    return not isinstance(value, bool) and not (kind == "number" and value != value)


def lenient(value: Any) -> Any:
    """An operator-listed extension's value: a numeric string becomes a number, anything else stays."""
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            return value
        return number if number == number and abs(number) != float("inf") else value
    return value


def metadata_ok(value: Any, store: Any) -> bool:
    """OpenAI takes `metadata` only as a small map of strings to strings, and only when `store` is on."""
    pairs, key_len, value_len = METADATA_LIMITS
    return (store is True and isinstance(value, dict) and len(value) <= pairs
            and all(isinstance(k, str) and len(k) <= key_len and isinstance(v, str) and len(v) <= value_len
                    for k, v in value.items()))


def _from_text(name: str, text: str, kind: str) -> Any:
    raw = text.strip()
    if kind == "boolean":
        if raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        raise ContractError(f"Invalid value for '{name}': expected a boolean, got {text[:40]!r}.", name)
    try:
        number = float(raw)
    except ValueError:
        raise ContractError(f"Invalid value for '{name}': expected a number, got {text[:40]!r}.", name) from None
    if number != number or abs(number) == float("inf"):
        raise ContractError(f"Invalid value for '{name}': expected a finite number, got {text[:40]!r}.", name)
    if kind == "integer":
        if not number.is_integer():
            raise ContractError(f"Invalid value for '{name}': expected an integer, got {text[:40]!r}.", name)
        return int(number)
    return int(number) if raw.lstrip("-").isdigit() else number


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return "null"
