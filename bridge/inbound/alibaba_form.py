"""Alibaba IMS "self-developed model (Alibaba Cloud specification)": `POST /` with a form.

This is where an Alibaba form becomes upstream messages: the `Message` history (JSON, or
the Python-literal quoting of the platform's docs, or a bare string), the `Token`, and the
`ExtendData` metadata (JSON or Python-literal too). The reply is one JSON object
`{"Text": ...}` that the platform speaks; with CALL_TOOLS it may carry IMS's hang-up or
transfer command (bridge/inbound/call_control.py).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge.errors import ErrorKind, UpstreamError
from bridge.inbound import call_control
from bridge.inbound.body import BodyError, FileField, body_error_reply, read_form
from bridge.inbound.pyliteral import LiteralTooCostly, parse_structured
from bridge.log import short
from bridge.pipeline.chain import Overloaded
from bridge.process.state import STATE, log_of
from bridge.render.json_reply import json_reply, plain_error
from bridge.request import ChatRequest, Message

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ROLES = frozenset({"system", "user", "assistant"})
MAX_FIELDS = 64  # IMS sends three; a body of thousands of fields is not a turn, and costs to parse
MAX_RECORDS = 2048
# With FALLBACK_TEXT empty a failed answer is an error status: a gateway error, whatever the upstream said.
FORM_STATUS = {ErrorKind.UPSTREAM_TIMEOUT: 504, ErrorKind.SHUTDOWN: 503}


class FormError(Exception):
    """A form field is missing or malformed; the message names the field."""


async def handle_form(request: web.Request) -> web.Response:
    """POST / : answer one turn of an IMS workflow with {"Text": ...}."""
    state = request.app[STATE]
    settings = state.settings
    log = log_of(request)
    if request.content_type not in FORM_TYPES:
        log.fail(ErrorKind.BAD_REQUEST)
        return plain_error(415, f"Content-Type must be one of {', '.join(FORM_TYPES)}")
    try:
        form = await read_form(request, settings.server.body_timeout, MAX_FIELDS)
        if not state.tokens.check(_field(form, "Token")):
            log.fail(ErrorKind.AUTH)
            return plain_error(401, "Token: missing or invalid")
        log.platform = "alibaba_ims"
        meta = parse_extend_data(_field(form, "ExtendData"), log)
        messages = parse_message(_field(form, "Message"))
    except BodyError as exc:
        log.fail(exc.kind)
        return body_error_reply(plain_error(exc.kind.status, exc.message), exc)
    except FormError as exc:
        log.fail(ErrorKind.BAD_REQUEST)
        return plain_error(400, str(exc))

    chat = ChatRequest(messages, model=settings.default_model, route="/", stream=False, meta=meta)
    if settings.answer.call_tools:
        chat.params["tools"] = call_control.tool_definitions(settings.answer)
    state.bridge.prepare(chat)
    try:
        answer = await state.voice.whole(state.bridge.stream(chat, log), chat, log,
                                         failure_text=settings.answer.form_failure_text)
    except Overloaded as exc:
        log.fail(ErrorKind.OVERLOADED)
        return plain_error(503, "too many requests in flight; retry shortly", {"Retry-After": str(exc.retry_after)})
    except UpstreamError as exc:
        log.fail(exc.kind, exc.message)  # FALLBACK_TEXT is set but empty: the status says what happened
        return plain_error(FORM_STATUS.get(exc.kind, 502), exc.message, kind=exc.kind.value)
    text, action = call_control.spoken_text(answer, settings.answer)
    log.call_control = action
    if action == "unsupported":  # a tool call the form cannot carry, and no words: never an empty Text
        text = settings.answer.form_failure_text or ""
        if not text:
            return plain_error(502, "the model answered only with a tool call this route cannot carry",
                               kind=ErrorKind.UPSTREAM_PROTOCOL.value)
        log.failure_phrase = True
    return json_reply({"Text": text})


def _field(form: Any, name: str) -> str | None:
    values = form.getall(name, [])
    if len(values) > 1:
        raise FormError(f"{name}: given {len(values)} times; send it once")
    if not values:
        return None
    if isinstance(values[0], FileField):
        raise FormError(f"{name}: must be a text field, not a file upload")
    return str(values[0])


def parse_message(raw: str | None) -> list[Message]:
    """The `Message` field as OpenAI-shaped messages (system/user/assistant, string content)."""
    if raw is None or not raw.strip():
        raise FormError("Message: required and must not be empty")
    text = raw.strip()
    try:
        value = parse_structured(text)
    except LiteralTooCostly as exc:
        raise FormError(f"Message: {exc}") from None
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
    if len(value) > MAX_RECORDS:
        raise FormError(f"Message: more than {MAX_RECORDS} records")
    return [_record(i, item) for i, item in enumerate(value)]


def _record(i: int, item: Any) -> Message:
    if not isinstance(item, dict):
        raise FormError(f"Message[{i}]: must be an object with role and content")
    role, content = item.get("role"), item.get("content")
    if not isinstance(role, str) or role not in ROLES:
        raise FormError(f"Message[{i}].role: must be one of system, user, assistant; got {short(role, 40)}")
    if not isinstance(content, str):
        raise FormError(f"Message[{i}].content: must be a string; got {type(content).__name__}")
    return {"role": role, "content": content}


def parse_extend_data(raw: str | None, log: Any) -> dict[str, Any]:
    """ExtendData's InstanceId and UserData (JSON or Python-literal), for logs and specs; never fatal."""
    if not raw:
        log.extend_data = "missing"
        return {}
    try:
        data = parse_structured(raw.strip())
    except ValueError:
        data = None
    if not isinstance(data, dict):
        log.extend_data = "malformed"
        return {}
    meta: dict[str, Any] = {}
    ids: dict[str, Any] = {}
    if isinstance(data.get("InstanceId"), str):
        meta["instance_id"] = ids["instance_id"] = data["InstanceId"]
    user_data = data.get("UserData")
    if user_data is not None:
        meta["user_data"] = user_data
        log.user_data = short(user_data)
    log.ids = {name: short(value) for name, value in ids.items()} or None
    return meta
