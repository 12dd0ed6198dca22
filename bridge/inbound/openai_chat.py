"""OpenAI Chat Completions inbound: Alibaba IMS's OpenAI-spec node and Agora's custom LLM.

`POST /v1/chat/completions` and `POST /chat/completions`. Platform fields (IMS's
`extendData`, Agora's `context`, `turn_id`, `timestamp`, `interruptable`, per-message
`metadata`) are logged and removed; standard parameters pass through to the upstream.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

from aiohttp import web

from bridge import jsonutil
from bridge.core import Overloaded
from bridge.events import Batch, Finish, Metadata, TextDelta, ToolCallDelta, UpstreamError, Usage
from bridge.render.collect import Answer, collect
from bridge.render.openai_chunks import DONE, ChunkEncoder, completion_object, error_body
from bridge.request import ChatRequest, Message
from bridge.state import STATE, AppState, log_record

PLATFORM_FIELDS = frozenset({"extendData", "context", "turn_id", "timestamp", "interruptable"})
MANAGED_FIELDS = frozenset({"messages", "model", "stream", "stream_options", "n"})
MESSAGE_FIELDS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "refusal"})
ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_NUMBER = (int, float)
PARAM_TYPES: dict[str, tuple[type, ...]] = {
    "temperature": _NUMBER, "top_p": _NUMBER, "presence_penalty": _NUMBER, "frequency_penalty": _NUMBER,
    "max_tokens": (int,), "max_completion_tokens": (int,), "seed": (int,), "top_logprobs": (int,),
    "stop": (str, list), "tools": (list,), "tool_choice": (str, dict), "parallel_tool_calls": (bool,),
    "response_format": (dict,), "user": (str,), "logit_bias": (dict,), "logprobs": (bool,),
}
SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache",
               "X-Accel-Buffering": "no"}


class ChatError(Exception):
    """The request body is invalid; `param` names the offending field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


def openai_error(status: int, message: str, code: str | None, param: str | None = None,
                 headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=jsonutil.dumps(error_body(status, message, code, param)), status=status,
                        content_type="application/json", charset="utf-8", headers=headers)


async def accept_chat(request: web.Request, *, stream_only: str | None = None) -> ChatRequest | web.Response:
    """Authenticate and parse an OpenAI chat request; a Response means it was refused.

    `stream_only`, when given, is the 400 message for a request that does not stream.
    The returned request's platform fields are in the log record, not in the request.
    """
    state = request.app[STATE]
    record = log_record(request)
    if not state.tokens.check_bearer(request.headers.get("Authorization")):
        record["error_kind"] = "auth"
        return openai_error(401, "Invalid or missing bearer token.", "invalid_api_key")
    try:
        chat = parse_chat(await request.read(), state.settings.default_model, request.path)
        if stream_only and not chat.stream:
            raise ChatError(stream_only, "stream")
    except ChatError as exc:
        record["error_kind"] = "bad_request"
        return openai_error(400, str(exc), "invalid_request", exc.param)
    record.update(log_fields(chat.meta))
    return chat


async def handle_chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions and /chat/completions."""
    chat = await accept_chat(request)
    if isinstance(chat, web.Response):
        return chat
    state = request.app[STATE]
    record = log_record(request)
    state.bridge.prepare(chat)
    if chat.stream:
        return await stream_reply(request, state, chat, state.bridge.stream(chat, record))
    answer = await collect_answer(state, chat, record)
    if isinstance(answer, web.Response):
        return answer
    return web.Response(body=jsonutil.dumps(completion_object(answer, chat.model)),
                        content_type="application/json", charset="utf-8")


async def collect_answer(state: AppState, chat: ChatRequest, record: dict[str, Any]) -> Answer | web.Response:
    """The whole answer, for a reply that is not streamed; a Response when it is an error.

    Too many requests in flight: a 503 with Retry-After. An upstream failure: the
    FALLBACK_TEXT answer when set, else the upstream's error as an OpenAI error response.
    """
    try:
        return await collect(state.bridge.stream(chat, record))
    except Overloaded as exc:
        return overloaded_reply(record, exc)
    except UpstreamError as exc:
        fallback = fallback_answer(state, chat, record, exc)
        if fallback is None:
            return upstream_error_reply(exc)
        return await collect(fallback)


def fallback_answer(state: AppState, chat: ChatRequest, record: dict[str, Any],
                    exc: UpstreamError) -> AsyncGenerator[Batch, None] | None:
    """Log an upstream failure; the FALLBACK_TEXT answer's events, or None when it is not set."""
    record["error_kind"] = exc.kind
    record["error"] = exc.message
    text = state.settings.openai_fallback_text
    if not text:
        return None
    record["fallback"] = True
    return state.bridge.fallback(chat, text)


