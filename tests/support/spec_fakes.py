"""Fake providers for the spec tests: aiohttp handlers speaking each provider's real wire format.

Each builder returns a handler for `FakeUpstream.handler` (tests/support/upstream.py), which records
the request the provider received. Bodies are written frame by frame, as providers do.
`{key}` in a body is replaced by the credential the request carried, as providers that say
"Incorrect API key provided: sk-..." do: tests then check the bridge never repeats it.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False)


async def credential(request: web.Request) -> str:
    """The secret the request authenticated with: bearer token, x-api-key / x-goog-api-key, ihcloud AK or form Token."""
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        return auth[len("Bearer "):]
    for header in ("x-api-key", "x-goog-api-key"):
        if header in request.headers:
            return request.headers[header]
    if "X-IHU-Authorization-V2" in request.headers:
        return request.headers["X-IHU-Authorization-V2"].split("/")[1]
    if request.content_type == "application/x-www-form-urlencoded":
        token = (await request.post()).get("Token")
        if isinstance(token, str) and token:
            return token
    return "(none)"


async def _fill(text: str, request: web.Request) -> str:
    return text.replace("{key}", await credential(request)) if "{key}" in text else text


def raw_stream(frames: list[bytes | str], *, content_type: str = "text/event-stream",
               status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    """Writes each frame as its own network write."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=status, headers={"Content-Type": content_type, **(headers or {})})
        await response.prepare(request)
        for frame in frames:
            await response.write((await _fill(frame, request)).encode() if isinstance(frame, str) else frame)
        await response.write_eof()
        return response

    return handler


