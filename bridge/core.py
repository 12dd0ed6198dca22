"""The bridge core: one canonical request in, one canonical event stream out.

Both inbound protocols call `Bridge.stream`. It applies the history policy, enforces the
deadlines (first token, idle gap, overall), retries once and then falls back to the next
upstream, but only while nothing has been yielded: once a byte may have reached the
caller, a failure is reported, never retried. It yields batches of events (what one
upstream read delivered); every successful stream ends with one `Finish` and one `Usage`
(estimated when the upstream gave none).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Any

from bridge.config import Settings
from bridge.deadline import Deadline
from bridge.events import Batch, Finish, TextDelta, UpstreamError, Usage
from bridge.metrics import Metrics
from bridge.redaction import Redactor
from bridge.request import ChatRequest, cap_history
from bridge.tokens import estimate_prompt_tokens, estimate_tokens
from bridge.upstreams.base import Upstream

LogRecord = dict[str, Any]


class Overloaded(Exception):
    """Too many upstream requests in flight; the caller should retry shortly."""

    retry_after = 1


class Bridge:
    """Runs canonical requests against the configured upstreams."""

    def __init__(
        self, settings: Settings, upstreams: Sequence[Upstream], redact: Redactor, metrics: Metrics | None = None
    ) -> None:
        if not upstreams:
            raise ValueError("at least one upstream is required")
        self.settings = settings
        self.upstreams = list(upstreams)
        self.redact = redact
        self.metrics = metrics or Metrics()
        self.in_flight = 0

    @property
    def primary(self) -> Upstream:
        return self.upstreams[0]

    def prepare(self, request: ChatRequest) -> ChatRequest:
        """Apply SYSTEM_PROMPT, MAX_HISTORY and UPSTREAM_MODEL to an inbound request."""
        s = self.settings
        request.messages = cap_history(request.messages, s.max_history, s.system_prompt)
        if s.upstream_model:
            request.model = s.upstream_model
        return request

    async def stream(self, request: ChatRequest, record: LogRecord) -> AsyncGenerator[Batch, None]:
        """Yield the answer as batches of events; raise UpstreamError (redacted) or Overloaded.

        A batch is what one upstream read delivered: a renderer writes it to the caller in
        one go, so nothing waits and no write is wasted.
        """
        if self.in_flight >= self.settings.max_concurrency:
            raise Overloaded()
        self.in_flight += 1
        self.metrics.in_flight.inc()
        try:
            async with aclosing(self._with_fallbacks(request, record)) as batches:
                async for batch in batches:
                    yield batch
        finally:
            self.in_flight -= 1
            self.metrics.in_flight.dec()

    async def _with_fallbacks(self, request: ChatRequest, record: LogRecord) -> AsyncGenerator[Batch, None]:
        loop = asyncio.get_running_loop()
        started = loop.time()
        overall = started + self.settings.total_timeout
        retry_budget_end = started + self.settings.ttft_timeout
        failures: list[str] = []
        error: UpstreamError | None = None
        for upstream in self.upstreams:
            for attempt in (1, 2):
                record["upstream"] = upstream.name
                yielded = False
                try:
                    async with aclosing(self._attempt(upstream, request, overall, record, started)) as batches:
                        async for batch in batches:
                            yielded = True
                            yield batch
                    return
                except UpstreamError as exc:
                    exc.message = self.redact(exc.message)
                    self.metrics.upstream_errors.labels(upstream.name, exc.kind).inc()
                    if yielded:
                        raise
                    error = exc
                    failures.append(f"{upstream.name}:{exc.kind}")
                    record["attempts"] = failures
                    if exc.kind == "upstream_bad_request":
                        raise  # the request itself is at fault; another upstream won't help
                    wait = exc.retry_after or 0.0
                    if attempt == 1 and exc.retryable and loop.time() + wait < retry_budget_end:
                        if wait:
                            await asyncio.sleep(wait)
                        continue
                    break
        assert error is not None
        raise error

    async def _attempt(
        self, upstream: Upstream, request: ChatRequest, overall: float, record: LogRecord, started: float
    ) -> AsyncGenerator[Batch, None]:
        """One upstream call under the first-token, idle and overall deadlines."""
        loop = asyncio.get_running_loop()
        s = self.settings
        items = upstream.stream(request)
        # Submit-and-poll upstreams deliver everything at once: they may ask for longer.
        ttft_timeout = max(s.ttft_timeout, getattr(upstream, "first_event_timeout", None) or 0.0)
        deadline = Deadline(min(loop.time() + ttft_timeout, overall), grace=s.idle_timeout)
        waiting_for = f"no first token within {ttft_timeout:g}s"
        parts: list[str] = []
        finished = usage = False
        try:
            while True:
                try:
                    item = await anext(items)
                except StopAsyncIteration:
                    break
                except asyncio.CancelledError:
                    if not deadline.absorb():
                        raise
                    if deadline.when >= overall:
                        waiting_for = f"answer exceeded {s.total_timeout:g}s"
                    raise UpstreamError("upstream_timeout", f"upstream timeout: {waiting_for}") from None
                batch: Batch = item if type(item) is list else [item]  # type: ignore[list-item]
                for event in batch:
                    kind = type(event)
                    if kind is TextDelta:
                        if not parts:
                            ttft = loop.time() - started
                            record["ttft_ms"] = round(ttft * 1000, 1)
                            self.metrics.ttft.labels(request.route).observe(ttft)
                        parts.append(event.text)  # type: ignore[union-attr]
                    elif kind is Finish:
                        finished = True
                    elif kind is Usage:
                        usage = True
                        record["usage"] = event.as_dict()  # type: ignore[union-attr]
                        if event.estimated:  # type: ignore[union-attr]
                            record["usage_estimated"] = True
                if not batch:
                    continue
                deadline.paused = True  # the caller's time is not the upstream's
                yield batch
                deadline.paused = False
                deadline.move(min(loop.time() + s.idle_timeout, overall))
                waiting_for = f"no data for {s.idle_timeout:g}s"
        finally:
            deadline.close()
            await items.aclose()  # type: ignore[attr-defined]
        tail: Batch = []
        if not finished:
            tail.append(Finish("stop"))
        if not usage:
            estimate = Usage(
                estimate_prompt_tokens(request.messages), estimate_tokens("".join(parts)), estimated=True
            )
            record["usage"] = estimate.as_dict()
            record["usage_estimated"] = True
            tail.append(estimate)
        if tail:
            yield tail

    async def fallback(self, request: ChatRequest, text: str) -> AsyncGenerator[Batch, None]:
        """The spoken fallback phrase as an answer stream, for when every upstream failed."""
        yield [
            TextDelta(text),
            Finish("stop"),
            Usage(estimate_prompt_tokens(request.messages), estimate_tokens(text), estimated=True),
        ]

    async def aclose(self) -> None:
        """Close every upstream's connection pool."""
        for upstream in self.upstreams:
            await upstream.aclose()