async def stream_reply(
    request: web.Request, state: AppState, chat: ChatRequest, batches: AsyncGenerator[Batch, None],
    response: web.StreamResponse | None = None,
) -> web.StreamResponse:
    """Forward events as SSE chunks as they arrive, each upstream read in one write; headers
    go out with the first, unless the caller passes a `response` it already prepared."""
    record = log_record(request)
    encoder = ChunkEncoder(chat.model)
    usage: Usage | None = None
    try:
        async with aclosing(batches):
            try:
                async for batch in batches:
                    out: list[bytes] = []
                    for event in batch:
                        kind = type(event)
                        if kind is TextDelta:
                            out.append(encoder.text(event.text))  # type: ignore[union-attr]
                        elif kind is ToolCallDelta:
                            out.append(encoder.tool_call(event))  # type: ignore[arg-type]
                        elif kind is Finish:
                            out.append(encoder.finish(event.reason))  # type: ignore[union-attr]
                        elif kind is Usage:
                            usage = event  # type: ignore[assignment]  # sent last, if asked for
                        elif kind is Metadata:
                            out.append(encoder.raw(event.payload))  # type: ignore[union-attr]
                    if not out:
                        continue
                    if response is None:
                        response = web.StreamResponse(headers=SSE_HEADERS)
                        await response.prepare(request)
                    await response.write(out[0] if len(out) == 1 else b"".join(out))
            except Overloaded as exc:
                if response is None:
                    return overloaded_reply(record, exc)
                record["error_kind"] = "overloaded"
                await response.write(encoder.error(503, "Too many requests in flight; retry shortly.", "overloaded")
                                     + DONE)
                return response
            except UpstreamError as exc:
                record["error_kind"] = exc.kind
                record["error"] = exc.message
                fallback = state.settings.openai_fallback_text
                if response is not None:
                    await response.write(encoder.error(exc.http_status, exc.message, exc.kind) + DONE)
                    return response
                if not fallback:
                    return upstream_error_reply(exc)
                record["fallback"] = True
                return await stream_reply(request, state, chat, state.bridge.fallback(chat, fallback))
            except ConnectionError:
                raise
            except Exception as exc:
                if response is None:
                    raise  # nothing sent yet: the middleware answers a JSON 500
                # A bug after the headers went out: end the stream properly, never a silent cut.
                record["error_kind"] = "internal"
                record["exception"] = f"{type(exc).__name__}: {exc}"
                await response.write(encoder.error(500, "Internal error; see the server log.", "internal") + DONE)
                return response
        assert response is not None
        if usage is not None and chat.include_usage:
            await response.write(encoder.usage(usage))
        await response.write(DONE)
        await response.write_eof()
    except ConnectionError:
        record["client_cancel"] = True  # the caller hung up or barged in: upstream already closed
    return response or web.Response(status=499)


def upstream_error_reply(exc: UpstreamError) -> web.Response:
    headers = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after is not None else None
    return openai_error(exc.http_status, exc.message, exc.kind, headers=headers)


