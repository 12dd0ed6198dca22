"""A Responses API create body (`POST /v1/responses`, or a WebSocket `response.create`) into the
canonical request's parts.

`input` (a string, or items: `message` with `input_text`/`output_text`, `function_call`,
`function_call_output`) becomes chat messages; `instructions` the system message the route puts
first; function tools, `tool_choice`, `text.format`, `reasoning.effort` and the sampling
parameters their Chat Completions spelling, type-checked as the chat route checks them
(bridge/inbound/openai/contract.py). Whatever has no Chat Completions equivalent (hosted
tools, `include`, `truncation`, reasoning items) is dropped and its name logged, as the chat
route drops platform fields; what would silently change the meaning (`background`,
`conversation`, an item the bridge cannot turn into a message) is a 400 naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import jsonutil
from bridge.inbound.openai.contract import METADATA_LIMITS, ContractError, check_param, lenient
from bridge.inbound.openai.parse import ChatError, json_object
from bridge.inbound.platforms import Platform, identifiers, recognise
from bridge.request import Message

MAX_ID = 256  # characters of a `previous_response_id`
ROLES = frozenset({"user", "assistant", "system", "developer"})
# Responses parameters with a Chat Completions equivalent: their name there.
PARAMS = {"temperature": "temperature", "top_p": "top_p", "max_output_tokens": "max_tokens",
          "parallel_tool_calls": "parallel_tool_calls", "user": "user", "safety_identifier": "safety_identifier",
          "prompt_cache_key": "prompt_cache_key", "prompt_cache_retention": "prompt_cache_retention",
          "service_tier": "service_tier"}
# What the response object shows for a parameter the caller left out (OpenAI's defaults).
DEFAULTS: dict[str, Any] = {"temperature": 1.0, "top_p": 1.0, "max_output_tokens": None, "parallel_tool_calls": True,
                            "user": None}
# Read by the parse itself (the rest are PARAMS, operator-listed extensions, or dropped).
OWN = frozenset({"model", "input", "instructions", "tools", "tool_choice", "stream", "store", "metadata",
                 "previous_response_id", "text", "reasoning", "background", "conversation", "type", "generate"})


@dataclass(slots=True)
class ResponsesRequest:
    """A parsed create body: the new input as chat messages, and what goes with it."""

    model: str
    input: list[Message]  # the new items, as chat messages
    instructions: str | None
    params: dict[str, Any]  # for the upstream, in Chat Completions spelling
    echo: dict[str, Any]  # the request's settings as the response object shows them
    stream: bool
    store: bool
    previous_response_id: str | None
    generate: bool  # False: a WebSocket warm-up, answered with no output
    platform: Platform
    ids: dict[str, Any]
    dropped: list[str]


def parse_body(body: bytes, headers: Mapping[str, str], query: Mapping[str, str], *, default_model: str,
               extra_params: tuple[str, ...] = ()) -> ResponsesRequest:
    """An HTTP create body; ChatError names what is wrong."""
    return parse_create(json_object(body), headers, query, default_model=default_model, extra_params=extra_params)


def parse_create(data: dict[str, Any], headers: Mapping[str, str], query: Mapping[str, str], *, default_model: str,
                 extra_params: tuple[str, ...] = (), websocket: bool = False) -> ResponsesRequest:
    """A create body (a WebSocket `response.create` with `websocket`); ChatError names what is wrong."""
    platform = recognise(data, headers, query)
    dropped: list[str] = []
    messages = input_messages(data.get("input"), dropped)
    params, echo = _sampling(data)
    _tools(data, params, echo, dropped)
    _text(data.get("text"), params, echo)
    _reasoning(data.get("reasoning"), params, echo)
    _refuse_unsupported(data)
    for key, value in data.items():
        if key in OWN or key in PARAMS:
            continue
        if key in extra_params:
            params[key] = lenient(value)
        else:
            dropped.append(key)
    if not websocket and "generate" in data:
        dropped.append("generate")
    store = _flag(data, "store", True)
    echo.update(instructions=_text_field(data, "instructions"), metadata=_metadata(data.get("metadata")), store=store,
                previous_response_id=_previous_id(data.get("previous_response_id")))
    try:
        jsonutil.dumps([params, messages])  # what will be sent must encode: no 1,000-level nesting
    except TypeError:
        raise ChatError("The request nests values too deeply or holds a number too large to send on.") from None
    generate = _flag(data, "generate", True) if websocket else True  # an HTTP create always answers
    return ResponsesRequest(
        model=_model(data.get("model"), default_model), input=messages, instructions=echo["instructions"],
        params=params, echo=echo, stream=websocket or _flag(data, "stream", False), store=store,
        previous_response_id=echo["previous_response_id"], generate=generate,
        platform=platform, ids=identifiers(platform, data, headers, query), dropped=sorted(set(dropped)))


def _model(value: Any, default: str) -> str:
    model = default if value is None else value
    if not isinstance(model, str) or not model:
        raise ChatError("'model' must be a non-empty string.", "model")
    return model


def _flag(data: dict[str, Any], name: str, default: bool) -> bool:
    value = data.get(name)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ChatError(f"'{name}' must be a boolean.", name)
    return value


def _text_field(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ChatError(f"'{name}' must be a string.", name)
    return value or None


def _previous_id(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        raise ChatError(f"'previous_response_id' must be a response id (a string of at most {MAX_ID} characters).",
                        "previous_response_id")
    return value


def _metadata(value: Any) -> dict[str, str]:
    """OpenAI's limits: at most 16 pairs of strings, keys of 64 characters, values of 512."""
    if value is None:
        return {}
    pairs, key_len, value_len = METADATA_LIMITS
    if not (isinstance(value, dict) and len(value) <= pairs
            and all(isinstance(k, str) and len(k) <= key_len and isinstance(v, str) and len(v) <= value_len
                    for k, v in value.items())):
        raise ChatError(f"'metadata' must be an object of at most {pairs} string values (keys of at most {key_len} "
                        f"characters, values of at most {value_len}).", "metadata")
    return value


