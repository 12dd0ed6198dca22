"""What the OpenAI-protocol routes share: accepting a request, and answering it streamed or whole.

`/v1/chat/completions`, `/chat/completions`, Agora's `/rag/...` and `/audio/...` accept a
request with `accept_chat` and render what the pipeline answers with `stream_reply` or
`completion_reply`. A failure before the first byte is raised and answered by the OpenAI
error table (bridge/render/errors.py, through the access middleware); after it, it ends the
stream here as an error chunk and `[DONE]`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable
from contextlib import aclosing

from aiohttp import web

from bridge.events import Batch
from bridge.inbound.auth import header_token
from bridge.inbound.body import read_body
from bridge.inbound.context import SERVICES, agent_for, log_of
from bridge.inbound.openai.parse import ChatError, parse_chat
from bridge.inbound.platforms import log_ids
from bridge.log import RequestLog
from bridge.pipeline import Policy
from bridge.pipeline.agents import Agent
from bridge.render.errors import OPENAI, caller_left
from bridge.render.json_reply import json_reply
from bridge.render.openai import ChunkEncoder, completion_object
from bridge.render.sse import SSEWriter
from bridge.render.trace import Trace, TracedChunks
from bridge.render.whole import WholeAnswer
from bridge.request import ChatRequest

# Plain OpenAI chat callers may receive the model's reasoning (REASONING=pass); Agora's RAG and
# audio routes, whose callers speak what they get, never do.
STREAMED = Policy(OPENAI, filler=True, reasoning=True)  # a filler may be said while the caller waits
WHOLE = Policy(OPENAI, reasoning=True)
REFUSED = "Invalid or missing bearer token."


async def accept_chat(request: web.Request, *, stream_only: str | None = None) -> tuple[Agent, ChatRequest]:
    """The caller's agent and its request, authenticated and parsed; BridgeError when refused.

    `stream_only`, when given, is the 400 message for a request that does not stream.
    """
    log = log_of(request)
    agent = agent_for(request, header_token(request.headers), REFUSED)
    body = await read_body(request, request.app[SERVICES].settings.server.body_timeout)
    resource = request.match_info.route.resource
    inbound = parse_chat(body, request.headers, request.query, default_model=agent.model,
                         route=resource.canonical if resource is not None else request.path,
                         extra_params=agent.settings.upstream.extra_params)
    if stream_only and not inbound.chat.streamed:
        raise ChatError(stream_only, "stream")
    log.platform = inbound.platform.name
    log.ids = log_ids(inbound.platform, inbound.ids) or None
    log.dropped = inbound.dropped or None
    return agent, inbound.chat


async def completion_reply(chat: ChatRequest, answer: Awaitable[WholeAnswer]) -> web.Response:
    """The whole answer as one `chat.completion` object (a failure is raised: nothing was sent)."""
    return json_reply(completion_object(await answer, chat.model))


async def stream_reply(request: web.Request, chat: ChatRequest, events: AsyncGenerator[Batch, None],
                       log: RequestLog, writer: SSEWriter | None = None, trace: Trace | None = None
                       ) -> web.StreamResponse:
    """Forward the answer as SSE chunks as it arrives, each batch in one write.

    The headers go out with the first chunk, unless the route already opened `writer`. A
    failure before that is raised (the access middleware answers it); after it, an error
    chunk and `[DONE]` end the stream. With `trace`, its comment lines go with the chunks.
    """
    writer = writer or SSEWriter(request)
    encoder = ChunkEncoder(chat.model, chat.include_usage) if trace is None else TracedChunks(
        chat.model, chat.include_usage, trace)
    try:
        try:
            async with aclosing(events):
                async for batch in events:
                    data = encoder.batch(batch)
                    if data:
                        await writer.write(data)
        except ConnectionError:
            raise
        except Exception as exc:
            if writer.response is None:
                raise  # nothing sent yet: the access middleware answers with the OpenAI table
            return await writer.end(encoder.error(OPENAI.event_body(OPENAI.failure(exc, log))))
        return await writer.end(encoder.end())
    except ConnectionError:
        caller_left(log)  # the caller hung up or barged in: the upstream is already closed
        return writer.response or web.Response(status=499)

