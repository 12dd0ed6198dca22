"""An OpenAI chat body, from any voice platform, into the canonical request.

The platform is recognised (bridge/inbound/platforms.py) and its identifiers kept for the log line;
parameters pass the outbound contract (bridge/inbound/openai/contract.py): documented OpenAI parameters,
type-checked and converted leniently, plus the operator's UPSTREAM_EXTRA_PARAMS; every other
field is dropped and its name recorded. Messages keep only the fields their role may carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bridge import jsonutil
from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.openai.contract import (
    MANAGED,
    MESSAGE_FIELDS,
    PARAMETERS,
    ContractError,
    check_param,
    lenient,
    metadata_ok,
)
from bridge.inbound.platforms import ALIASES, Platform, identifiers, recognise
from bridge.request import ChatRequest, Message


class ChatError(BridgeError):
    """The request body is invalid; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(ErrorKind.BAD_REQUEST, message, param=param)


@dataclass(slots=True)
class Inbound:
    """A parsed request: the canonical request, who sent it, and what was not forwarded."""

    chat: ChatRequest
    platform: Platform
    ids: dict[str, Any]
    dropped: list[str]


def parse_chat(body: bytes, headers: Mapping[str, str], query: Mapping[str, str], *, default_model: str,
               route: str, extra_params: tuple[str, ...] = ()) -> Inbound:
    """Validate an OpenAI chat body into a ChatRequest; ChatError names what is wrong."""
    data = json_object(body)
    platform = recognise(data, headers)
    dropped: list[str] = []
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ChatError("'messages' must be a non-empty array.", "messages")
    messages = [_message(i, m, dropped) for i, m in enumerate(raw_messages)]
    model = data.get("model") if data.get("model") is not None else default_model
    if not isinstance(model, str) or not model:
        raise ChatError("'model' must be a non-empty string.", "model")
    stream, include_usage = _streaming(data)
    params = _params(data, extra_params, dropped)
    encodable([params, messages])
    ids = identifiers(platform, data, headers, query)
    chat = ChatRequest(messages, model=model, route=route, streamed=stream, include_usage=include_usage,
                       params=params, meta=ids)
    return Inbound(chat, platform, ids, sorted(set(dropped)))


def json_object(body: bytes) -> dict[str, Any]:
    """The request body as a JSON object; ChatError when it is not one."""
    try:
        data = jsonutil.loads(body)
    except ValueError:
        raise ChatError("Request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ChatError("Request body must be a JSON object.")
    return data


def encodable(value: Any) -> None:
    """What will be sent must encode: no 1,000-level nesting, no integer beyond 64 bits."""
    try:
        jsonutil.dumps(value)
    except TypeError:
        raise ChatError("The request nests values too deeply or holds a number too large to send on.") from None


def _streaming(data: dict[str, Any]) -> tuple[bool, bool]:
    """`stream`, and whether usage was asked for (`stream_options.include_usage`); `n` must be 1."""
    if data.get("stream") not in (None, True, False):
        raise ChatError("'stream' must be a boolean.", "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ChatError("'stream_options' must be an object.", "stream_options")
    if data.get("n") not in (None, 1, "1"):
        raise ChatError("Only n=1 is supported.", "n")
    return data.get("stream") is True, options.get("include_usage") is True


def _params(data: dict[str, Any], extra: tuple[str, ...], dropped: list[str]) -> dict[str, Any]:
    """The parameters the upstream receives; every other name goes to `dropped`."""
    params: dict[str, Any] = {}
    for key, value in data.items():
        name = ALIASES.get(key, key)
        if name in MANAGED or (value is None and name in PARAMETERS):
            continue
        if _forwarded(name, key, value, data, extra):
            params[name] = value if name == "metadata" else checked(name, value)
        elif value is not None or name != "metadata":
            dropped.append(key)
    return params


def _forwarded(name: str, key: str, value: Any, data: dict[str, Any], extra: tuple[str, ...]) -> bool:
    """Whether a field goes upstream: a known parameter (under its standard spelling when both
    are sent), `metadata` only as OpenAI takes it (Vapi's and others' are dropped, not refused),
    an extension the operator listed (UPSTREAM_EXTRA_PARAMS)."""
    if name != key and name in data:
        return False
    if name == "metadata":
        return metadata_ok(value, data.get("store"))
    return name in PARAMETERS or name in extra


def checked(name: str, value: Any) -> Any:
    """A known parameter's value as the upstream must receive it; an operator-listed extension's as is."""
    if name not in PARAMETERS:
        return lenient(value)
    try:
        return check_param(name, value)
    except ContractError as exc:
        raise ChatError(str(exc), exc.param) from None


def _message(i: int, item: Any, dropped: list[str]) -> Message:
    where = f"messages[{i}]"
    if not isinstance(item, dict):
        raise ChatError(f"{where} must be an object.", where)
    role = item.get("role")
    allowed = MESSAGE_FIELDS.get(role) if isinstance(role, str) else None
    if allowed is None or not isinstance(role, str):
        raise ChatError(f"{where}.role must be one of {', '.join(sorted(MESSAGE_FIELDS))}.", f"{where}.role")
    _check_content(where, item.get("content"), role)
    _check_tool_fields(where, item, role)
    if item.keys() <= allowed:
        return item
    dropped.extend(f"messages[].{k}" for k in item if k not in allowed)
    return {k: v for k, v in item.items() if k in allowed}


def _check_tool_fields(where: str, item: dict[str, Any], role: str) -> None:
    if role == "tool" and not isinstance(item.get("tool_call_id"), str):
        raise ChatError(f"{where}.tool_call_id must be a string.", f"{where}.tool_call_id")
    if "tool_calls" in item and not isinstance(item["tool_calls"], (list, type(None))):
        raise ChatError(f"{where}.tool_calls must be an array.", f"{where}.tool_calls")


def _check_content(where: str, content: Any, role: str) -> None:
    """A string, or content parts each with a string `type` (text parts with a string `text`)."""
    if content is None or isinstance(content, str):
        return
    if isinstance(content, list):
        for j, part in enumerate(content):
            if not isinstance(part, dict) or not isinstance(part.get("type"), str):
                raise ChatError(f"{where}.content[{j}] must be an object with a string 'type'.",
                                f"{where}.content[{j}]")
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise ChatError(f"{where}.content[{j}].text must be a string.", f"{where}.content[{j}].text")
        return
    raise ChatError(f"{where}.content must be a string or an array.", f"{where}.content")

