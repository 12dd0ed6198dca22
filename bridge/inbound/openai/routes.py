"""OpenAI Chat Completions inbound: `POST /v1/chat/completions` and `POST /chat/completions`.

What Alibaba IMS's OpenAI-spec node, Agora, Vapi, ElevenLabs, Tencent TRTC, Volcengine and
every plain OpenAI client call. Platform fields are logged and dropped
(bridge/inbound/openai/parse.py); the answer streams as SSE or comes back whole.
"""

from __future__ import annotations

from aiohttp import web

from bridge.errors import ErrorKind
from bridge.inbound.openai.reply import accept_chat, completion_reply, stream_reply
from bridge.process.state import STATE, log_of
from bridge.render.json_reply import json_reply, openai_error


async def handle_chat(request: web.Request) -> web.StreamResponse:
    """POST /v1/chat/completions and /chat/completions."""
    chat = await accept_chat(request)
    if isinstance(chat, web.Response):
        return chat
    state = request.app[STATE]
    log = log_of(request)
    state.bridge.prepare(chat)
    failure_text = state.settings.answer.openai_failure_text
    if chat.stream:
        events = state.voice.stream(state.bridge.stream(chat, log), chat, log, failure_text=failure_text, filler=True)
        return await stream_reply(request, chat, events, log)
    answer = state.voice.whole(state.bridge.stream(chat, log), chat, log, failure_text=failure_text)
    return await completion_reply(chat, answer, log)


async def handle_models(request: web.Request) -> web.Response:
    """GET /v1/models and /models: the model(s) this bridge answers with, in OpenAI's list shape.

    Consoles and clients probe it before the first chat. The configured model (UPSTREAM_MODEL,
    else the default) is listed, and each backup upstream's own model.
    """
    state = request.app[STATE]
    if not state.tokens.check_headers(request.headers):
        log_of(request).fail(ErrorKind.AUTH)
        return openai_error(401, "Invalid or missing bearer token.", "invalid_api_key")
    settings = state.settings
    names = [settings.default_model] + [b.model for b in settings.upstream.backups if b.model]
    created = int(state.started)
    models = [{"id": name, "object": "model", "created": created, "owned_by": "voice-llm-bridge"}
              for name in dict.fromkeys(names)]
    return json_reply({"object": "list", "data": models})