def _refuse_unsupported(data: dict[str, Any]) -> None:
    """Parameters whose meaning the bridge cannot keep: better refused than ignored."""
    if data.get("background"):
        raise ChatError("'background' responses are not supported here; stream the response instead.", "background")
    if data.get("conversation") is not None:
        raise ChatError("'conversation' is not supported here; continue with 'previous_response_id'.", "conversation")


def _sampling(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The parameters with a Chat Completions name, checked: (for the upstream, for the response object)."""
    params: dict[str, Any] = {}
    echo = dict(DEFAULTS)
    for name, chat_name in PARAMS.items():
        value = data.get(name)
        if value is None:
            continue
        try:
            params[chat_name] = echo[name] = check_param(chat_name, value)
        except ContractError as exc:
            raise ChatError(str(exc).replace(f"'{chat_name}'", f"'{name}'"), name) from None
    return params, echo


# -- input items ---------------------------------------------------------------------------


def input_messages(value: Any, dropped: list[str]) -> list[Message]:
    """`input` as chat messages: a string is one user message; items are read in order."""
    if value is None:
        return []
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if not isinstance(value, list):
        raise ChatError("'input' must be a string or an array of items.", "input")
    messages: list[Message] = []
    for i, item in enumerate(value):
        where = f"input[{i}]"
        if not isinstance(item, dict):
            raise ChatError(f"{where} must be an object.", where)
        kind = item.get("type", "message")
        reader = _ITEMS.get(kind) if isinstance(kind, str) else None
        if reader is not None:
            reader(messages, where, item)
        elif kind == "reasoning":  # a model's reasoning, which no Chat Completions upstream takes back
            dropped.append("input[].reasoning")
        else:
            raise ChatError(f"{where}.type: {str(kind)[:40]!r} is not supported here; send message, function_call "
                            "and function_call_output items.", f"{where}.type")
    return messages


def _message_item(messages: list[Message], where: str, item: dict[str, Any]) -> None:
    role = item.get("role")
    if not isinstance(role, str) or role not in ROLES:
        raise ChatError(f"{where}.role must be one of {', '.join(sorted(ROLES))}.", f"{where}.role")
    messages.append({"role": role, "content": _content(where, item.get("content"), role)})


def _function_call(messages: list[Message], where: str, item: dict[str, Any]) -> None:
    """A call the model made: on the assistant message before it, as Chat Completions has it."""
    call_id, name = _string(item, "call_id", where), _string(item, "name", where)
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        raise ChatError(f"{where}.arguments must be a string (the arguments' JSON).", f"{where}.arguments")
    call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
    last = messages[-1] if messages else None
    if last is not None and last["role"] == "assistant":
        last.setdefault("tool_calls", []).append(call)
    else:
        messages.append({"role": "assistant", "content": None, "tool_calls": [call]})


def _function_call_output(messages: list[Message], where: str, item: dict[str, Any]) -> None:
    call_id = _string(item, "call_id", where)
    output = item.get("output")
    if isinstance(output, list):
        output = _all_text(f"{where}.output", output)
    if not isinstance(output, str):
        raise ChatError(f"{where}.output must be a string or an array of input_text parts.", f"{where}.output")
    messages.append({"role": "tool", "tool_call_id": call_id, "content": output})


_ITEMS: dict[str, Callable[[list[Message], str, dict[str, Any]], None]] = {
    "message": _message_item, "function_call": _function_call, "function_call_output": _function_call_output}


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise ChatError(f"{where}.{name} must be a non-empty string.", f"{where}.{name}")
    return value


def _content(where: str, content: Any, role: str) -> Any:
    """A string, or the parts in Chat Completions form (plain text when every part is text)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise ChatError(f"{where}.content must be a string or an array of content parts.", f"{where}.content")
    parts = [_part(f"{where}.content[{j}]", part) for j, part in enumerate(content)]
    if all(part["type"] == "text" for part in parts):
        return "".join(part["text"] for part in parts)
    if role == "assistant":
        raise ChatError(f"{where}.content: an assistant message holds text only.", f"{where}.content")
    return parts


def _all_text(where: str, parts: list[Any]) -> str:
    chat_parts = [_part(f"{where}[{j}]", part) for j, part in enumerate(parts)]
    if any(part["type"] != "text" for part in chat_parts):
        raise ChatError(f"{where}: only text parts are supported in a function call's output.", where)
    return "".join(part["text"] for part in chat_parts)


def _part(where: str, part: Any) -> dict[str, Any]:
    kind = part.get("type") if isinstance(part, dict) else None
    reader = _PARTS.get(kind) if isinstance(kind, str) else None
    if reader is None or not isinstance(part, dict):
        raise ChatError(f"{where} must be a content part of type {', '.join(sorted(_PARTS))}.", f"{where}.type")
    return reader(where, part)


def _text_part(where: str, part: dict[str, Any]) -> dict[str, Any]:
    key = "refusal" if part["type"] == "refusal" else "text"
    text = part.get(key)
    if not isinstance(text, str):
        raise ChatError(f"{where}.{key} must be a string.", f"{where}.{key}")
    return {"type": "text", "text": text}


def _image_part(where: str, part: dict[str, Any]) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        raise ChatError(f"{where}.image_url must be a URL (file ids are not supported here).", f"{where}.image_url")
    detail = part.get("detail")
    return {"type": "image_url", "image_url": {"url": url, "detail": detail if isinstance(detail, str) else "auto"}}


def _audio_part(where: str, part: dict[str, Any]) -> dict[str, Any]:
    audio = part.get("input_audio")
    if not (isinstance(audio, dict) and isinstance(audio.get("data"), str) and isinstance(audio.get("format"), str)):
        raise ChatError(f"{where}.input_audio must be an object with string 'data' and 'format'.",
                        f"{where}.input_audio")
    return {"type": "input_audio", "input_audio": {"data": audio["data"], "format": audio["format"]}}


def _file_part(where: str, part: dict[str, Any]) -> dict[str, Any]:
    file = {key: part[key] for key in ("file_data", "file_id", "filename") if isinstance(part.get(key), str)}
    if "file_data" not in file and "file_id" not in file:
        raise ChatError(f"{where} must carry 'file_data' or 'file_id'.", where)
    return {"type": "file", "file": file}


_PARTS: dict[str, Callable[[str, dict[str, Any]], dict[str, Any]]] = {
    "input_text": _text_part, "output_text": _text_part, "refusal": _text_part, "input_image": _image_part,
    "input_audio": _audio_part, "input_file": _file_part}


# -- tools, tool_choice, text, reasoning --------------------------------------------------


def _tools(data: dict[str, Any], params: dict[str, Any], echo: dict[str, Any], dropped: list[str]) -> None:
    """Function tools in Chat Completions form; hosted tools (web search, ...) have no upstream to run them."""
    tools = data.get("tools")
    if tools is not None and not isinstance(tools, list):
        raise ChatError("'tools' must be an array.", "tools")
    shown, chat_tools = [], []
    for i, tool in enumerate(tools or []):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if not isinstance(tool, dict) or not isinstance(kind, str):
            raise ChatError(f"tools[{i}] must be an object with a string 'type'.", f"tools[{i}]")
        if kind != "function":
            dropped.append(f"tools[].{kind[:40]}")
            continue
        function = _function_tool(f"tools[{i}]", tool)
        chat_tools.append({"type": "function", "function": function})
        shown.append({"type": "function", "name": function["name"], "description": function.get("description"),
                      "parameters": function.get("parameters"), "strict": function.get("strict")})
    if chat_tools:
        params["tools"] = chat_tools
    echo["tools"] = shown
    echo["tool_choice"] = _tool_choice(data.get("tool_choice"), params, dropped)


def _function_tool(where: str, tool: dict[str, Any]) -> dict[str, Any]:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise ChatError(f"{where}.name must be a non-empty string.", f"{where}.name")
    function: dict[str, Any] = {"name": name}
    for key, kinds in (("description", str), ("parameters", dict), ("strict", bool)):
        value = tool.get(key)
        if value is None:
            continue
        if not isinstance(value, kinds):
            raise ChatError(f"{where}.{key} must be a {'boolean' if kinds is bool else kinds.__name__}.",
                            f"{where}.{key}")
        function[key] = value
    return function


def _tool_choice(value: Any, params: dict[str, Any], dropped: list[str]) -> Any:
    """What the response object shows; the Chat Completions form goes in `params`."""
    if value is None:
        return "auto"
    if value in ("auto", "none", "required"):
        params["tool_choice"] = value
        return value
    if isinstance(value, dict) and value.get("type") == "function":
        name = value.get("name")
        if not isinstance(name, str) or not name:
            raise ChatError("tool_choice.name must be a non-empty string.", "tool_choice.name")
        params["tool_choice"] = {"type": "function", "function": {"name": name}}
        return {"type": "function", "name": name}
    if isinstance(value, dict) and isinstance(value.get("type"), str):
        dropped.append("tool_choice")  # a hosted tool, or allowed_tools: the model chooses
        return "auto"
    raise ChatError("'tool_choice' must be 'auto', 'none', 'required' or {\"type\": \"function\", \"name\": ...}.",
                    "tool_choice")


def _text(value: Any, params: dict[str, Any], echo: dict[str, Any]) -> None:
    """`text.format` as `response_format`, `text.verbosity` as `verbosity`."""
    echo["text"] = {"format": {"type": "text"}}
    if value is None:
        return
    if not isinstance(value, dict):
        raise ChatError("'text' must be an object.", "text")
    shown = _response_format(value.get("format") or {"type": "text"}, params)
    verbosity = value.get("verbosity")
    if verbosity is not None:
        if not isinstance(verbosity, str):
            raise ChatError("text.verbosity must be a string.", "text.verbosity")
        params["verbosity"] = verbosity
    echo["text"] = {"format": shown, **({"verbosity": verbosity} if verbosity is not None else {})}


def _response_format(fmt: Any, params: dict[str, Any]) -> dict[str, Any]:
    """The format as `response_format` in `params`; returned as the response object shows it."""
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "json_schema":
        schema = _json_schema(fmt)
        params["response_format"] = {"type": "json_schema", "json_schema": schema}
        return {"type": "json_schema", **schema}
    if kind == "json_object":
        params["response_format"] = {"type": "json_object"}
    elif kind != "text":
        raise ChatError("text.format.type must be text, json_object or json_schema.", "text.format.type")
    return {"type": kind}


def _json_schema(fmt: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(fmt.get("name"), str) or not isinstance(fmt.get("schema"), dict):
        raise ChatError("text.format: a json_schema format needs a string 'name' and an object 'schema'.",
                        "text.format")
    return {key: fmt[key] for key in ("name", "schema", "strict", "description") if fmt.get(key) is not None}


def _reasoning(value: Any, params: dict[str, Any], echo: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise ChatError("'reasoning' must be an object.", "reasoning")
    effort = value.get("effort")
    if effort is not None:
        if not isinstance(effort, str):
            raise ChatError("reasoning.effort must be a string.", "reasoning.effort")
        params["reasoning_effort"] = effort
    echo["reasoning"] = {"effort": effort, "summary": value.get("summary") if isinstance(value.get("summary"), str)
                         else None}
