"""One agent's upstreams, in order, under the deadlines: the model call at the pipeline's heart.

`UpstreamChain.answer` enforces the deadlines (first sign of life, idle gap, overall), retries
once and then tries the backup upstreams, but only while nothing has been yielded: once a
byte may have reached the caller, a failure is reported, never retried. It yields batches of
events (what one upstream read delivered, its adjacent text joined into one piece); every
successful answer ends with one `Finish` and one `Usage` (estimated when the upstream gave
none). A cut (bridge/pipeline/inflight.py) ends the call in progress with a `shutdown` failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

from bridge.config import Settings
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import (
    Batch,
    Event,
    Finish,
    Reasoning,
    TextDelta,
    TokenCount,
    ToolCallDelta,
    Usage,
    estimate_prompt_tokens,
)
from bridge.log import RequestLog
from bridge.metrics import Metrics
from bridge.pipeline.deadline import Deadline
from bridge.pipeline.inflight import InFlight
from bridge.redaction import Redactor
from bridge.request import ChatRequest
from bridge.upstreams import Upstream

CUT_MESSAGE = "the server shut down before the answer ended"


class UpstreamChain:
    """The primary upstream and its backups (UPSTREAM_FALLBACKS), with their deadlines."""

    def __init__(self, settings: Settings, upstreams: Sequence[Upstream], *, redact: Redactor, metrics: Metrics,
                 inflight: InFlight) -> None:
        if not upstreams:
            raise ValueError("at least one upstream is required")
        self.deadlines = settings.deadlines
        self.max_answer_chars = settings.answer.max_answer_chars
        self.upstreams = list(upstreams)
        self.redact = redact
        self.metrics = metrics
        self.inflight = inflight

    async def answer(self, request: ChatRequest, log: RequestLog, begun: float, overall: float, *,
                     reasoning: bool = False) -> AsyncGenerator[Batch, None]:
        """One answer: the upstreams in order, each tried twice when the failure is worth it.

        `begun`: when the request began (its time to first token counts from there, whichever
        tool round or attempt says the first word); `overall`: the loop time it must end by;
        `reasoning`: pass the model's reasoning on (REASONING=pass), else drop it.
        """
        loop = asyncio.get_running_loop()
        retry_budget_end = loop.time() + self.deadlines.first_token
        failures: list[str] = []
        error: UpstreamError | None = None
        for upstream in self.upstreams:
            for number in (1, 2):
                log.upstream = upstream.name
                yielded = False
                try:
                    if self.inflight.cutting:
                        raise UpstreamError(ErrorKind.SHUTDOWN, "the server is shutting down")
                    call = _Call(self, upstream, request, log, begun, overall, reasoning)
                    async with aclosing(call.batches()) as batches:
                        async for batch in batches:
                            yielded = True
                            yield batch
                    return
                except UpstreamError as exc:
                    error = self._failed(upstream, exc, yielded, failures, log)
                    wait = _retry_wait(exc, number, retry_budget_end - loop.time())
                    if wait is None:
                        break
                    if wait:
                        await asyncio.sleep(wait)
        assert error is not None
        raise error

    def _failed(self, upstream: Upstream, exc: UpstreamError, yielded: bool, failures: list[str],
                log: RequestLog) -> UpstreamError:
        """Count and note one failed attempt; re-raise it when no other attempt may follow."""
        exc.redact(self.redact)
        self.metrics.upstream_errors.labels(upstream.name, exc.kind).inc()
        if yielded:
            raise exc
        failures.append(f"{upstream.name}:{exc.kind}")
        log.attempts = failures
        if exc.kind.final or self.inflight.cutting:
            raise exc
        return exc

    async def aclose(self) -> None:
        """Close every upstream's connection pool."""
        for upstream in self.upstreams:
            await upstream.aclose()


def _retry_wait(exc: UpstreamError, attempt: int, budget: float) -> float | None:
    """Seconds to wait before trying the same upstream again, or None to move on: one retry, for
    failures worth it, when its Retry-After fits in what is left of the first-token budget."""
    wait = exc.retry_after or 0.0
    return wait if attempt == 1 and exc.retryable and wait < budget else None


