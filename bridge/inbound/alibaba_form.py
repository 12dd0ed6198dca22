"""Alibaba IMS "self-developed model (Alibaba Cloud specification)": `POST /` with a form.

This is where an Alibaba form becomes upstream messages: the `Message` history (JSON, or
the Python-literal quoting of the platform's docs, or a bare string), the `Token`, and the
`ExtendData` metadata. The reply is one JSON object `{"Text": ...}` that the platform speaks.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge import jsonutil
from bridge.core import Overloaded
from bridge.events import UpstreamError
from bridge.inbound.pyliteral import parse_literal
from bridge.render.collect import collect
from bridge.request import ChatRequest, Message
from bridge.state import STATE, log_record

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ROLES = frozenset({"system", "user", "assistant"})


class FormError(Exception):
    """A form field is missing or malformed; the message names the field."""


def json_reply(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with an explicit UTF-8 charset (Chinese and emoji stay as-is)."""
    return web.Response(
        body=jsonutil.dumps(body), status=status, content_type="application/json", charset="utf-8",
        headers=headers,
    )


async def handle_form(request: web.Request) -> web.Response:
    """POST / : answer one turn of an IMS workflow with {"Text": ...}."""
    state = request.app[STATE]
    record = log_record(request)
    if request.content_type not in FORM_TYPES:
        return json_reply({"error": f"Content-Type must be one of {', '.join(FORM_TYPES)}"}, 415)
    try:
        form = await request.post()
    except ValueError as exc:
        return json_reply({"error": f"body: not a valid form ({type(exc).__name__})"}, 400)
    try:
        token = _field(form, "Token")
        if not state.tokens.check(token):
            record["error_kind"] = "auth"
            return json_reply({"error": "Token: missing or invalid"}, 401)
        meta = parse_extend_data(_field(form, "ExtendData"), record)
        messages = parse_message(_field(form, "Message"))
    except FormError as exc:
        record["error_kind"] = "bad_request"
        return json_reply({"error": str(exc)}, 400)

    chat = state.bridge.prepare(
        ChatRequest(messages, model=state.settings.default_model, route="/", stream=False, meta=meta)
    )
    try:
        answer = await collect(state.bridge.stream(chat, record))
    except Overloaded as exc:
        record["error_kind"] = "overloaded"
        return json_reply({"error": "too many requests in flight; retry shortly"}, 503,
                          {"Retry-After": str(exc.retry_after)})
    except UpstreamError as exc:
        record["error_kind"] = exc.kind
        record["error"] = exc.message
        fallback = state.settings.form_fallback_text
        if fallback:
            record["fallback"] = True
            return json_reply({"Text": fallback})
        return json_reply({"error": exc.message, "kind": exc.kind}, 504 if exc.kind == "upstream_timeout" else 502)
    return json_reply({"Text": answer.text})


def _field(form: Any, name: str) -> str | None:
    values = form.getall(name, [])
    if len(values) > 1:
        raise FormError(f"{name}: given {len(values)} times; send it once")
    if not values:
        return None
    if not isinstance(values[0], str):
        raise FormError(f"{name}: must be a text field, not a file upload")
    return values[0]


def parse_message(raw: str | None) -> list[Message]:
    """The `Message` field as OpenAI-shaped messages (system/user/assistant, string content)."""
    if raw is None or not raw.strip():
        raise FormError("Message: required and must not be empty")
    text = raw.strip()
    try:
        value = _parse_structured(text)
    except ValueError:
        if text[0] in "[{":
            raise FormError("Message: not valid JSON or a Python-literal list of {role, content}") from None
        value = raw  # plain text that merely starts with a quote
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list):
        raise FormError("Message: must be a list of {role, content} objects")
    if not value:
        raise FormError("Message: the history is empty")
    return [_record(i, item) for i, item in enumerate(value)]


def _parse_structured(text: str) -> Any:
    if text[0] not in "[{\"'":
        return text
    try:
        return jsonutil.loads(text)
    except ValueError:
        return parse_literal(text)


def _record(i: int, item: Any) -> Message:
    if not isinstance(item, dict):
        raise FormError(f"Message[{i}]: must be an object with role and content")
    role, content = item.get("role"), item.get("content")
    if not isinstance(role, str) or role not in ROLES:
        raise FormError(f"Message[{i}].role: must be one of system, user, assistant; got {_show(role)}")
    if not isinstance(content, str):
        raise FormError(f"Message[{i}].content: must be a string; got {type(content).__name__}")
    return {"role": role, "content": content}


def parse_extend_data(raw: str | None, record: dict[str, Any]) -> dict[str, Any]:
    """ExtendData's InstanceId and UserData, for logging; problems are logged, never fatal."""
    if not raw:
        record["extend_data"] = "missing"
        return {}
    try:
        data = jsonutil.loads(raw)
    except ValueError:
        record["extend_data"] = "malformed"
        return {}
    if not isinstance(data, dict):
        record["extend_data"] = "malformed"
        return {}
    meta: dict[str, Any] = {}
    if isinstance(data.get("InstanceId"), str):
        meta["instance_id"] = record["instance_id"] = data["InstanceId"]
    user_data = data.get("UserData")
    if user_data is not None:
        meta["user_data"] = user_data
        record["user_data"] = _show(user_data, 200)
    return meta


def _show(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
