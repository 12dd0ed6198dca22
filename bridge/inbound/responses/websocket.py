"""`GET /v1/responses` upgraded to a WebSocket: the Responses API's WebSocket mode.

What Pipecat's `OpenAIResponsesLLMService` and LiveKit's Responses LLM (by default) hold
open for a whole call. The caller sends `response.create` messages (a create body with
`"type": "response.create"`; `stream` is implied) and gets back the same events a streamed
HTTP response has, one message each. As OpenAI documents, a connection runs one response at a
time: a new `response.create` (or Pipecat's `response.cancel`) cancels the one in flight,
which the upstream hears at once and which ends with `response.failed`, status `cancelled`;
closing the socket cancels it too. The connection keeps its last response's conversation, so
`previous_response_id` works with `store: false`, and `generate: false` warms it up.

A refusal (a bad body, an unknown previous response) is an `error` message with the HTTP
status it would have had; a failure once `response.created` is out is `response.failed`. Each
response is a log line and a count of its own; the connection's own line comes at its end.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from contextlib import aclosing
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from bridge import jsonutil
from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.auth import header_token
from bridge.inbound.context import SERVICES, agent_for
from bridge.inbound.responses.parse import parse_create
from bridge.inbound.responses.routes import STREAMED, failure_code, route_of
from bridge.inbound.responses.store import Conversation
from bridge.inbound.responses.turn import CONVERSATIONS, REFUSED, Turn, note
from bridge.log import RequestLog, get_logger
from bridge.pipeline.agents import Agent
from bridge.render.errors import OPENAI, caller_left
from bridge.render.responses import ResponseBuilder

HEARTBEAT = 30.0  # seconds between pings: a peer that vanished is noticed, and idle proxies keep the socket


async def handle_responses_socket(request: web.Request) -> web.StreamResponse:
    """GET /v1/responses and /responses: the WebSocket mode (a plain GET is a 400 saying so)."""
    agent = agent_for(request, header_token(request.headers) or request.query.get("token"), REFUSED)
    ws = web.WebSocketResponse(heartbeat=HEARTBEAT,
                               max_msg_size=request.app[SERVICES].settings.server.max_body_bytes)
    if not ws.can_prepare(request).ok:
        raise BridgeError(ErrorKind.BAD_REQUEST, "GET /v1/responses is the WebSocket mode: open a WebSocket "
                          "(or POST to /v1/responses to create a response).")
    await ws.prepare(request)
    await Session(request, ws, agent).run()
    return ws


def error_event(error: BridgeError) -> dict[str, Any]:
    """A refusal as the WebSocket mode says it: the HTTP status it would have had, and OpenAI's error."""
    status = OPENAI.status(error.kind)
    return {"type": "error", "status": status,
            **OPENAI.body(status, error.message, OPENAI.code_of(error), error.param, error.kind)}