class _Call:
    """One upstream call in progress: its deadline, what it said, whether it finished."""

    __slots__ = ("begun", "chain", "deadline", "finished", "log", "loop", "overall", "reasoning", "request", "room",
                 "said", "upstream", "usage", "waiting_for")

    def __init__(self, chain: UpstreamChain, upstream: Upstream, request: ChatRequest, log: RequestLog,
                 begun: float, overall: float, reasoning: bool) -> None:
        self.chain = chain
        self.upstream = upstream
        self.request = request
        self.log = log
        self.begun = begun
        self.overall = overall
        self.loop = asyncio.get_running_loop()  # once: on 3.11 every call is a getpid() syscall
        self.said = TokenCount()  # for the estimate when the upstream reports no usage
        self.finished = self.usage = False
        self.reasoning = reasoning
        self.room = chain.max_answer_chars  # what is left of MAX_ANSWER_CHARS
        d = chain.deadlines
        first = max(d.first_token, upstream.first_event_timeout or 0.0)
        self.deadline = Deadline(self.loop, min(self.loop.time() + first, overall), grace=d.idle)
        self.waiting_for = f"no first token within {first:g}s"

    async def batches(self) -> AsyncGenerator[Batch, None]:
        """The upstream's batches, joined, under the first-token, idle and overall deadlines (the
        caller's time is not counted), then what the answer still owes (`tail`).

        The first-token deadline is met by any sign of progress, reasoning included (a thinking
        model is working); reasoning is passed on only when asked for.
        """
        deadline, inflight, idle, loop = self.deadline, self.chain.inflight, self.chain.deadlines.idle, self.loop
        inflight.deadlines.add(deadline)
        source = self.upstream.stream(self.request)
        idle_text = f"no data for {idle:g}s"
        try:
            while (batch := await self._next(source)) is not None:
                batch = batch if self._one_piece(batch) else self._joined(batch)
                if batch:
                    deadline.paused = True
                    yield batch
                    deadline.paused = False
                    if deadline.cut_requested:
                        raise UpstreamError(ErrorKind.SHUTDOWN, CUT_MESSAGE)
                deadline.move(min(loop.time() + idle, self.overall))
                self.waiting_for = idle_text
        finally:
            inflight.deadlines.discard(deadline)
            deadline.close()
            await source.aclose()
        tail = self.tail()
        if tail:
            yield tail

    async def _next(self, source: AsyncGenerator[Batch, None]) -> Batch | None:
        """The next batch (None at the end); a deadline that passes becomes a timeout or a cut."""
        deadline = self.deadline
        try:
            deadline.bind()
            return await anext(source)
        except StopAsyncIteration:
            return None
        except asyncio.CancelledError:
            if not deadline.absorb():
                raise
            if deadline.cut_requested:
                raise UpstreamError(ErrorKind.SHUTDOWN, CUT_MESSAGE) from None
            if deadline.when >= self.overall:
                self.waiting_for = f"answer exceeded {self.chain.deadlines.total:g}s"
            raise UpstreamError(ErrorKind.UPSTREAM_TIMEOUT, f"upstream timeout: {self.waiting_for}") from None

    def _one_piece(self, batch: Batch) -> bool:
        """A read of one piece of text, after the first (a paced stream's): nothing to join or note."""
        if len(batch) == 1 and type(batch[0]) is TextDelta and self.log.ttft_ms is not None:
            self._spend(len(batch[0].text))
            self.said.add(batch[0].text)
            return True
        return False

    def _spend(self, chars: int) -> None:
        """MAX_ANSWER_CHARS: an answer longer than that is the upstream's failure, never held whole."""
        self.room -= chars
        if self.room < 0:
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream answer is longer than "
                                f"{self.chain.max_answer_chars} characters (MAX_ANSWER_CHARS)")

    def _joined(self, batch: Batch) -> Batch:
        """The batch with each run of adjacent text as one TextDelta (Reasoning only when asked for).

        One network read often carries many small chunks; every stage after this one (speech
        filter, renderer, caller) then handles one piece of text per read, not one per chunk.
        Nothing is held back: the batch is one read. Time to first token is noted here.
        """
        out: Batch = []
        run: list[str] = []
        for event in batch:
            if type(event) is TextDelta:
                run.append(event.text)
                continue
            if run:
                self._said(out, run)
                run = []
            if self._kept(event):
                out.append(event)
        if run:
            self._said(out, run)
        return out

    def _kept(self, event: Event) -> bool:
        """Note what an event says of the answer (finished, usage, size); False to leave it out."""
        if type(event) is ToolCallDelta:
            self._spend(len(event.arguments) + len(event.name or ""))
        elif type(event) is Finish:
            self.finished = True
        elif type(event) is Usage:
            self.usage = True
            self.log.usage = event.as_dict()
        elif type(event) is Reasoning:
            if self.reasoning:  # passed on, so a JSON route holds it: it counts
                self._spend(len(event.text))
            return self.reasoning
        return True

    def _said(self, out: Batch, run: list[str]) -> None:
        text = run[0] if len(run) == 1 else "".join(run)
        self._spend(len(text))
        if self.log.ttft_ms is None:  # once per request, whichever round or attempt says the first word
            ttft = self.loop.time() - self.begun
            self.log.ttft_ms = round(ttft * 1000, 1)
            self.chain.metrics.first_token(self.request.route, ttft, self.log.agent or "")
        self.said.add(text)
        out.append(TextDelta(text))

    def tail(self) -> Batch:
        """What the answer still owes when the upstream ended: a Finish, and an estimated Usage."""
        tail: Batch = []
        if not self.finished:
            tail.append(Finish("stop"))
        if not self.usage:
            estimate = Usage(estimate_prompt_tokens(self.request.messages), self.said.tokens, estimated=True)
            self.log.usage = estimate.as_dict()
            self.log.usage_estimated = True
            tail.append(estimate)
        return tail
