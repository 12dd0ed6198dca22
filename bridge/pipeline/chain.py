"""The bridge core: one canonical request in, one canonical event stream out.

Every route calls `Bridge.stream`. It applies the history policy, enforces the deadlines
(first sign of life, idle gap, overall), retries once and then tries the backup upstreams,
but only while nothing has been yielded: once a byte may have reached the caller, a failure
is reported, never retried. It yields batches of events (what one upstream read delivered,
its adjacent text joined into one piece);
every successful stream ends with one `Finish` and one `Usage` (estimated when the upstream
gave none). `cut` ends every answer in flight honestly when the server's drain runs out.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing

from bridge.config import Settings
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Batch, Finish, Reasoning, TextDelta, TokenCount, Usage, estimate_prompt_tokens
from bridge.log import RequestLog
from bridge.metrics import Metrics
from bridge.pipeline.deadline import Deadline
from bridge.pipeline.tool_rounds import ToolRounds
from bridge.redaction import Redactor
from bridge.request import ChatRequest, cap_history
from bridge.tools import ToolBox
from bridge.upstreams.base import Upstream

CUT_MESSAGE = "the server shut down before the answer ended"


class Overloaded(Exception):
    """Too many upstream requests in flight; the caller should retry shortly."""

    retry_after = 1


class Bridge:
    """Runs canonical requests against the configured upstreams."""

    def __init__(self, settings: Settings, upstreams: Sequence[Upstream], redact: Redactor,
                 metrics: Metrics | None = None, toolbox: ToolBox | None = None) -> None:
        if not upstreams:
            raise ValueError("at least one upstream is required")
        self.settings = settings
        self.upstreams = list(upstreams)
        self.redact = redact
        self.metrics = metrics or Metrics()
        self.toolbox = toolbox
        self.rounds = ToolRounds(toolbox, self.metrics) if toolbox is not None else None
        self.in_flight = 0
        self.cutting = False
        self._cut = asyncio.Event()
        self._deadlines: set[Deadline] = set()

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """Apply SYSTEM_PROMPT, MAX_HISTORY and UPSTREAM_MODEL to an inbound request."""
        answer = self.settings.answer
        request.messages = cap_history(request.messages, answer.max_history, answer.system_prompt)
        if self.settings.upstream.model:
            request.model = self.settings.upstream.model
        return request

    def check_capacity(self) -> None:
        """Raise Overloaded when MAX_CONCURRENCY upstream requests are in flight."""
        if self.in_flight >= self.settings.server.max_concurrency:
            raise Overloaded()

    async def stream(self, request: ChatRequest, log: RequestLog) -> AsyncGenerator[Batch, None]:
        """Yield the answer as batches of events; raise UpstreamError (redacted) or Overloaded.

        A batch is what one upstream read delivered: a renderer writes it to the caller in
        one go, so nothing waits and no write is wasted.
        """
        self.check_capacity()
        self.in_flight += 1
        self.metrics.in_flight.inc()
        loop = asyncio.get_running_loop()  # once: on 3.11 every call is a getpid() syscall
        begun = loop.time()
        overall = begun + self.settings.deadlines.total
        try:
            if self.rounds is None:
                source = self._with_backups(request, log, begun, overall, loop)
            else:
                source = self.rounds.run(request, log,
                                         lambda req, lg: self._with_backups(req, lg, begun, overall, loop),
                                         self._cut, overall)
            async with aclosing(source) as batches:
                async for batch in batches:
                    yield batch
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    def cut(self) -> None:
        """End every answer in flight now (the drain ran out): each ends with a `shutdown` error."""
        self.cutting = True
        self._cut.set()
        for deadline in list(self._deadlines):
            deadline.cut()

    async def _with_backups(self, request: ChatRequest, log: RequestLog, begun: float, overall: float,
                            loop: asyncio.AbstractEventLoop) -> AsyncGenerator[Batch, None]:
        """One answer: the upstreams in order, each tried twice when the failure is worth it.

        `begun`: when the request began (its time to first token counts from there, whichever
        tool round or attempt says the first word).
        """
        retry_budget_end = loop.time() + self.settings.deadlines.first_token
        failures: list[str] = []
        error: UpstreamError | None = None
        for upstream in self.upstreams:
            for attempt in (1, 2):
                log.upstream = upstream.name
                yielded = False
                try:
                    async with aclosing(self._attempt(upstream, request, overall, log, begun, loop)) as batches:
                        async for batch in batches:
                            yielded = True
                            yield batch
                    return
                except UpstreamError as exc:
                    exc.redact(self.redact)
                    self.metrics.upstream_errors.labels(upstream.name, exc.kind).inc()
                    if yielded:
                        raise
                    error = exc
                    failures.append(f"{upstream.name}:{exc.kind}")
                    log.attempts = failures
                    if exc.kind.final or self.cutting:
                        raise
                    wait = exc.retry_after or 0.0
                    if attempt == 1 and exc.retryable and loop.time() + wait < retry_budget_end:
                        if wait:
                            await asyncio.sleep(wait)
                        continue
                    break
        assert error is not None
        raise error

    async def _attempt(self, upstream: Upstream, request: ChatRequest, overall: float, log: RequestLog,
                       begun: float, loop: asyncio.AbstractEventLoop) -> AsyncGenerator[Batch, None]:
        """One upstream call under the first-token, idle and overall deadlines.

        The first-token deadline is met by any sign of progress, reasoning included (a thinking
        model is working); reasoning is never passed on.
        """
        d = self.settings.deadlines
        if self.cutting:
            raise UpstreamError(ErrorKind.SHUTDOWN, "the server is shutting down")
        batches = upstream.stream(request)
        first_timeout = max(d.first_token, upstream.first_event_timeout or 0.0)
        deadline = Deadline(loop, min(loop.time() + first_timeout, overall), grace=d.idle)
        self._deadlines.add(deadline)
        waiting_for = f"no first token within {first_timeout:g}s"
        said = TokenCount()  # for the estimate when the upstream reports no usage
        finished = usage = False
        try:
            while True:
                try:
                    deadline.bind()
                    batch = await anext(batches)
                except StopAsyncIteration:
                    break
                except asyncio.CancelledError:
                    if not deadline.absorb():
                        raise
                    if deadline.cut_requested:
                        raise UpstreamError(ErrorKind.SHUTDOWN, CUT_MESSAGE) from None
                    if deadline.when >= overall:
                        waiting_for = f"answer exceeded {d.total:g}s"
                    raise UpstreamError(ErrorKind.UPSTREAM_TIMEOUT, f"upstream timeout: {waiting_for}") from None
                if log.ttft_ms is None and any(type(e) is TextDelta for e in batch):  # once per request
                    ttft = loop.time() - begun
                    log.ttft_ms = round(ttft * 1000, 1)
                    self.metrics.first_token(request.route, ttft)
                batch = _joined(batch, said)
                for event in batch:
                    if type(event) is Finish:
                        finished = True
                    elif type(event) is Usage:
                        usage = True
                        log.usage = event.as_dict()
                if batch:
                    deadline.paused = True  # the caller's time is not the upstream's
                    yield batch
                    deadline.paused = False
                    if deadline.cut_requested:
                        raise UpstreamError(ErrorKind.SHUTDOWN, CUT_MESSAGE)
                deadline.move(min(loop.time() + d.idle, overall))
                waiting_for = f"no data for {d.idle:g}s"
        finally:
            self._deadlines.discard(deadline)
            deadline.close()
            await batches.aclose()
        tail: Batch = []
        if not finished:
            tail.append(Finish("stop"))
        if not usage:
            estimate = Usage(estimate_prompt_tokens(request.messages), said.tokens, estimated=True)
            log.usage = estimate.as_dict()
            log.usage_estimated = True
            tail.append(estimate)
        if tail:
            yield tail

    async def aclose(self) -> None:
        """Close every upstream's connection pool, and the tools' connections."""
        for upstream in self.upstreams:
            await upstream.aclose()
        if self.toolbox is not None:
            await self.toolbox.aclose()


def _joined(batch: Batch, said: TokenCount) -> Batch:
    """The batch with each run of adjacent text as one TextDelta, and without Reasoning.

    One network read often carries many small chunks; every stage after this one (speech
    filter, renderer, caller) then handles one piece of text per read, not one per chunk.
    Nothing is held back: the batch is one read. Each piece's text is counted in `said`.
    """
    out: Batch = []
    run: list[str] = []
    for event in batch:
        if type(event) is TextDelta:
            run.append(event.text)
            continue
        if run:
            text = "".join(run)
            out.append(TextDelta(text))
            said.add(text)
            run = []
        if type(event) is not Reasoning:
            out.append(event)
    if run:
        text = "".join(run)
        out.append(TextDelta(text))
        said.add(text)
    return out
