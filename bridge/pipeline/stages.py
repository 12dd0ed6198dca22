"""What the caller hears: the stages between the model's answer and the renderer.

Each stage is an async generator over batches of canonical events. The pipeline composes
only the stages an agent's settings and a route's policy ask for (bridge/pipeline/__init__.py),
always in this order:

- `speakable`: the speech filter (SPEECH_FILTER) turns the model's markdown into speakable
  text. A huge piece is filtered in slices, the event loop free between them. An answer
  with nothing speakable left (only emoji, only a rule) is logged `unspeakable`, and the
  route's phrase, where it has one, is said instead of silence.
- `with_filler`: when nothing audible has arrived FILLER_AFTER_MS after the request, one
  filler phrase is said and the answer follows it.
- `spoken_failure`: when every upstream failed before anything audible reached the caller,
  the failure phrase is the answer instead; the route's error table records the cause.

Pieces said one after another (a filler and the answer, the rounds of a tool loop) are
joined the way speech needs them joined: `separator`.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Callable, Sequence
from contextlib import aclosing

from bridge.errors import UpstreamError
from bridge.events import (
    Batch,
    Event,
    Filler,
    Finish,
    TextDelta,
    ToolCallDelta,
    Usage,
    estimate_prompt_tokens,
    estimate_tokens,
)
from bridge.knowledge.text import has_cjk
from bridge.log import RequestLog
from bridge.request import ChatRequest
from bridge.speech import SpeechFilter
from bridge.speech.rules import CJK_START

SLICE = 4_096  # characters the speech filter takes between two turns of the event loop (<= ~12 ms)


def separator(before: str, after: str) -> str:
    """What goes between two pieces of speech said one after the other.

    A space after a Latin word or punctuation ("One moment." + "The answer" -> "One moment. The
    answer"); nothing when either side is CJK (Chinese has no spaces) or already has a space.
    """
    if not before or not after or before[-1].isspace() or after[0].isspace():
        return ""
    return "" if before[-1] >= CJK_START or after[0] >= CJK_START else " "


def pick_phrase(phrases: Sequence[str], question: str) -> str:
    """A random phrase, in Chinese for a Chinese question when one is configured."""
    cjk = has_cjk(question)
    matching = [p for p in phrases if has_cjk(p) == cjk]
    return random.choice(matching or phrases)


def phrase_answer(chat: ChatRequest, text: str) -> Batch:
    """A phrase of the bridge's own as a whole answer (the failure phrase)."""
    return [TextDelta(text), Finish("stop"),
            Usage(estimate_prompt_tokens(chat.messages), estimate_tokens(text), estimated=True)]


def glue(before: str, batch: Batch) -> Batch:
    """`batch` with its first text joined to `before`, the last thing said (see `separator`)."""
    for event in batch:
        if type(event) is TextDelta or type(event) is Filler:
            event.text = separator(before, event.text) + event.text
            break
    return batch


def _audible(batch: Batch) -> str | None:
    """What the caller hears of a batch: '' for an answer (text, a tool call), the text of a
    filler, None for nothing."""
    heard: str | None = None
    for event in batch:
        if type(event) is TextDelta or type(event) is ToolCallDelta:
            return ""
        if type(event) is Filler:
            heard = event.text
    return heard


# -- the speech filter -------------------------------------------------------------------------


class _Speakable:
    """One answer's speech filter (None: SPEECH_FILTER=off), and whether anything speakable came of it."""

    __slots__ = ("fallback", "log", "speech", "spoke")

    def __init__(self, speech: SpeechFilter | None, fallback: str | None, log: RequestLog) -> None:
        self.speech = speech
        self.fallback = fallback
        self.log = log
        self.spoke = False

    def batch(self, batch: Batch) -> Batch | None:
        """The batch with its text filtered (held text is released at Finish); None when a piece
        is too large to filter at once (then `sliced`)."""
        for event in batch:
            if type(event) is TextDelta and len(event.text) > SLICE:
                return None
        changed = False
        for event in batch:
            changed = self._event(event) or changed
        return self._rebuilt(batch) if changed else batch

    async def sliced(self, batch: Batch) -> Batch:
        """A batch holding a huge piece, filtered a slice at a time with the event loop free in
        between (the filter is linear, but a megabyte is still tens of milliseconds of it)."""
        changed = False
        for event in batch:
            if type(event) is TextDelta and len(event.text) > SLICE:
                event.text = await self._slices(event.text)
                self._heard(event.text)
                changed = changed or not event.text
            else:
                changed = self._event(event) or changed
        return self._rebuilt(batch) if changed else batch

    async def _slices(self, text: str) -> str:
        pieces = []
        for start in range(0, len(text), SLICE):
            piece = text[start:start + SLICE]
            pieces.append(self.speech.feed(piece) if self.speech is not None else piece)
            await asyncio.sleep(0)
        return "".join(pieces)

    def _event(self, event: Event) -> bool:
        """Filter one event in place; True when the batch must be rebuilt (text gone, or the end)."""
        if type(event) is TextDelta:
            if self.speech is not None:
                event.text = self.speech.feed(event.text)
            self._heard(event.text)
            return not event.text
        if type(event) is ToolCallDelta:
            self.spoke = True  # a tool call is an answer
        elif type(event) is Filler and self.speech is not None:
            self.speech.said_before()
        return type(event) is Finish

    def _heard(self, text: str) -> None:
        if not self.spoke and text and not text.isspace():
            self.spoke = True

    def _rebuilt(self, batch: Batch) -> Batch:
        out: Batch = []
        for event in batch:
            if type(event) is TextDelta:
                if event.text:
                    out.append(event)
            elif type(event) is Finish:
                out.extend(self._finish())
                out.append(event)
            else:
                out.append(event)
        return out

    def _finish(self) -> Batch:
        """The text still held; or, when the answer had nothing speakable, the fallback phrase."""
        rest = self.speech.finish() if self.speech is not None else ""
        if self.speech is not None and self.speech.orphan_think_close:
            self.log.orphan_think_close = True  # pre-filled reasoning: THINK_PREFILLED=on would hide it all
        if rest:
            self.spoke = True
            return [TextDelta(rest)]
        if self.spoke:
            return []
        self.log.unspeakable = True
        return [TextDelta(self.fallback)] if self.fallback else []


async def speakable(batches: AsyncGenerator[Batch, None], speech: SpeechFilter | None, fallback: str | None,
                    log: RequestLog) -> AsyncGenerator[Batch, None]:
    """The answer through the speech filter (if on); `fallback` is said when nothing speakable is left."""
    stage = _Speakable(speech, fallback, log)
    async with aclosing(batches):
        async for batch in batches:
            filtered = stage.batch(batch)
            if filtered is None:
                filtered = await stage.sliced(batch)
            if filtered:
                yield filtered


# -- the filler --------------------------------------------------------------------------------


async def with_filler(batches: AsyncGenerator[Batch, None], after: float, phrase: str,
                      log: RequestLog) -> AsyncGenerator[Batch, None]:
    """The answer, preceded by `phrase` when nothing audible arrives within `after` seconds.

    The next batch is awaited in a helper task while the timer runs (an upstream call's
    deadline follows whichever task waits: bridge/pipeline/deadline.py).
    """
    loop = asyncio.get_running_loop()
    said_at = loop.time() + after
    waiting: asyncio.Future[Batch] | None = None
    owed = ""  # the filler, when said: the answer's first words are joined to it
    try:
        async with aclosing(batches):
            try:
                while not owed:
                    waiting = waiting or asyncio.ensure_future(anext(batches))
                    done, _ = await asyncio.wait((waiting,), timeout=max(0.0, said_at - loop.time()))
                    if not done:
                        log.filler, owed = True, phrase
                        yield [Filler(phrase)]
                        break
                    batch, waiting = waiting.result(), None
                    yield batch
                    if _audible(batch) is not None:
                        break
                async for batch in _rest(batches, waiting, owed):
                    yield batch
            finally:  # the caller left while the helper awaited the next batch: stop it before closing
                if waiting is not None and not waiting.done():
                    waiting.cancel()
                    await asyncio.wait((waiting,))
    except StopAsyncIteration:
        return


async def _rest(batches: AsyncGenerator[Batch, None], waiting: asyncio.Future[Batch] | None,
                owed: str) -> AsyncGenerator[Batch, None]:
    """The batches after the filler phase: the one still awaited, then the others; the first
    words after a filler joined to it."""
    if waiting is not None:
        try:
            batch = await waiting
        except StopAsyncIteration:
            return
        if owed and _audible(batch) is not None:
            batch, owed = glue(owed, batch), ""
        yield batch
    async for batch in batches:
        if owed and _audible(batch) is not None:
            batch, owed = glue(owed, batch), ""
        yield batch


# -- the failure phrase ------------------------------------------------------------------------


async def spoken_failure(batches: AsyncGenerator[Batch, None], chat: ChatRequest, phrase: str,
                         replaced: Callable[[UpstreamError], None]) -> AsyncGenerator[Batch, None]:
    """The answer; or, when it failed before anything audible, `phrase` (`replaced` records why)."""
    heard: str | None = None  # None: nothing yet; a filler's text; "" once the answer began
    try:
        async with aclosing(batches):
            async for batch in batches:
                if heard != "":
                    now = _audible(batch)
                    heard = heard if now is None else now
                yield batch
    except UpstreamError as exc:
        if heard == "":
            raise
        replaced(exc)
        yield glue(heard or "", phrase_answer(chat, phrase))
