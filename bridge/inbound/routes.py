"""Every platform route, as data: method, path, handler, and the protocol that answers its errors.

The process registers each route twice: at its own path, which the caller's token chooses
the agent for, and under `/agents/<name>` for an agent by name (bridge/inbound/context.py).
A route's failures before the first byte are answered by its protocol's error table
(bridge/render/errors.py): the access middleware looks the table up here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from bridge.inbound import playground, sockets
from bridge.inbound.agora_audio import CLIPS, Clips, handle_audio
from bridge.inbound.agora_rag import handle_rag
from bridge.inbound.alibaba_form import handle_form
from bridge.inbound.context import SERVICES
from bridge.inbound.openai.routes import handle_chat, handle_models
from bridge.inbound.responses.routes import handle_responses
from bridge.inbound.responses.store import Conversations
from bridge.inbound.responses.turn import CONVERSATIONS
from bridge.inbound.responses.websocket import handle_responses_socket
from bridge.inbound.sockets import handle_relay, handle_retell
from bridge.render.errors import FORM, OPENAI, SOCKET, ErrorReplies

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    errors: ErrorReplies


ROUTES: tuple[Route, ...] = (
    Route("POST", "/", handle_form, FORM),
    Route("POST", "/v1/chat/completions", handle_chat, OPENAI),
    Route("POST", "/chat/completions", handle_chat, OPENAI),
    Route("GET", "/v1/models", handle_models, OPENAI),
    Route("GET", "/models", handle_models, OPENAI),
    Route("POST", "/v1/responses", handle_responses, OPENAI),
    Route("POST", "/responses", handle_responses, OPENAI),
    Route("GET", "/v1/responses", handle_responses_socket, OPENAI),  # the WebSocket mode
    Route("GET", "/responses", handle_responses_socket, OPENAI),
    Route("POST", "/rag/chat/completions", handle_rag, OPENAI),
    Route("POST", "/audio/chat/completions", handle_audio, OPENAI),
    Route("GET", "/conversation-relay", handle_relay, SOCKET),
    Route("GET", "/retell/{call_id}", handle_retell, SOCKET),
    Route("GET", "/retell/{token}/{call_id}", handle_retell, SOCKET),
    Route("GET", "/playground", playground.handle_page, FORM),  # a person's page, not a platform's route
    Route("GET", "/playground/{file}", playground.handle_asset, FORM),
)


def setup(app: web.Application) -> None:
    """What the routes keep per process: the audio clips (read once), the open socket sessions, the
    Responses API's stored conversations (closed with the app), the playground's files (read once)."""
    app[CLIPS] = Clips()
    sockets.setup(app)
    playground.setup(app)
    app[CONVERSATIONS] = Conversations(app[SERVICES].settings.responses)
    app.on_cleanup.append(_close_conversations)


async def _close_conversations(app: web.Application) -> None:
    await app[CONVERSATIONS].aclose()
