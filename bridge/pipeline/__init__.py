"""The pipeline: one canonical request in, the answer the caller hears out, for every route.

    pipeline = Pipeline(settings, upstreams, redact=..., metrics=..., inflight=..., toolbox=...)
    batches = pipeline.answer(chat, log, policy)       # what a streaming renderer writes
    whole = await pipeline.whole(chat, log, policy)    # what a route that answers once sends

Every route (the form, OpenAI chat, Agora's RAG and audio, the socket platforms, the
Responses API) calls one of these two and renders what comes out; none wires the stages
by hand. The steps, in order:

1. `prepare`: SYSTEM_PROMPT, MAX_HISTORY and UPSTREAM_MODEL applied to the request.
2. The model: the upstream chain (bridge/pipeline/chain.py: deadlines, retries, backups),
   through the bridge's tool rounds when BRIDGE_TOOLS is set (tool_rounds.py). MAX_CONCURRENCY
   is checked first (an `overloaded` failure).
3. What the caller hears (stages.py): the speech filter, the filler on a slow start, and the
   failure phrase, each composed only when the settings and the route's `Policy` ask for it.

Failures are `BridgeError`s raised in place of the next batch; the route answers them
through its protocol's error table (bridge/render/errors.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from dataclasses import dataclass

from bridge.config import Settings
from bridge.errors import UpstreamError
from bridge.events import Batch
from bridge.log import RequestLog
from bridge.metrics import Metrics
from bridge.pipeline.chain import UpstreamChain
from bridge.pipeline.inflight import InFlight
from bridge.pipeline.stages import phrase_answer, pick_phrase, separator, speakable, spoken_failure, with_filler
from bridge.pipeline.tool_rounds import Limits, ToolRounds
from bridge.redaction import Redactor
from bridge.render.errors import ErrorReplies
from bridge.render.whole import WholeAnswer, collect
from bridge.request import ChatRequest, Message
from bridge.speech import SpeechFilter
from bridge.tools import ToolBox
from bridge.upstreams import Upstream

__all__ = ["InFlight", "Pipeline", "Policy", "pick_phrase", "separator"]


@dataclass(frozen=True, slots=True)
class Policy:
    """What a route asks of the pipeline: facts about its protocol, not settings."""

    errors: ErrorReplies  # the route's protocol: how a failure the phrase replaced is recorded
    filler: bool = False  # the answer streams: a filler phrase may be said while the caller waits
    voice: bool = False  # a voice protocol: the default failure phrase is spoken even without FALLBACK_TEXT
    reasoning: bool = False  # the route may hand the model's reasoning to its caller (REASONING=pass): text
    # clients, never one that speaks what it gets


class Pipeline:
    """One agent's pipeline: its upstreams, its tools, and what its callers hear."""

    def __init__(self, settings: Settings, upstreams: Sequence[Upstream], *, redact: Redactor, metrics: Metrics,
                 inflight: InFlight, toolbox: ToolBox | None = None) -> None:
        self.settings = settings
        self.chain = UpstreamChain(settings, upstreams, redact=redact, metrics=metrics, inflight=inflight)
        self.inflight = inflight
        self.toolbox = toolbox
        answer = settings.answer
        self.rounds = None if toolbox is None else ToolRounds(
            toolbox, metrics, Limits(answer.max_tool_calls, answer.max_tool_argument_chars), inflight.cut_event)
        self.filler_after = answer.filler_after_ms / 1000 if answer.filler_after_ms else None

    @property
    def upstreams(self) -> list[Upstream]:
        return self.chain.upstreams

    def prepare(self, chat: ChatRequest) -> ChatRequest:
        """Apply SYSTEM_PROMPT, MAX_HISTORY and UPSTREAM_MODEL (once: a route may call it early)."""
        if not chat.prepared:
            answer = self.settings.answer
            chat.messages = capped_history(chat.messages, answer.max_history, answer.system_prompt)
            if self.settings.upstream.model:
                chat.model = self.settings.upstream.model
            chat.prepared = True
        return chat

    def check_capacity(self) -> None:
        """Raise the `overloaded` failure now (a route about to say something first)."""
        self.inflight.check()

    def failure_text(self, policy: Policy) -> str | None:
        """The phrase said when the answer failed (or had nothing speakable), if the route says one."""
        answer = self.settings.answer
        return answer.form_failure_text if policy.voice else answer.openai_failure_text

    def answer(self, chat: ChatRequest, log: RequestLog, policy: Policy) -> AsyncGenerator[Batch, None]:
        """The answer as the caller hears it, as batches of events; BridgeError on failure."""
        source = self._heard(chat, log, policy)
        phrase = self.failure_text(policy)
        if phrase:
            source = spoken_failure(source, chat, phrase, lambda exc: self._replaced(exc, log, policy))
        return source

    async def whole(self, chat: ChatRequest, log: RequestLog, policy: Policy) -> WholeAnswer:
        """The whole answer; when it failed, the failure phrase instead (if the route says one)."""
        try:
            return await collect(self._heard(chat, log, policy))
        except UpstreamError as exc:
            phrase = self.failure_text(policy)
            if not phrase:
                raise
            self._replaced(exc, log, policy)
            return WholeAnswer.of(phrase_answer(chat, phrase))

    def _heard(self, chat: ChatRequest, log: RequestLog, policy: Policy) -> AsyncGenerator[Batch, None]:
        self.prepare(chat)
        source = self._model(chat, log, policy)
        answer = self.settings.answer
        speech = SpeechFilter(think_prefilled=answer.think_prefilled) if answer.speech_filter else None
        source = speakable(source, speech, self.failure_text(policy), log)
        if policy.filler and self.filler_after:
            source = with_filler(source, self.filler_after, pick_phrase(answer.filler_phrases, chat.last_user_text()),
                                 log)
        return source

    async def _model(self, chat: ChatRequest, log: RequestLog, policy: Policy) -> AsyncGenerator[Batch, None]:
        """The model's answer (its tool rounds included), counted against MAX_CONCURRENCY."""
        self.inflight.enter()
        try:
            begun = asyncio.get_running_loop().time()
            overall = begun + self.settings.deadlines.total

            reasoning = policy.reasoning and self.settings.answer.reasoning

            def model(request: ChatRequest, log: RequestLog) -> AsyncGenerator[Batch, None]:
                return self.chain.answer(request, log, begun, overall, reasoning=reasoning)

            source = model(chat, log) if self.rounds is None else \
                self.rounds.run(chat, log, model, filler=policy.filler, deadline=overall)
            async with aclosing(source) as batches:
                async for batch in batches:
                    yield batch
        finally:
            self.inflight.leave()

    @staticmethod
    def _replaced(exc: UpstreamError, log: RequestLog, policy: Policy) -> None:
        policy.errors.record(exc, log)
        log.failure_phrase = True


def capped_history(messages: list[Message], max_history: int, system_prompt: str | None) -> list[Message]:
    """Apply MAX_HISTORY and SYSTEM_PROMPT.

    Leading system messages (an agent's instructions) are kept; of the rest only the last
    `max_history` are, never starting on an orphaned tool result. SYSTEM_PROMPT goes first.
    """
    head = 0
    while head < len(messages) and messages[head].get("role") == "system":
        head += 1
    system, history = messages[:head], messages[head:]
    if len(history) > max_history:
        history = history[-max_history:]
        while history and history[0].get("role") == "tool":
            history = history[1:]
    if not system_prompt:
        return messages if len(history) + head == len(messages) else [*system, *history]
    return [{"role": "system", "content": system_prompt}, *system, *history]
