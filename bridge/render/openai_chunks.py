"""OpenAI Chat Completions rendering: SSE chunk bytes, the whole-completion object, errors.

Chunks are assembled from a per-stream prefix and the JSON of the delta alone, so a text
delta costs one small encode and a few byte joins.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bridge import jsonutil
from bridge.events import ToolCallDelta, Usage
from bridge.render.collect import Answer

DONE = b"data: [DONE]\n\n"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    503: "server_error",
}


def new_completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def error_body(status: int, message: str, code: str | None, param: str | None = None) -> dict[str, Any]:
    """OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""
    kind = ERROR_TYPES.get(status, "upstream_error" if status in (502, 504) else "server_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ChunkEncoder:
    """Encodes canonical events of one stream as `data: <chat.completion.chunk>` events."""

    def __init__(self, model: str, completion_id: str | None = None) -> None:
        self.id = completion_id or new_completion_id()
        self.created = int(time.time())
        self.model = model
        head = (
            f'{{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},'
            f'"model":{jsonutil.dumps_str(model)},"system_fingerprint":null,"choices":'
        ).encode()
        self._head = b"data: " + head
        self._open = self._head + b'[{"index":0,"delta":'
        self._role_sent = False

    def _delta(self, delta: bytes, finish: bytes = b"null") -> bytes:
        if not self._role_sent:
            self._role_sent = True
            delta = b'{"role":"assistant",' + delta[1:] if delta != b"{}" else b'{"role":"assistant"}'
        return self._open + delta + b',"logprobs":null,"finish_reason":' + finish + b"}]}\n\n"

    def text(self, text: str) -> bytes:
        return self._delta(b'{"content":' + jsonutil.dumps(text) + b"}")

    def tool_call(self, call: ToolCallDelta) -> bytes:
        function: dict[str, str] = {"arguments": call.arguments}
        item: dict[str, Any] = {"index": call.index}
        if call.id is not None:
            item["id"] = call.id
            item["type"] = "function"
        if call.name is not None:
            function["name"] = call.name
        item["function"] = function
        return self._delta(b'{"tool_calls":' + jsonutil.dumps([item]) + b"}")

    def finish(self, reason: str) -> bytes:
        return self._delta(b"{}", jsonutil.dumps(reason))

    def usage(self, usage: Usage) -> bytes:
        return self._head + b'[],"usage":' + jsonutil.dumps(usage.as_dict()) + b"}\n\n"

    @staticmethod
    def raw(payload: dict[str, Any]) -> bytes:
        return b"data: " + jsonutil.dumps(payload) + b"\n\n"

    @staticmethod
    def error(status: int, message: str, code: str | None) -> bytes:
        return b"data: " + jsonutil.dumps(error_body(status, message, code)) + b"\n\n"


def completion_object(answer: Answer, model: str) -> dict[str, Any]:
    """The whole `chat.completion` object for a non-streaming reply."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.tool_calls:
        message["tool_calls"] = [answer.tool_calls[i] for i in sorted(answer.tool_calls)]
    body: dict[str, Any] = {
        "id": new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
    }
    if answer.usage is not None:
        body["usage"] = answer.usage.as_dict()
    return body
