"""The OpenAI wire format outside the stream: the request body, error bodies, whole answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Batch, Finish, Reasoning, TextDelta
from bridge.request import ChatRequest
from bridge.upstreams.openai.stream import REASONING_FIELDS, protocol_error, read_usage, stream_error, tool_call


def outbound_body(request: ChatRequest, model: str | None, stream_options: dict[str, bool]) -> dict[str, Any]:
    """The upstream request: the caller's (already checked) parameters, always streamed."""
    return {**request.params, "model": model or request.model, "messages": request.messages, "stream": True,
            "stream_options": stream_options}


def error_detail(raw: bytes) -> str:
    """The provider's message from an HTTP error body: OpenAI's `error.message`, else the text."""
    try:
        payload = jsonutil.loads(raw)
    except ValueError:
        return " ".join(raw.decode("utf-8", "replace").split())
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("message"))
        message = error.get("message") if isinstance(error, dict) else error
        if isinstance(message, str):
            return message
        if message is not None:
            return jsonutil.text(message)
    return " ".join(raw.decode("utf-8", "replace").split())


@dataclass(frozen=True, slots=True)
class Probe:
    """What `GET <base>/models` said: its status (None: no answer), the model ids, the error text."""

    status: int | None
    models: tuple[str, ...]
    error: str | None


def model_ids(raw: bytes) -> tuple[str, ...]:
    """The ids of an OpenAI `/models` list (`{"data": [{"id": ...}]}`); () for anything else."""
    try:
        data = jsonutil.loads(raw).get("data")
    except (ValueError, AttributeError):
        return ()
    if not isinstance(data, list):
        return ()
    return tuple(item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str))


def json_answer(raw: bytes) -> Batch:
    """A 200 answered with one JSON body instead of a stream."""
    try:
        payload: Any = jsonutil.loads(raw)
    except ValueError:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream answered JSON that does not parse") from None
    return completion_events(payload)


def completion_events(payload: Any) -> Batch:
    """A whole answer in one JSON body: a `chat.completion` object's events, or its error raised."""
    if not isinstance(payload, dict):
        raise protocol_error("a JSON answer that is not an object")
    if "error" in payload:
        raise stream_error(payload["error"])
    choices = payload.get("choices")
    if type(choices) is not list or not choices or type(choices[0]) is not dict:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream answered JSON that is neither a completion "
                            "nor an error")
    choice = choices[0]
    message = choice.get("message")
    if type(message) is not dict:
        raise protocol_error("'message' is not an object")
    events = message_events(message)
    reason = choice.get("finish_reason")
    events.append(Finish(reason if type(reason) is str and reason else "stop"))
    if payload.get("usage"):
        events.append(read_usage(payload["usage"]))
    return events


def message_events(message: dict[str, Any]) -> Batch:
    """A whole answer's message: its reasoning (never spoken), its text, its tool calls."""
    events: Batch = [Reasoning(r) for r in _reasoning(message)]
    content = message.get("content")
    if content:
        if type(content) is not str:
            raise protocol_error("'content' is not a string")
        events.append(TextDelta(content))
    calls = message.get("tool_calls") or []
    if type(calls) is not list:
        raise protocol_error("'tool_calls' is not a list")
    events.extend(tool_call({"index": i, **call} if type(call) is dict else call) for i, call in enumerate(calls))
    return events


def _reasoning(message: dict[str, Any]) -> list[str]:
    """The message's reasoning text (DeepSeek's `reasoning_content`, OpenRouter's `reasoning`), if any."""
    found = [message.get(name) for name in REASONING_FIELDS]
    return [text for text in found if text and type(text) is str][:1]
