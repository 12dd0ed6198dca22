"""Agora's retrieval-augmented route: `POST /rag/chat/completions`.

The first SSE event goes out at once, before retrieval and before the upstream is called:
a waiting phrase (`id: "waiting_msg"`) so the caller hears something while the bridge
searches. Then the knowledge base is searched with the last user message, the best
passages go in as one system message after the leading system messages (capped at
RAG_MAX_CONTEXT_CHARS), and the answer streams exactly as on `/chat/completions`.
Nothing relevant found (or no KNOWLEDGE_DIR): nothing is injected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from aiohttp import web

from bridge.config import ConfigError, Settings
from bridge.inbound.openai.reply import accept_chat, failure_reply, stream_reply
from bridge.knowledge import Hit, KnowledgeBase, KnowledgeError, default_index_path, ensure_index
from bridge.knowledge.index import BuildResult
from bridge.log import RequestLog, get_logger
from bridge.pipeline.chain import Overloaded
from bridge.pipeline.phrases import pick_phrase
from bridge.process.state import STATE, AppState, log_of
from bridge.render.sse import SSEWriter, frame
from bridge.request import ChatRequest, Message

KNOWLEDGE = web.AppKey("knowledge", KnowledgeBase)
MAX_QUESTION_CHARS = 2000  # the end of a longer question is what it asks; searching more costs, not helps

CONTEXT_PREAMBLE = (
    "Passages from the knowledge base that may help answer the user's latest question. "
    "Use them if they are relevant; otherwise ignore them."
)


def build_knowledge(settings: Settings) -> BuildResult | None:
    """Start-up: build the index if missing or stale; a problem is a ConfigError naming KNOWLEDGE_DIR."""
    rag = settings.rag
    if rag.knowledge_dir is None:
        return None
    folder = Path(rag.knowledge_dir)
    index = Path(rag.knowledge_index) if rag.knowledge_index else default_index_path(folder)
    try:
        return ensure_index(folder, index)
    except KnowledgeError as exc:
        raise ConfigError(f"KNOWLEDGE_DIR: {exc}") from None


def knowledge_opener(result: BuildResult | None) -> Callable[[web.Application], Awaitable[None]]:
    """An on_startup hook that opens the index `build_knowledge` made (nothing without one)."""

    async def open_knowledge(app: web.Application) -> None:
        if result is None:
            return
        app[KNOWLEDGE] = await asyncio.to_thread(KnowledgeBase, result.path)
        log = get_logger()
        log.info("knowledge_ready", index=str(result.path), passages=result.passages, built=result.built,
                 seconds=round(result.seconds, 3))
        if result.passages == 0:
            log.warning("knowledge_empty", detail=f"no .md or .txt passages in KNOWLEDGE_DIR={result.path}")

    return open_knowledge


async def handle_rag(request: web.Request) -> web.StreamResponse:
    """POST /rag/chat/completions."""
    chat = await accept_chat(
        request, stream_only="This route streams (a waiting phrase, then the answer): set \"stream\": true."
    )
    if isinstance(chat, web.Response):
        return chat
    state = request.app[STATE]
    log = log_of(request)
    try:
        state.bridge.check_capacity()  # a 503 the caller can retry, not a waiting phrase
    except Overloaded as exc:
        return failure_reply(exc, log)
    state.bridge.prepare(chat)
    question = chat.last_user_text()[-MAX_QUESTION_CHARS:]
    writer = SSEWriter(request)
    try:
        await writer.write(waiting_chunk(pick_phrase(state.settings.rag.waiting_phrases, question), chat.model))
    except ConnectionError:
        log.client_cancel = True
        return writer.response or web.Response(status=499)
    await augment(request.app.get(KNOWLEDGE), state, chat, question, log)
    events = state.voice.stream(state.bridge.stream(chat, log), chat, log,
                                failure_text=state.settings.answer.openai_failure_text)
    return await stream_reply(request, chat, events, log, writer)


def waiting_chunk(phrase: str, model: str) -> bytes:
    """The `waiting_msg` SSE event Agora's sample sends first."""
    return frame({"id": "waiting_msg", "object": "chat.completion.chunk", "created": int(time.time()),
                  "model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": phrase},
                                               "finish_reason": None}]})


async def augment(knowledge: KnowledgeBase | None, state: AppState, chat: ChatRequest, question: str,
                  log: RequestLog) -> None:
    """Search with the question and inject the best passages; a failed search injects nothing."""
    if knowledge is None or not question:
        log.rag_passages = 0
        return
    started = time.perf_counter()
    try:
        hits = await knowledge.asearch(question, state.settings.rag.top_k)
    except KnowledgeError as exc:  # a broken index: answer without retrieval rather than not at all
        log.rag_error = str(exc)
        hits = []
    log.rag_ms = round((time.perf_counter() - started) * 1000, 2)
    log.rag_passages = len(hits)
    if hits:
        chat.messages = inject(chat.messages, context_message(hits, state.settings.rag.max_context_chars))


def context_message(hits: Sequence[Hit], max_chars: int) -> str:
    """The injected system text: a short instruction, then numbered passages within `max_chars`."""
    blocks: list[str] = []
    used = 0
    for n, hit in enumerate(hits, 1):
        block = f"[{n}] {hit.passage.label}\n{hit.passage.text}"
        room = max_chars - used
        if len(block) > room:
            if blocks:
                break
            block = block[: room - 1].rstrip() + "…"
        blocks.append(block)
        used += len(block) + 2
    return CONTEXT_PREAMBLE + "\n\n" + "\n\n".join(blocks)


def inject(messages: list[Message], text: str) -> list[Message]:
    """The messages with a system message holding `text` after the leading system messages."""
    head = 0
    while head < len(messages) and messages[head].get("role") in ("system", "developer"):
        head += 1
    return [*messages[:head], {"role": "system", "content": text}, *messages[head:]]