def json_body(obj: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        return web.Response(text=await _fill(_dump(obj), request), status=status, content_type="application/json",
                            headers=headers)

    return handler


# -- OpenAI -----------------------------------------------------------------------------------

def openai_error(status: int, message: str, type_: str = "invalid_request_error") -> Handler:
    return json_body({"error": {"message": message, "type": type_, "param": None, "code": None}}, status=status)


# -- MiniMax chatcompletion_pro -----------------------------------------------------------------

def minimax_stream(pieces: list[str], total_tokens: int) -> Handler:
    """As MiniMax documents it (tests/fixtures/providers/minimax.json): every intermediate chunk has
    `"reply": ""`; the final one repeats the whole reply, with usage and base_resp."""

    def chunk(text: str, reply: str = "", **extra: Any) -> str:
        message = {"sender_type": "BOT", "sender_name": "Assistant", "text": text}
        choice: dict[str, Any] = {"messages": [message]}
        if "finish_reason" in extra:
            choice["finish_reason"] = extra.pop("finish_reason")
        body = {"created": 1700000000, "model": "abab6.5s-chat", "reply": reply, "choices": [choice],
                "output_sensitive": False, **extra}
        return "data: " + _dump(body) + "\n\n"

    full = "".join(pieces)
    final = chunk(full, reply=full, finish_reason="stop", usage={"total_tokens": total_tokens},
                  input_sensitive=False, base_resp={"status_code": 0, "status_msg": ""})
    return raw_stream([chunk(p) for p in pieces] + [final])


def minimax_error(code: int, message: str) -> Handler:
    return json_body({"created": 0, "model": "", "reply": "", "choices": None,
                      "base_resp": {"status_code": code, "status_msg": message}})


# -- Baidu 灵医 (Lingyi) --------------------------------------------------------------------------

def lingyi_stream(pieces: list[str]) -> Handler:
    frames = []
    for piece in pieces:
        body = {"result": [{"session_id": "sess-1", "messages": [
            {"scene": "chat", "content": [{"type": "text", "body": piece}]}]}]}
        frames.append("data:" + _dump(body) + "\n\n")
    return raw_stream(frames)


def lingyi_error(code: int, message: str) -> Handler:
    return raw_stream(["data:" + _dump({"error_code": code, "error_msg": message}) + "\n\n"])


# -- DashScope native ----------------------------------------------------------------------------

def _dashscope_frame(i: int, content: str, finish: str, usage: dict[str, int]) -> str:
    body = {"output": {"choices": [{"message": {"content": content, "role": "assistant"},
                                    "finish_reason": finish}]},
            "usage": usage, "request_id": "req-1"}
    return f"id:{i}\nevent:result\n:HTTP_STATUS/200\ndata:{_dump(body)}\n\n"


def dashscope_stream(pieces: list[str], *, cumulative: bool = False, input_tokens: int = 9) -> Handler:
    frames = []
    text = ""
    for i, piece in enumerate(pieces, 1):
        text += piece
        last = i == len(pieces)
        usage = {"input_tokens": input_tokens, "output_tokens": i, "total_tokens": input_tokens + i}
        frames.append(_dashscope_frame(i, text if cumulative else piece, "stop" if last else "null", usage))
    return raw_stream(frames)


def dashscope_error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> Handler:
    body = _dump({"code": code, "message": message, "request_id": "req-err"})
    return raw_stream([f"id:1\nevent:error\n:HTTP_STATUS/{status}\ndata:{body}\n\n"], status=status, headers=headers)


# -- Ollama ---------------------------------------------------------------------------------------

def ollama_stream(pieces: list[str], prompt_tokens: int, eval_count: int) -> Handler:
    lines = [_dump({"model": "llama3.2", "created_at": "2024-01-01T00:00:00Z",
                    "message": {"role": "assistant", "content": p}, "done": False}) + "\n" for p in pieces]
    lines.append(_dump({"model": "llama3.2", "created_at": "2024-01-01T00:00:01Z",
                        "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                        "total_duration": 1, "prompt_eval_count": prompt_tokens, "eval_count": eval_count}) + "\n")
    return raw_stream(lines, content_type="application/x-ndjson")


# -- Anthropic Messages -------------------------------------------------------------------------

def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {_dump(data)}\n\n"


def anthropic_stream(pieces: list[str], input_tokens: int, output_tokens: int) -> Handler:
    frames = [_event("message_start", {"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude",
        "stop_reason": None, "usage": {"input_tokens": input_tokens, "output_tokens": 1}}}),
        _event("content_block_start", {"type": "content_block_start", "index": 0,
                                       "content_block": {"type": "text", "text": ""}}),
        _event("ping", {"type": "ping"})]
    frames += [_event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                              "delta": {"type": "text_delta", "text": p}}) for p in pieces]
    frames += [_event("content_block_stop", {"type": "content_block_stop", "index": 0}),
               _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                        "usage": {"output_tokens": output_tokens}}),
               _event("message_stop", {"type": "message_stop"})]
    return raw_stream(frames)


def anthropic_error_event(kind: str, message: str) -> Handler:
    return raw_stream([_event("error", {"type": "error", "error": {"type": kind, "message": message}})])


def anthropic_http_error(status: int, kind: str, message: str) -> Handler:
    return json_body({"type": "error", "error": {"type": kind, "message": message}}, status=status)


# -- async job API (DashScope task shape) -------------------------------------------------------

def async_task(answer: str, *, running_polls: int = 0, fail: tuple[str, str] | None = None) -> Handler:
    """Submit at POST, poll at GET /api/v1/tasks/<id>: RUNNING `running_polls` times, then done."""
    polls = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        if request.method == "POST":
            return web.json_response({"output": {"task_id": "task-42", "task_status": "PENDING"},
                                      "request_id": "req-1"})
        polls["n"] += 1
        if polls["n"] <= running_polls:
            return web.json_response({"output": {"task_id": "task-42", "task_status": "RUNNING"}})
        if fail is not None:
            return web.json_response({"output": {"task_id": "task-42", "task_status": "FAILED",
                                                 "code": fail[0], "message": await _fill(fail[1], request)}})
        return web.json_response({
            "output": {"task_id": "task-42", "task_status": "SUCCEEDED",
                       "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": answer}}]},
            "usage": {"input_tokens": 12, "output_tokens": 3}})

    return handler