class Session:
    """One connection: its one response in flight, and the last response's conversation."""

    def __init__(self, request: web.Request, ws: web.WebSocketResponse, agent: Agent) -> None:
        self.request = request
        self.ws = ws
        self.agent = agent
        self.services = request.app[SERVICES]
        self.conversations = request.app[CONVERSATIONS]
        self.route = route_of(request)
        self.cache: tuple[str, Conversation] | None = None  # the last response, for previous_response_id
        self.task: asyncio.Task[None] | None = None  # the response in flight
        self.open: ResponseBuilder | None = None  # its events, once response.created is out

    async def run(self) -> None:
        """Read the caller's messages until it (or the drain) closes the socket."""
        closer = asyncio.ensure_future(self._close_when_draining())
        try:
            async for message in self.ws:
                if message.type is WSMsgType.TEXT:
                    await self.on_message(message.data)
                elif message.type is WSMsgType.BINARY:
                    await self.refuse("Send each event as a JSON text message.")
        finally:
            closer.cancel()
            await self.cancel(announce=False)

    async def on_message(self, text: str) -> None:
        try:
            data = jsonutil.loads(text)
        except ValueError:
            return await self.refuse("The message is not valid JSON.")
        kind = data.get("type") if isinstance(data, dict) else None
        if kind == "response.create":
            await self.cancel(announce=True)
            self.task = asyncio.ensure_future(self.respond(data))
        elif kind == "response.cancel":
            await self.cancel(announce=True)
        else:
            await self.refuse("Send a 'response.create' event (or 'response.cancel').", "type")

    async def refuse(self, message: str, param: str | None = None) -> None:
        with contextlib.suppress(ConnectionError):
            await self.send([error_event(BridgeError(ErrorKind.BAD_REQUEST, message, param=param))])

    async def cancel(self, *, announce: bool) -> None:
        """Cancel the response in flight (its upstream closes at once); with `announce`, end it for
        the caller with `response.failed`, status `cancelled`."""
        task, self.task = self.task, None
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        builder, self.open = self.open, None
        if announce and builder is not None:
            with contextlib.suppress(ConnectionError):
                await self.send([builder.failed(None, "", status="cancelled")])

    async def send(self, events: Iterable[dict[str, Any]]) -> None:
        for event in events:
            await self.ws.send_frame(jsonutil.dumps(event), WSMsgType.TEXT)

    async def respond(self, data: dict[str, Any]) -> None:
        """One `response.create`, answered; its log line and its count when it is done."""
        log = RequestLog(agent=self.agent.name)
        started = time.perf_counter()
        status = 200
        try:
            await self._answer(data, log)
        except asyncio.CancelledError:
            status, log.client_cancel = 499, True
            raise
        except ConnectionError:
            caller_left(log)
            status = 499
        except Exception as exc:
            status = await self._failed(exc, log)
        finally:
            self._count(log, status, time.perf_counter() - started)

    async def _answer(self, data: dict[str, Any], log: RequestLog) -> None:
        parsed = parse_create(data, self.request.headers, self.request.query, default_model=self.agent.model,
                              extra_params=self.agent.settings.upstream.extra_params, websocket=True)
        note(log, parsed)
        turn = await Turn.open(self.agent, parsed, self.conversations, self.route, self.cache)
        self.open = turn.builder
        await self.send(turn.builder.start())
        if parsed.generate:
            async with aclosing(self.agent.pipeline.answer(turn.chat, log, STREAMED)) as events:
                async for batch in events:
                    await self.send(turn.builder.batch(batch))
        kept = await turn.keep(self.conversations, log, local=True)
        self.cache = (turn.id, kept) if kept is not None else None
        self.open = None
        await self.send(turn.builder.end())

    async def _failed(self, exc: Exception, log: RequestLog) -> int:
        """Tell the caller: an `error` before `response.created`, `response.failed` after it."""
        error = OPENAI.failure(exc, log)
        builder, self.open = self.open, None
        try:
            await self.send([error_event(error) if builder is None else
                             builder.failed(failure_code(error), error.message)])
        except ConnectionError:
            caller_left(log)
        return OPENAI.status(error.kind)

    def _count(self, log: RequestLog, status: int, elapsed: float) -> None:
        """The response's own log line and metrics, as the access middleware writes an HTTP request's."""
        self.services.metrics.answered(self.route, status, elapsed, bool(log.failure_phrase), self.agent.name)
        get_logger().info("request", method="WEBSOCKET", route=self.route, status=status,
                          latency_ms=round(elapsed * 1000, 2), **log.fields())

    async def _close_when_draining(self) -> None:
        """When the drain closes the listener: let the response in flight finish, then close (1001),
        so the caller reconnects to a replica that stays."""
        await self.services.closing.wait()
        if self.task is not None:
            await asyncio.wait([self.task])
        await self.ws.close(code=WSCloseCode.GOING_AWAY, message=b"server shutting down")
