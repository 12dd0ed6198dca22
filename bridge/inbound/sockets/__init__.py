"""Voice platforms that talk over a WebSocket: one socket per call, the conversation kept here.

    GET /conversation-relay        Twilio's and Telnyx's ConversationRelay (relay.py)
    GET /retell/{call_id}          Retell's custom LLM (retell.py); with BRIDGE_TOKENS,
    GET /retell/{token}/{call_id}  the token is the segment before the call id

Both are served under `/agents/<name>/...` too. The handshake is checked before the upgrade
(admission.py: a Twilio signature or a bridge token; 401/403/404, 503 while draining); then
one `Session` (session.py) serves the call: its history, one turn at a time through the
pipeline (turn.py), barge-in, the idle timer, the drain's cut (registry.py). The protocols are
data and small handlers over that shared machinery; docs/platforms/ has a page per platform.
"""

from __future__ import annotations

from aiohttp import web

from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.context import log_of
from bridge.inbound.sockets.admission import relay_agent, retell_agent
from bridge.inbound.sockets.fields import MAX_ID_CHARS
from bridge.inbound.sockets.registry import SESSIONS, setup
from bridge.inbound.sockets.relay import ConversationRelay
from bridge.inbound.sockets.retell import RetellLLM
from bridge.inbound.sockets.session import CLOSE_TIMEOUT, MAX_MESSAGE_BYTES, Session, SocketProtocol
from bridge.pipeline.agents import Agent

NOT_A_SOCKET = "This route is a WebSocket: connect with an `Upgrade: websocket` handshake."

__all__ = ["handle_relay", "handle_retell", "setup"]


async def handle_relay(request: web.Request) -> web.StreamResponse:
    """GET /conversation-relay: a Twilio or Telnyx ConversationRelay session."""
    return await serve(request, relay_agent(request), ConversationRelay(), {})


async def handle_retell(request: web.Request) -> web.StreamResponse:
    """GET /retell/{call_id} and /retell/{token}/{call_id}: a Retell custom-LLM session."""
    agent = retell_agent(request)
    return await serve(request, agent, RetellLLM(), {"call_id": request.match_info["call_id"][:MAX_ID_CHARS]})


async def serve(request: web.Request, agent: Agent, protocol: SocketProtocol,
                ids: dict[str, str]) -> web.WebSocketResponse:
    """Upgrade and serve the session until the socket closes."""
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, compress=False, timeout=CLOSE_TIMEOUT)
    if not ws.can_prepare(request).ok:
        raise BridgeError(ErrorKind.BAD_REQUEST, NOT_A_SOCKET)
    await ws.prepare(request)
    resource = request.match_info.route.resource
    sessions = request.app[SESSIONS]
    session = Session(ws, agent, log_of(request), protocol, resource.canonical if resource else request.path,
                      sessions.logger, ids)
    sessions.add(session, agent.pipeline.inflight)
    try:
        await session.run()
    finally:
        sessions.discard(session)
    return ws