# -- Gemini streamGenerateContent?alt=sse ----------------------------------------------------------

def gemini_stream(pieces: list[str], prompt_tokens: int, output_tokens: int) -> Handler:
    """As tests/fixtures/providers/gemini.json shows it: one GenerateContentResponse per event, CRLF-framed;
    finishReason and the final counts on the last."""
    frames = []
    for i, piece in enumerate(pieces):
        candidate: dict[str, Any] = {"content": {"parts": [{"text": piece}], "role": "model"}, "index": 0}
        usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens}
        if i == len(pieces) - 1:
            candidate["finishReason"] = "STOP"
            usage = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output_tokens,
                     "totalTokenCount": prompt_tokens + output_tokens}
        frames.append("data: " + _dump({"candidates": [candidate], "usageMetadata": usage,
                                        "modelVersion": "gemini-2.5-flash"}) + "\r\n\r\n")
    return raw_stream(frames)


def gemini_error(status: int, code: str, message: str) -> Handler:
    return json_body({"error": {"code": status, "message": message, "status": code}}, status=status)


# -- Cohere v2 chat ------------------------------------------------------------------------------

def _cohere_event(data: dict[str, Any]) -> str:
    return f"event: {data['type']}\ndata: {_dump(data)}\n\n"


def cohere_stream(pieces: list[str], input_tokens: int = 8, output_tokens: int = 2) -> Handler:
    """As cohere-openapi.yaml documents it: message-start, content events, message-end with the usage."""
    frames = [_cohere_event({"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}}),
              _cohere_event({"type": "content-start", "index": 0,
                             "delta": {"message": {"content": {"type": "text", "text": ""}}}})]
    frames += [_cohere_event({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}})
               for p in pieces]
    frames += [_cohere_event({"type": "content-end", "index": 0}),
               _cohere_event({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
                   "billed_units": {"input_tokens": input_tokens, "output_tokens": output_tokens},
                   "tokens": {"input_tokens": input_tokens, "output_tokens": output_tokens}}}})]
    return raw_stream(frames)


# -- Coze chat v3 --------------------------------------------------------------------------------

def coze_stream(pieces: list[str], input_count: int, output_count: int) -> Handler:
    """As coze-py's tests/testdata/chat_text_stream_resp.txt shows it: chat events, message deltas, the
    completed message repeating the answer, chat.completed with usage, then `done`."""
    ids = {"conversation_id": "c1", "bot_id": "b1"}

    def chat(status: str, usage: tuple[int, int] = (0, 0)) -> dict[str, Any]:
        return {"id": "chat-1", **ids, "last_error": {"code": 0, "msg": ""}, "status": status,
                "usage": {"token_count": sum(usage), "output_count": usage[1], "input_count": usage[0]}}

    def message(content: str) -> dict[str, Any]:
        return {"id": "msg-1", **ids, "role": "assistant", "type": "answer", "content": content,
                "content_type": "text", "chat_id": "chat-1"}

    frames = [f"event:conversation.chat.created\ndata:{_dump(chat('created'))}\n\n",
              f"event:conversation.chat.in_progress\ndata:{_dump(chat('in_progress'))}\n\n"]
    frames += [f"event:conversation.message.delta\ndata:{_dump(message(p))}\n\n" for p in pieces]
    frames += [f"event:conversation.message.completed\ndata:{_dump(message(''.join(pieces)))}\n\n",
               f"event:conversation.chat.completed\ndata:{_dump(chat('completed', (input_count, output_count)))}\n\n",
               'event:done\ndata:"[DONE]"']
    return raw_stream(frames)


def coze_refusal(code: int, message: str) -> Handler:
    """Coze refuses a request with HTTP 200 and {code, msg}."""
    return json_body({"code": code, "msg": message})
