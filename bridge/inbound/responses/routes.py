"""`POST /v1/responses` and `POST /responses`: the Responses API over HTTP, streamed or whole.

What ElevenLabs Agents (API type Responses), LiveKit's and Pipecat's Responses clients over
HTTP, and the OpenAI SDK's `responses.create` / `responses.stream` call. The body is read
into the canonical request (parse.py), its previous response's conversation put before it
(turn.py), and the one pipeline answers it. A streamed answer goes out as the Responses API's
SSE events, written as each batch arrives; its first write waits for the first batch, so a
failure before it is still an HTTP error in OpenAI's shape (the access middleware answers it);
after it, a failure is `response.failed`. The response is stored before its last event.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing

from aiohttp import web

from bridge.errors import BridgeError, ErrorKind
from bridge.events import Batch
from bridge.inbound.auth import header_token
from bridge.inbound.body import read_body
from bridge.inbound.context import SERVICES, agent_for, log_of
from bridge.inbound.responses.parse import parse_body
from bridge.inbound.responses.turn import CONVERSATIONS, REFUSED, Turn, note
from bridge.log import RequestLog
from bridge.pipeline import Policy
from bridge.render.errors import OPENAI, caller_left
from bridge.render.json_reply import json_reply
from bridge.render.responses import sse_frames
from bridge.render.sse import SSEWriter

STREAMED = Policy(OPENAI, filler=True)  # a stream: a filler may be said while the caller waits
WHOLE = Policy(OPENAI)


def route_of(request: web.Request) -> str:
    """The route's path as the metrics name it."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else request.path


def failure_code(error: BridgeError) -> str:
    """`response.error.code` for a failure (one of the codes OpenAI's SDK knows)."""
    return "rate_limit_exceeded" if error.kind is ErrorKind.UPSTREAM_RATE_LIMITED else "server_error"


async def handle_responses(request: web.Request) -> web.StreamResponse:
    """POST /v1/responses and /responses."""
    log = log_of(request)
    agent = agent_for(request, header_token(request.headers), REFUSED)
    body = await read_body(request, request.app[SERVICES].settings.server.body_timeout)
    parsed = parse_body(body, request.headers, request.query, default_model=agent.model,
                        extra_params=agent.settings.upstream.extra_params)
    note(log, parsed)
    conversations = request.app[CONVERSATIONS]
    turn = await Turn.open(agent, parsed, conversations, route_of(request))
    if parsed.stream:
        return await stream_reply(request, turn, agent.pipeline.answer(turn.chat, log, STREAMED), log)
    answer = await agent.pipeline.whole(turn.chat, log, WHOLE)
    body_out = turn.builder.whole(answer)
    await turn.keep(conversations, log)
    return json_reply(body_out)


async def stream_reply(request: web.Request, turn: Turn, events: AsyncGenerator[Batch, None],
                       log: RequestLog) -> web.StreamResponse:
    """The answer as Responses API events, each batch in one write (the lifecycle events with the first)."""
    writer = SSEWriter(request)
    builder = turn.builder
    try:
        try:
            async with aclosing(events):
                async for batch in events:
                    head = builder.start() if writer.response is None else []
                    await writer.write(sse_frames(head + builder.batch(batch)))
        except ConnectionError:
            raise
        except Exception as exc:
            if writer.response is None:
                raise  # nothing sent yet: the access middleware answers with the OpenAI table
            error = OPENAI.failure(exc, log)
            return await writer.end(sse_frames([builder.failed(failure_code(error), error.message)]))
        await turn.keep(request.app[CONVERSATIONS], log)
        head = builder.start() if writer.response is None else []  # an answer that never said a thing
        return await writer.end(sse_frames(head + builder.end()))
    except ConnectionError:
        caller_left(log)  # the caller hung up or barged in: the upstream is already closed
        return writer.response or web.Response(status=499)
