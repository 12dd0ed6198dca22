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

from bridge.errors import BridgeError, ErrorKind
from bridge.inbound import call_control
from bridge.inbound.body import FileField, read_form
from bridge.inbound.context import SERVICES, agent_for, log_of
from bridge.inbound.pyliteral import LiteralTooCostly, parse_structured
from bridge.log import short
from bridge.pipeline import Policy
from bridge.render.errors import FORM
from bridge.render.json_reply import json_reply
from bridge.request import ChatRequest, Message

FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
ROLES = frozenset({"system", "user", "assistant"})
MAX_FIELDS = 64  # IMS sends three; a body of thousands of fields is not a turn, and costs to parse
MAX_RECORDS = 2048
SPOKEN = Policy(FORM, voice=True)  # IMS speaks the Text: the default failure phrase even without FALLBACK_TEXT


class FormError(BridgeError):
    """A form field is missing or malformed; the message names the field."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorKind.BAD_REQUEST, message)


async def handle_form(request: web.Request) -> web.Response:
    """POST / : answer one turn of an IMS workflow with {"Text": ...}."""
    log = log_of(request)
    if request.content_type not in FORM_TYPES:
        raise BridgeError(ErrorKind.UNSUPPORTED_MEDIA, f"Content-Type must be one of {', '.join(FORM_TYPES)}")
    server = request.app[SERVICES].settings.server
    form = await read_form(request, server.body_timeout, MAX_FIELDS, server.max_body_bytes)
    agent = agent_for(request, _field(form, "Token"), "Token: missing or invalid")
    log.platform = "alibaba_ims"
    meta = parse_extend_data(_field(form, "ExtendData"), log)
    settings = agent.settings.answer
    chat = ChatRequest(parse_message(_field(form, "Message")), model=agent.model, route="/", streamed=False,
                       meta=meta)
    if settings.call_tools:
        chat.params["tools"] = call_control.tool_definitions(settings)
    answer = await agent.pipeline.whole(chat, log, SPOKEN)
    text, action = call_control.spoken_text(answer, settings)
    log.call_control = action
    if action == "unsupported":  # a tool call the form cannot carry, and no words: never an empty Text
        text = settings.form_failure_text or ""
        if not text:
            raise BridgeError(ErrorKind.UPSTREAM_PROTOCOL,
                              "the model answered only with a tool call this route cannot carry")
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
    value = _structured(raw)
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    records = [value] if isinstance(value, dict) else value
    if not isinstance(records, list):
        raise FormError("Message: must be a list of {role, content} objects")
    if not records:
        raise FormError("Message: the history is empty")
    if len(records) > MAX_RECORDS:
        raise FormError(f"Message: more than {MAX_RECORDS} records")
    return [_record(i, item) for i, item in enumerate(records)]


def _structured(raw: str) -> Any:
    """JSON or a Python literal; plain text (that may merely start with a quote) as it is."""
    text = raw.strip()
    try:
        return parse_structured(text)
    except LiteralTooCostly as exc:
        raise FormError(f"Message: {exc}") from None
    except ValueError:
        if text[0] in "[{":
            raise FormError("Message: not valid JSON or a Python-literal list of {role, content}") from None
        return raw


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
