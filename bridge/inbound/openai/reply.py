"""What the OpenAI-protocol routes share: accepting a request, and answering it streamed or whole.

`/v1/chat/completions`, `/chat/completions`, Agora's `/rag/...` and `/audio/...` all accept a
request with `accept_chat` and answer with `stream_reply` or `completion_reply`; how a
failure is answered (a status before the first byte, an error event and `[DONE]` after it)
is decided here once.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing

from aiohttp import web

from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Batch
from bridge.inbound.body import BodyError, body_error_reply, read_body
from bridge.inbound.openai.parse import ChatError, parse_chat
from bridge.inbound.platforms import log_ids
from bridge.log import RequestLog
from bridge.pipeline.chain import Overloaded
from bridge.process.state import STATE, log_of
from bridge.render.json_reply import json_reply, openai_error
from bridge.render.openai import ChunkEncoder, completion_object
from bridge.render.sse import SSEWriter
from bridge.render.whole import Answer
from bridge.request import ChatRequest

OVERLOADED_MESSAGE = "Too many requests in flight; retry shortly."


async def accept_chat(request: web.Request, *, stream_only: str | None = None) -> ChatRequest | web.Response:
    """Authenticate and parse an OpenAI chat request; a Response means it was refused.

    `stream_only`, when given, is the 400 message for a request that does not stream.
    """
    state = request.app[STATE]
    log = log_of(request)
    if not state.tokens.check_headers(request.headers):
        log.fail(ErrorKind.AUTH)
        return openai_error(401, "Invalid or missing bearer token.", "invalid_api_key")
    settings = state.settings
    try:
        body = await read_body(request, settings.server.body_timeout)
        inbound = parse_chat(body, request.headers, request.query, default_model=settings.default_model,
                             route=request.path, extra_params=settings.upstream.extra_params)
        if stream_only and not inbound.chat.stream:
            raise ChatError(stream_only, "stream")
    except BodyError as exc:
        log.fail(exc.kind)
        return body_error_reply(openai_error(exc.kind.status, exc.message, exc.kind.value), exc)
    except ChatError as exc:
        log.fail(ErrorKind.BAD_REQUEST)
        return openai_error(400, str(exc), "invalid_request", exc.param)
    log.platform = inbound.platform.name
    log.ids = log_ids(inbound.platform, inbound.ids) or None
    log.dropped = inbound.dropped or None
    return inbound.chat


def failure_reply(exc: UpstreamError | Overloaded, log: RequestLog) -> web.Response:
    """The error answer before anything was sent: the upstream's failure, or 503 when overloaded."""
    if isinstance(exc, Overloaded):
        log.fail(ErrorKind.OVERLOADED)
        return openai_error(503, OVERLOADED_MESSAGE, ErrorKind.OVERLOADED.value,
                            headers={"Retry-After": str(exc.retry_after)})
    log.fail(exc.kind, exc.message)
    headers = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after is not None else None
    return openai_error(exc.http_status, exc.message, exc.kind.value, headers=headers)


async def completion_reply(chat: ChatRequest, answer: Awaitable[Answer], log: RequestLog) -> web.Response:
    """The whole answer as one `chat.completion` object."""
    try:
        whole = await answer
    except (UpstreamError, Overloaded) as exc:
        return failure_reply(exc, log)
    return json_reply(completion_object(whole, chat.model))


async def stream_reply(request: web.Request, chat: ChatRequest, events: AsyncGenerator[Batch, None],
                       log: RequestLog, writer: SSEWriter | None = None) -> web.StreamResponse:
    """Forward the answer as SSE chunks as it arrives, each batch in one write.

    The headers go out with the first chunk, unless the route already opened `writer`. A
    failure before that is an error status; after it, an error event and `[DONE]`.
    """
    writer = writer or SSEWriter(request)
    encoder = ChunkEncoder(chat.model, chat.include_usage)
    try:
        try:
            async with aclosing(events):
                async for batch in events:
                    data = encoder.batch(batch)
                    if data:
                        await writer.write(data)
        except (UpstreamError, Overloaded) as exc:
            if writer.response is None:
                return failure_reply(exc, log)
            kind, message = (ErrorKind.OVERLOADED, OVERLOADED_MESSAGE) if isinstance(exc, Overloaded) \
                else (exc.kind, exc.message)
            log.fail(kind, None if isinstance(exc, Overloaded) else message)
            return await writer.end(encoder.error(kind.status, message, kind.value))
        except ConnectionError:
            raise
        except Exception as exc:
            if writer.response is None:
                raise  # nothing sent yet: the access middleware answers a JSON 500
            # A bug after the headers went out: end the stream properly, never a silent cut.
            log.fail(ErrorKind.INTERNAL)
            log.exception = f"{type(exc).__name__}: {exc}"
            return await writer.end(encoder.error(500, "Internal error; see the server log.", "internal"))
        return await writer.end(encoder.end())
    except ConnectionError:
        log.client_cancel = True  # the caller hung up or barged in: the upstream is already closed
        return writer.response or web.Response(status=499)
