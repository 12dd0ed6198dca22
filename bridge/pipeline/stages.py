"""What the caller hears: speakable text, a filler on a slow start, the failure phrase.

Every route passes the core's event stream through `Voice`: `stream` for the routes that
stream (one pass over the batches), `whole` for those that answer once.

- The speech filter (SPEECH_FILTER) turns the model's markdown into speakable text.
- With FILLER_AFTER_MS, a streaming route says one filler phrase when nothing speakable has
  arrived in that time, and the answer follows.
- When every upstream failed before any of the answer reached the caller, the failure
  phrase (when the route has one) is the answer instead, and the cause is logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from contextlib import aclosing

from bridge.config import AnswerSettings
from bridge.errors import UpstreamError
from bridge.events import (
    Batch,
    Filler,
    Finish,
    TextDelta,
    ToolCallDelta,
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
)
from bridge.log import RequestLog
from bridge.pipeline.phrases import pick_phrase
from bridge.render.whole import Answer, collect
from bridge.request import ChatRequest
from bridge.speech.filter import SpeechFilter


class Voice:
    """The answer stage every route shares, configured once from AnswerSettings."""

    def __init__(self, settings: AnswerSettings) -> None:
        self.settings = settings
        self.filler_after = settings.filler_after_ms / 1000 if settings.filler_after_ms else None

    async def whole(self, events: AsyncGenerator[Batch, None], chat: ChatRequest, log: RequestLog, *,
                    failure_text: str | None) -> Answer:
        """The whole spoken answer; the failure phrase replaces a failed one (nothing was sent yet)."""
        try:
            return await collect(self.stream(events, chat, log, failure_text=None))
        except UpstreamError as exc:
            if not failure_text:
                raise
            log.fail(exc.kind, exc.message)
            log.failure_phrase = True
            return Answer.of(failure_answer(chat, failure_text))

    async def stream(self, events: AsyncGenerator[Batch, None], chat: ChatRequest, log: RequestLog, *,
                     failure_text: str | None, filler: bool = False) -> AsyncGenerator[Batch, None]:
        """The spoken answer's batches. `filler`: this route may say a filler phrase while it waits."""
        speech = SpeechFilter() if self.settings.speech_filter else None
        filler_at = asyncio.get_running_loop().time() + self.filler_after if filler and self.filler_after else None
        waiting: asyncio.Task[Batch] | None = None  # the next batch, awaited while the filler timer runs
        answered = False
        try:
            async with aclosing(events):
                try:
                    while True:
                        try:
                            if filler_at is not None:
                                waiting = waiting or asyncio.ensure_future(anext(events))
                                timeout = max(0.0, filler_at - asyncio.get_running_loop().time())
                                done, _ = await asyncio.wait((waiting,), timeout=timeout)
                                if not done:
                                    filler_at = None
                                    log.filler = True
                                    yield [Filler(pick_phrase(self.settings.filler_phrases, chat.last_user_text()))]
                                    continue
                            batch = await waiting if waiting is not None else await anext(events)
                        except StopAsyncIteration:
                            break
                        finally:
                            if waiting is not None and waiting.done():
                                waiting = None
                        if speech is not None:
                            batch = speakable(batch, speech)
                        if not answered:
                            for event in batch:
                                if type(event) is TextDelta or type(event) is ToolCallDelta:
                                    answered = True  # the answer has begun: no filler now
                                    filler_at = None
                                    break
                                if type(event) is Filler:  # the tools' phrase: the caller heard something
                                    filler_at = None
                        if batch:
                            yield batch
                finally:
                    if waiting is not None:  # the caller left while the next batch was awaited
                        waiting.cancel()
                        await asyncio.wait((waiting,))
        except UpstreamError as exc:
            if answered or not failure_text:
                raise
            log.fail(exc.kind, exc.message)
            log.failure_phrase = True
            yield failure_answer(chat, failure_text)


def speakable(batch: Batch, speech: SpeechFilter) -> Batch:
    """The batch with its text through the speech filter (held text is released at Finish)."""
    changed = False
    for event in batch:
        if type(event) is TextDelta:
            event.text = speech.feed(event.text)
            changed = changed or not event.text
        elif type(event) is Finish:
            changed = True
    if not changed:
        return batch
    out: Batch = []
    for event in batch:
        if type(event) is TextDelta:
            if event.text:
                out.append(event)
        elif type(event) is Finish:
            rest = speech.finish()
            if rest:
                out.append(TextDelta(rest))
            out.append(event)
        else:
            out.append(event)
    return out


def failure_answer(chat: ChatRequest, text: str) -> Batch:
    """The failure phrase as a whole answer."""
    return [TextDelta(text), Finish("stop"),
            Usage(estimate_prompt_tokens(chat.messages), estimate_tokens(text), estimated=True)]
