"""Ending and transferring calls: the tools offered to the model, and the action it chose.

With CALL_TOOLS the model is offered a `hangup` and/or a `transfer` tool; `chosen_action` is
the call it made. The socket platforms (bridge/inbound/sockets/) carry it in their own end
messages. IMS's Alibaba-spec form route, which has no tool channel, carries it in the form's
`Text` as the text command Alibaba's guide "automatic hang-up/transfer" documents for any
self-developed model (tests/fixtures/platforms/ims_call_control.json):

    <imsagent_hangup endword="Goodbye."/>
    <imsagent_transfer_call callee=10086, err_msg=..., msg=.../>

The words the model spoke before the call become the closing words (else the words it passed,
else HANGUP_WORDS). Values are cleaned of the characters that would end the command early.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bridge import jsonutil
from bridge.config import AnswerSettings
from bridge.render.whole import WholeAnswer


def tool_definitions(settings: AnswerSettings) -> list[dict[str, Any]]:
    """The call-control tools offered to the model, in OpenAI's `tools` shape."""
    tools: list[dict[str, Any]] = []
    if "hangup" in settings.call_tools:
        tools.append(_function("hangup", "End the phone call. Use it when the caller says goodbye or the "
                               "conversation is over.",
                               {"closing_words": {"type": "string", "description": "What to say before hanging up."}},
                               []))
    if "transfer" in settings.call_tools:
        number: dict[str, Any] = {"type": "string", "description": "The phone number to transfer the call to."}
        if settings.transfer_numbers:
            number["enum"] = list(settings.transfer_numbers)
        tools.append(_function("transfer", "Transfer the call to a human agent or another number.",
                               {"number": number,
                                "message": {"type": "string", "description": "What to say as the transfer starts."},
                                "error_message": {"type": "string",
                                                  "description": "What to say if the transfer fails."}},
                               ["number"]))
    return tools


@dataclass(frozen=True, slots=True)
class CallAction:
    """A call-control tool the model called, its arguments checked against the settings."""

    kind: str  # "hangup" or "transfer"
    words: str = ""  # hangup: its closing_words; transfer: its message (what to say as it starts)
    number: str = ""  # transfer: the number, one of TRANSFER_NUMBERS when that is set
    error_message: str = ""  # transfer: what to say if it fails


def chosen_action(calls: list[dict[str, Any]], settings: AnswerSettings) -> CallAction | None:
    """The first call among `calls` (OpenAI-shaped) that CALL_TOOLS allows, with usable arguments.

    A transfer to a number not in TRANSFER_NUMBERS is skipped, as is a tool CALL_TOOLS leaves out.
    """
    for call in calls:
        name = call["function"]["name"]
        if name not in settings.call_tools:
            continue
        arguments = _arguments(call["function"]["arguments"])
        if name == "hangup":
            return CallAction("hangup", _text(arguments.get("closing_words")))
        number = _text(arguments.get("number"))
        if number and (not settings.transfer_numbers or number in settings.transfer_numbers):
            return CallAction("transfer", _text(arguments.get("message")), number,
                              _text(arguments.get("error_message")))
    return None


def spoken_text(answer: WholeAnswer, settings: AnswerSettings) -> tuple[str, str | None]:
    """The form's `Text` for an answer, and the call action taken (None, `hangup`, `transfer`, `unsupported`)."""
    for call in answer.calls():
        name = call["function"]["name"]
        if name in settings.call_tools:
            command = _command(name, _arguments(call["function"]["arguments"]), answer.text.strip(), settings)
            if command is not None:
                return command, name
    if answer.tool_calls and not answer.text.strip():
        return "", "unsupported"
    return answer.text, None


def _command(name: str, arguments: dict[str, Any], said: str, settings: AnswerSettings) -> str | None:
    """IMS's text command for one call-control call (None: a transfer to a number not allowed)."""
    if name == "hangup":
        words = said or _text(arguments.get("closing_words")) or settings.hangup_words
        return f'<imsagent_hangup endword="{_clean(words)}"/>'
    number = _text(arguments.get("number"))
    if not number or (settings.transfer_numbers and number not in settings.transfer_numbers):
        return None
    fields = {"callee": number, "err_msg": _text(arguments.get("error_message")),
              "msg": _text(arguments.get("message")) or said}
    return f"<imsagent_transfer_call {', '.join(f'{k}={_clean(v)}' for k, v in fields.items() if v)}/>"


def _function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "function", "function": {"name": name, "description": description, "parameters": {
        "type": "object", "properties": properties, "required": required}}}


def _arguments(raw: str) -> dict[str, Any]:
    try:
        value = jsonutil.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _clean(value: str) -> str:
    """A value that cannot end the command early: no quotes, angle brackets or ASCII commas."""
    table = {ord('"'): "'", ord("<"): " ", ord(">"): " ", ord(","): "，", ord("\n"): " ", ord("\r"): " "}
    return " ".join(value.translate(table).split())[:500]
