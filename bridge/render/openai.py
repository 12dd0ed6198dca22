"""OpenAI Chat Completions rendering: SSE chunk bytes for a stream, the whole-completion object.

Chunks are assembled from a per-stream prefix and the JSON of the delta alone, so a text
delta costs one small encode and a few byte joins; one batch of events becomes the bytes of
one write.
"""

from __future__ import annotations

import time
from typing import Any

from bridge import jsonutil
from bridge.events import Batch, Filler, Fingerprint, Finish, Metadata, Reasoning, TextDelta, ToolCallDelta, Usage
from bridge.render import ids
from bridge.render.sse import DONE, frame, passthrough
from bridge.render.whole import WholeAnswer


class ChunkEncoder:
    """Encodes the canonical events of one stream as `data: <chat.completion.chunk>` events."""

    __slots__ = ("_head", "_open", "_role_sent", "created", "id", "include_usage", "model", "usage")

    def __init__(self, model: str, include_usage: bool = False, completion_id: str | None = None) -> None:
        self.id = completion_id or ids.completion_id()
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.usage: Usage | None = None  # sent last, if the caller asked for it
        self._role_sent = False
        self._set_head(None)

    def _set_head(self, fingerprint: str | None) -> None:
        head = (f'{{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},'
                f'"model":{jsonutil.dumps_str(self.model)},"system_fingerprint":{jsonutil.dumps_str(fingerprint)},'
                f'"choices":').encode()
        self._head = b"data: " + head
        self._open = self._head + b'[{"index":0,"delta":'

    def batch(self, batch: Batch) -> bytes:
        """The bytes of one batch's chunks (b"" when it has nothing to send now)."""
        out: list[bytes] = []
        for event in batch:
            if type(event) is TextDelta or type(event) is Filler:
                out.append(self.text(event.text))
            elif type(event) is ToolCallDelta:
                out.append(self.tool_call(event))
            elif type(event) is Finish:
                out.append(self.finish(event.reason))
            elif type(event) is Usage:
                self.usage = event
            elif type(event) is Metadata:
                out.append(passthrough(event))
            elif type(event) is Fingerprint:
                self._set_head(event.value)
            elif type(event) is Reasoning:
                out.append(self._delta(b'{"reasoning_content":' + jsonutil.dumps(event.text) + b"}"))
        return out[0] if len(out) == 1 else b"".join(out)

    def end(self) -> bytes:
        """The usage chunk (if asked for) and `[DONE]`."""
        if self.include_usage and self.usage is not None:
            return self._head + b'[],"usage":' + jsonutil.dumps(self.usage.as_dict()) + b"}\n\n" + DONE
        return DONE

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

    @staticmethod
    def error(body: Any) -> bytes:
        """An error event (the protocol's error object), then `[DONE]`: how a started stream ends in failure."""
        return frame(body) + DONE


def completion_object(answer: WholeAnswer, model: str) -> dict[str, Any]:
    """The whole `chat.completion` object for a non-streaming reply."""
    message: dict[str, Any] = {"role": "assistant", "content": answer.text or None}
    if answer.reasoning:
        message["reasoning_content"] = "".join(answer.reasoning)
    if answer.tool_calls:
        message["tool_calls"] = answer.calls()
    body: dict[str, Any] = {
        "id": ids.completion_id(),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": answer.fingerprint,
        "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": answer.finish_reason}],
    }
    if answer.usage is not None:
        body["usage"] = answer.usage.as_dict()
    return body
