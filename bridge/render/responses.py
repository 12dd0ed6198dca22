"""OpenAI Responses API rendering: the response object, and the events a streamed response sends.

One `ResponseBuilder` per response turns the canonical events into the Responses API's own:
`response.created` and `response.in_progress` first, then for each output item its
`output_item.added`, its deltas (`output_text.delta`, `function_call_arguments.delta`) and, at
the end, its `.done` events, and last `response.completed` (or `response.incomplete`, or
`response.failed`), every event numbered by `sequence_number` from 0. The same builder makes
the object a non-streamed request gets, and the chat messages the answer adds to the stored
conversation. Shapes follow the official SDK's types (openai.types.responses).

Events are dicts; the transport frames them (SSE `event:`/`data:` lines, or one WebSocket
message each): `sse_frames` does the former.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bridge import jsonutil
from bridge.events import Batch, Filler, Finish, TextDelta, ToolCallDelta, Usage
from bridge.render import ids
from bridge.render.whole import WholeAnswer
from bridge.request import Message

# A finish reason that stops the answer short: the response is `incomplete`, for this reason.
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


@dataclass(slots=True)
class ResponseHead:
    """What every copy of the response object says of its request."""

    model: str
    echo: dict[str, Any]  # the request's settings as the object shows them (instructions, tools, ...)
    id: str = field(default_factory=ids.response_id)
    created_at: int = field(default_factory=lambda: int(time.time()))


@dataclass(slots=True)
class _Message:
    id: str
    index: int
    parts: list[str] = field(default_factory=list)
    fillers: set[int] = field(default_factory=set)  # which parts are the tools' filler

    @property
    def text(self) -> str:
        return "".join(self.parts)

    @property
    def answer(self) -> str:
        """The text without the filler: what the conversation keeps (the model did not say it)."""
        if not self.fillers:
            return self.text
        return "".join(part for i, part in enumerate(self.parts) if i not in self.fillers).strip()  # (its separator)

    def item(self, status: str, content: bool = True) -> dict[str, Any]:
        parts = [_text_part(self.text)] if content else []
        return {"id": self.id, "type": "message", "status": status, "role": "assistant", "content": parts}


@dataclass(slots=True)
class _Call:
    id: str
    index: int
    call_id: str
    name: str
    parts: list[str] = field(default_factory=list)

    @property
    def arguments(self) -> str:
        return "".join(self.parts)

    def item(self, status: str, arguments: bool = True) -> dict[str, Any]:
        return {"id": self.id, "type": "function_call", "status": status, "call_id": self.call_id,
                "name": self.name, "arguments": self.arguments if arguments else ""}


def _text_part(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


class ResponseBuilder:
    """One response: its output items as they grow, and the events that tell them."""

    __slots__ = ("_calls", "_message", "finish", "head", "items", "seq", "usage")

    def __init__(self, head: ResponseHead) -> None:
        self.head = head
        self.seq = 0
        self.items: list[_Message | _Call] = []
        self._message: _Message | None = None  # the message item text goes to now
        self._calls: dict[int, _Call] = {}  # by the upstream's tool call index
        self.usage: Usage | None = None
        self.finish = "stop"

    @property
    def id(self) -> str:
        return self.head.id

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        event = {"type": kind, "sequence_number": self.seq, **fields}
        self.seq += 1
        return event

    def start(self) -> list[dict[str, Any]]:
        """`response.created` and `response.in_progress`."""
        return [self._event("response.created", response=self.response("in_progress")),
                self._event("response.in_progress", response=self.response("in_progress"))]

    def batch(self, batch: Batch) -> list[dict[str, Any]]:
        """The events one batch of the answer makes (fillers are said, so they are text)."""
        out: list[dict[str, Any]] = []
        for event in batch:
            if type(event) is TextDelta:
                out += self.text(event.text)
            elif type(event) is Filler:
                out += self.text(event.text, filler=True)
            elif type(event) is ToolCallDelta:
                out += self.tool_call(event)
            elif type(event) is Finish:
                self.finish = event.reason
            elif type(event) is Usage:
                self.usage = event
        return out

    def text(self, text: str, *, filler: bool = False) -> list[dict[str, Any]]:
        if not text:
            return []
        out = []
        message = self._message
        if message is None:
            message = self._message = _Message(ids.message_id(), len(self.items))
            self.items.append(message)
            out.append(self._event("response.output_item.added", output_index=message.index,
                                   item=message.item("in_progress", content=False)))
            out.append(self._event("response.content_part.added", item_id=message.id, output_index=message.index,
                                   content_index=0, part=_text_part("")))
        if filler:
            message.fillers.add(len(message.parts))
        message.parts.append(text)
        out.append(self._event("response.output_text.delta", item_id=message.id, output_index=message.index,
                               content_index=0, delta=text, logprobs=[]))
        return out

    def tool_call(self, delta: ToolCallDelta) -> list[dict[str, Any]]:
        out = []
        call = self._calls.get(delta.index)
        if call is None:
            self._message = None  # text after a call is a message item of its own
            call = _Call(ids.function_call_id(), len(self.items), delta.id or ids.call_id(), delta.name or "")
            self._calls[delta.index] = call
            self.items.append(call)
            out.append(self._event("response.output_item.added", output_index=call.index,
                                   item=call.item("in_progress", arguments=False)))
        elif delta.name:
            call.name += delta.name
        if delta.arguments:
            call.parts.append(delta.arguments)
            out.append(self._event("response.function_call_arguments.delta", item_id=call.id,
                                   output_index=call.index, delta=delta.arguments))
        return out

    def end(self) -> list[dict[str, Any]]:
        """Each item's `.done` events, then `response.completed` (or `response.incomplete`)."""
        out = []
        for item in self.items:
            out += self._done(item)
        final = self.final()
        out.append(self._event(f"response.{final['status']}", response=final))
        return out

    def final(self) -> dict[str, Any]:
        """The finished response object: `completed`, or `incomplete` when the answer was cut short."""
        reason = _INCOMPLETE.get(self.finish)
        return self.response("completed" if reason is None else "incomplete", reason=reason)

    def whole(self, answer: WholeAnswer) -> dict[str, Any]:
        """The response object for a whole answer (a request that does not stream)."""
        self.text(answer.text)
        for index, call in enumerate(answer.calls()):
            function = call["function"]
            self.tool_call(ToolCallDelta(index, call.get("id"), function.get("name"), function.get("arguments", "")))
        self.usage, self.finish = answer.usage, answer.finish_reason
        return self.final()

    def _done(self, item: _Message | _Call) -> list[dict[str, Any]]:
        where = {"item_id": item.id, "output_index": item.index}
        if isinstance(item, _Call):
            return [self._event("response.function_call_arguments.done", **where, name=item.name,
                                arguments=item.arguments),
                    self._event("response.output_item.done", output_index=item.index, item=item.item("completed"))]
        return [self._event("response.output_text.done", **where, content_index=0, text=item.text, logprobs=[]),
                self._event("response.content_part.done", **where, content_index=0, part=_text_part(item.text)),
                self._event("response.output_item.done", output_index=item.index, item=item.item("completed"))]

    def failed(self, code: str | None, message: str, status: str = "failed") -> dict[str, Any]:
        """`response.failed`: the answer broke off (`code` and `message` say why), or was cancelled
        (`status` "cancelled", no error)."""
        error = {"code": code, "message": message} if code is not None else None
        return self._event("response.failed", response=self.response(status, error=error))

    def response(self, status: str, *, error: dict[str, Any] | None = None,
                 reason: str | None = None) -> dict[str, Any]:
        """The response object as it stands, with `status`."""
        head = self.head
        item_status = "completed" if status == "completed" else "incomplete"
        body: dict[str, Any] = {
            "id": head.id, "object": "response", "created_at": head.created_at, "status": status,
            "background": False, "error": error,
            "incomplete_details": {"reason": reason} if reason is not None else None,
            "model": head.model,
            "output": [] if status == "in_progress" else [item.item(item_status) for item in self.items],
            **head.echo,
            "usage": usage_object(self.usage) if self.usage is not None and status != "in_progress" else None,
        }
        if status == "completed":
            body["completed_at"] = int(time.time())
        return body

    def messages(self) -> list[Message]:
        """The answer as the chat messages it adds to the conversation (none for an empty answer);
        the tools' filler is heard, but is not the model's to read back."""
        text = "".join(item.answer for item in self.items if isinstance(item, _Message))
        calls = [{"id": item.call_id, "type": "function", "function": {"name": item.name, "arguments": item.arguments}}
                 for item in self.items if isinstance(item, _Call)]
        if not text and not calls:
            return []
        message: Message = {"role": "assistant", "content": text or None}
        if calls:
            message["tool_calls"] = calls
        return [message]


def usage_object(usage: Usage) -> dict[str, Any]:
    """The Responses API's `usage`: input and output tokens, with the cached and reasoning counts
    when the upstream reported them."""
    prompt_details = usage.details.get("prompt_tokens_details")
    completion_details = usage.details.get("completion_tokens_details")
    return {
        "input_tokens": usage.prompt_tokens,
        "input_tokens_details": {"cached_tokens": _count(prompt_details, "cached_tokens"), "cache_write_tokens": 0},
        "output_tokens": usage.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": _count(completion_details, "reasoning_tokens")},
        "total_tokens": usage.total_tokens,
    }


def _count(details: Any, name: str) -> int:
    value = details.get(name) if isinstance(details, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def sse_frames(events: list[dict[str, Any]]) -> bytes:
    """Events as Server-Sent Events, each with its `event:` name (as OpenAI streams them)."""
    return b"".join(b"event: " + event["type"].encode() + b"\ndata: " + jsonutil.dumps(event) + b"\n\n"
                    for event in events)
