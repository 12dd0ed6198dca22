"""OpenAI Chat Completions inbound: `POST /v1/chat/completions` and `POST /chat/completions`.

What Alibaba IMS's OpenAI-spec node, Agora, Vapi, ElevenLabs, Tencent TRTC, Volcengine and
every plain OpenAI client call. Platform fields are logged and dropped
(bridge/inbound/openai/parse.py); the answer streams as SSE or comes back whole.
"""

from __future__ import annotations

import time

from aiohttp import web

from bridge.inbound.auth import header_token
from bridge.inbound.context import SERVICES, agent_for, log_of
from bridge.inbound.openai.reply import REFUSED, STREAMED, WHOLE, accept_chat, completion_reply, stream_reply
from bridge.render.json_reply import json_reply
from bridge.render.trace import TRACE_HEADER, Trace


async def handle_chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions and /chat/completions."""
    arrived = time.perf_counter()
    agent, chat = await accept_chat(request)
    log = log_of(request)
    if chat.streamed:
        trace = Trace(agent.name, arrived) if _traced(request) else None
        return await stream_reply(request, chat, agent.pipeline.answer(chat, log, STREAMED), log, trace=trace)
    return await completion_reply(chat, agent.pipeline.whole(chat, log, WHOLE))


def _traced(request: web.Request) -> bool:
    """The caller asked for the pipeline's trace (the playground does; platforms never do), and
    PLAYGROUND is on: off, the bridge shows nobody its pipeline."""
    asked = request.headers.get(TRACE_HEADER, "").strip().lower() == "on"
    return asked and request.app[SERVICES].settings.server.playground


async def handle_models(request: web.Request) -> web.Response:
    """GET /v1/models and /models: the model(s) the caller's agent answers with, in OpenAI's list shape.

    Consoles and clients probe it before the first chat. The agent's model (UPSTREAM_MODEL,
    else the default) is listed, and each backup upstream's own model.
    """
    agent = agent_for(request, header_token(request.headers), REFUSED)
    settings = agent.settings
    names = [settings.default_model] + [b.model for b in settings.upstream.backups if b.model]
    created = int(request.app[SERVICES].started)
    models = [{"id": name, "object": "model", "created": created, "owned_by": "voice-llm-bridge"}
              for name in dict.fromkeys(names)]
    return json_reply({"object": "list", "data": models})
