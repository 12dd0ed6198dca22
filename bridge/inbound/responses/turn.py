"""One response, over HTTP or WebSocket: the conversation it continues, the request the pipeline
answers, and the conversation it leaves behind.

A follow-up names the response it continues (`previous_response_id`); its history is that
response's stored conversation, read from the WebSocket connection's own cache first (which
holds its last response even with `store: false`), else from the process's store. An unknown
or expired id, one another agent answered, and one the shared store cannot be read for are all
OpenAI's 400 `previous_response_not_found`: a client that gets it sends its whole context again.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.platforms import log_ids
from bridge.inbound.responses.parse import ResponsesRequest
from bridge.inbound.responses.store import Conversation, Conversations, StoreError
from bridge.log import RequestLog, get_logger
from bridge.pipeline.agents import Agent
from bridge.render.responses import ResponseBuilder, ResponseHead
from bridge.request import ChatRequest, Message

CONVERSATIONS = web.AppKey("responses_conversations", Conversations)
REFUSED = "Invalid or missing bearer token."


def not_found(response_id: str) -> BridgeError:
    """OpenAI's answer to a `previous_response_id` it does not have."""
    return BridgeError(ErrorKind.BAD_REQUEST, f"Previous response with id '{response_id[:64]}' not found.",
                       param="previous_response_id", code="previous_response_not_found")


def note(log: RequestLog, parsed: ResponsesRequest) -> None:
    """The platform, its identifiers and the dropped fields, on the log record."""
    log.platform = parsed.platform.name
    log.ids = log_ids(parsed.platform, parsed.ids) or None
    log.dropped = parsed.dropped or None


@dataclass(slots=True)
class Turn:
    """One response being answered."""

    agent: Agent
    parsed: ResponsesRequest
    conversation: list[Message]  # what it answers: the history it continues and its new input
    chat: ChatRequest
    builder: ResponseBuilder

    @classmethod
    async def open(cls, agent: Agent, parsed: ResponsesRequest, conversations: Conversations, route: str,
                   cached: tuple[str, Conversation] | None = None) -> Turn:
        """The turn `parsed` asks for; BridgeError when its previous response is not found or it
        has no input at all."""
        history: list[Message] = []
        if parsed.previous_response_id is not None:
            history = await _history(agent, parsed.previous_response_id, conversations, cached)
        conversation = [*history, *parsed.input]
        if not conversation and parsed.generate:
            raise BridgeError(ErrorKind.BAD_REQUEST, "'input' is required (a string or an array of items).",
                              param="input")
        system = [{"role": "system", "content": parsed.instructions}] if parsed.instructions else []
        chat = ChatRequest([*system, *conversation], model=parsed.model, route=route, streamed=parsed.stream,
                           include_usage=True, params=parsed.params, meta=parsed.ids)
        return cls(agent, parsed, conversation, chat, ResponseBuilder(ResponseHead(parsed.model, parsed.echo)))

    @property
    def id(self) -> str:
        return self.builder.id

    def result(self) -> Conversation:
        """The conversation this response leaves: what it answered, then the answer."""
        return Conversation(self.agent.name, [*self.conversation, *self.builder.messages()])

    async def keep(self, conversations: Conversations, log: RequestLog, *, local: bool = False) -> Conversation | None:
        """Store the result (unless `store: false`) before the caller hears the response is done, so a
        follow-up on any replica finds it; a store that fails is logged, and the answer stands. The
        result, fitted to RESPONSES_STORE_MAX_BYTES, is returned for a connection's own cache
        (`local`); None when nothing was kept."""
        if not self.parsed.store and not local:
            return None
        fitted = conversations.fit(self.result())
        if fitted is None:
            get_logger().warning("responses_store_skipped", response_id=self.id, agent=log.agent,
                                 detail="its last message alone is larger than RESPONSES_STORE_MAX_BYTES")
            return None
        kept, record = fitted
        if self.parsed.store:
            try:
                await conversations.save(self.id, record)
            except StoreError as exc:
                get_logger().warning("responses_store_failed", response_id=self.id, agent=log.agent,
                                     error=str(exc), detail="the response was answered but not stored")
        return kept


async def _history(agent: Agent, response_id: str, conversations: Conversations,
                   cached: tuple[str, Conversation] | None) -> list[Message]:
    if cached is not None and cached[0] == response_id:
        found: Conversation | None = cached[1]
    else:
        try:
            found = await conversations.load(response_id)
        except StoreError as exc:
            get_logger().warning("responses_store_failed", response_id=response_id[:64], agent=agent.name,
                                 error=str(exc), detail="answered previous_response_not_found")
            found = None
    if found is None or found.agent != agent.name:
        raise not_found(response_id)
    return list(found.messages)