def overloaded_reply(record: dict[str, Any], exc: Overloaded) -> web.Response:
    record["error_kind"] = "overloaded"
    return openai_error(503, "Too many requests in flight; retry shortly.", "overloaded",
                        headers={"Retry-After": str(exc.retry_after)})


def parse_chat(body: bytes, default_model: str, route: str) -> ChatRequest:
    """Validate an OpenAI chat body into a ChatRequest, separating platform metadata."""
    try:
        data = jsonutil.loads(body)
    except ValueError:
        raise ChatError("Request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ChatError("Request body must be a JSON object.")
    raw_messages = data.get("messages")
    if not isinstance(raw_messages, list) or not raw_messages:
        raise ChatError("'messages' must be a non-empty array.", "messages")
    messages = [_message(i, m) for i, m in enumerate(raw_messages)]
    model = data.get("model", default_model)
    if not isinstance(model, str) or not model:
        raise ChatError("'model' must be a non-empty string.", "model")
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise ChatError("'stream' must be a boolean.", "stream")
    options = data.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ChatError("'stream_options' must be an object.", "stream_options")
    if data.get("n", 1) != 1:
        raise ChatError("Only n=1 is supported.", "n")
    params = {k: v for k, v in data.items() if k not in MANAGED_FIELDS and k not in PLATFORM_FIELDS}
    for name, value in params.items():
        types = PARAM_TYPES.get(name)
        if types and (not isinstance(value, types) or (isinstance(value, bool) and bool not in types)):
            raise ChatError(f"'{name}' has the wrong type ({type(value).__name__}).", name)
    return ChatRequest(messages, model=model, route=route, stream=stream,
                       include_usage=options.get("include_usage") is True, params=params,
                       meta=platform_meta(data, raw_messages))


def _message(i: int, item: Any) -> Message:
    if not isinstance(item, dict):
        raise ChatError(f"messages[{i}] must be an object.", f"messages[{i}]")
    role, content = item.get("role"), item.get("content")
    if not isinstance(role, str) or role not in ROLES:
        raise ChatError(f"messages[{i}].role must be one of {', '.join(sorted(ROLES))}.", f"messages[{i}].role")
    if content is not None and not isinstance(content, (str, list)):
        raise ChatError(f"messages[{i}].content must be a string or an array.", f"messages[{i}].content")
    if item.keys() <= MESSAGE_FIELDS:
        return item
    return {k: v for k, v in item.items() if k in MESSAGE_FIELDS}


def platform_meta(data: dict[str, Any], messages: list[Any]) -> dict[str, Any]:
    """IMS extendData and Agora fields, flattened: never sent upstream, available to specs."""
    meta: dict[str, Any] = {}
    extend = data.get("extendData")
    if isinstance(extend, dict):
        for src, dst in (("instanceId", "instance_id"), ("channelId", "channel_id"),
                         ("sentenceId", "sentence_id"), ("userData", "user_data"),
                         ("callerNumber", "caller"), ("calleeNumber", "callee")):
            if extend.get(src) is not None:
                meta[dst] = extend[src]
    for name in ("turn_id", "timestamp", "interruptable", "context"):
        if data.get(name) is not None:
            meta[name] = data[name]
    if any(isinstance(m, dict) and m.get("metadata") for m in messages):
        meta["message_metadata"] = True
    return meta


def log_fields(meta: dict[str, Any]) -> dict[str, Any]:
    """Platform metadata as it goes into the log line: shortened, phone numbers masked."""
    fields = {name: _short(value) for name, value in meta.items()}
    for name in ("caller", "callee"):
        if name in meta:
            fields[name] = mask_number(str(meta[name]))
    return fields


def mask_number(number: str) -> str:
    """Keep a phone number's first 3 and last 4 digits: enough to trace, not to dial."""
    return number if len(number) <= 7 else number[:3] + "*" * (len(number) - 7) + number[-4:]


def _short(value: Any, limit: int = 200) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    text = value if isinstance(value, str) else jsonutil.dumps_str(value)
    return text if len(text) <= limit else text[:limit] + "..."
