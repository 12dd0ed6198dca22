"""Agora's retrieval-augmented route: `POST /rag/chat/completions`.

The first SSE event goes out at once, before retrieval and before the upstream is called:
a waiting phrase (`id: "waiting_msg"`) so the caller hears something while the bridge
searches. Then the knowledge base is searched with the last user message, the best
passages go in as one system message after the leading system messages (capped at
RAG_MAX_CONTEXT_CHARS), and the answer streams exactly as on `/chat/completions`.
Nothing relevant found (or no KNOWLEDGE_DIR): nothing is injected.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from aiohttp import web

from bridge.config import RagSettings
from bridge.inbound.context import log_of
from bridge.inbound.openai.reply import accept_chat, stream_reply
from bridge.knowledge import Hit, KnowledgeBase, KnowledgeError
from bridge.log import RequestLog
from bridge.pipeline import Policy, pick_phrase
from bridge.render.errors import OPENAI, caller_left
from bridge.render.sse import SSEWriter, frame
from bridge.request import ChatRequest, Message

AFTER_WAITING = Policy(OPENAI)  # the waiting phrase was the caller's filler
MAX_QUESTION_CHARS = 2000  # the end of a longer question is what it asks; searching more costs, not helps

CONTEXT_PREAMBLE = (
    "Passages from the knowledge base that may help answer the user's latest question. "
    "Use them if they are relevant; otherwise ignore them."
)


async def handle_rag(request: web.Request) -> web.StreamResponse:
    """POST /rag/chat/completions."""
    agent, chat = await accept_chat(
        request, stream_only="This route streams (a waiting phrase, then the answer): set \"stream\": true."
    )
    log = log_of(request)
    pipeline = agent.pipeline
    pipeline.check_capacity()  # a 503 the caller can retry, not a waiting phrase
    pipeline.prepare(chat)
    rag = agent.settings.rag
    question = chat.last_user_text()[-MAX_QUESTION_CHARS:]
    writer = SSEWriter(request)
    try:
        await writer.write(waiting_chunk(pick_phrase(rag.waiting_phrases, question), chat.model))
    except ConnectionError:
        caller_left(log)
        return writer.response or web.Response(status=499)
    await augment(agent.knowledge, rag, chat, question, log)
    return await stream_reply(request, chat, pipeline.answer(chat, log, AFTER_WAITING), log, writer)


def waiting_chunk(phrase: str, model: str) -> bytes:
    """The `waiting_msg` SSE event Agora's sample sends first."""
    return frame({"id": "waiting_msg", "object": "chat.completion.chunk", "created": int(time.time()),
                  "model": model, "choices": [{"index": 0, "delta": {"role": "assistant", "content": phrase},
                                               "finish_reason": None}]})


async def augment(knowledge: KnowledgeBase | None, rag: RagSettings, chat: ChatRequest, question: str,
                  log: RequestLog) -> None:
    """Search with the question and inject the best passages; a failed search injects nothing."""
    if knowledge is None or not question:
        log.rag_passages = 0
        return
    started = time.perf_counter()
    try:
        hits = await knowledge.asearch(question, rag.top_k)
    except KnowledgeError as exc:  # a broken index: answer without retrieval rather than not at all
        log.rag_error = str(exc)
        hits = []
    log.rag_ms = round((time.perf_counter() - started) * 1000, 2)
    log.rag_passages = len(hits)
    if hits:
        chat.messages = inject(chat.messages, context_message(hits, rag.max_context_chars))


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
