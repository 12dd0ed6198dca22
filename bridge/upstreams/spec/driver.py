"""The upstream driver that runs a spec: `stream`, `sync` and `async` (submit, then poll) calls.

The HTTP layer is the one every driver shares (bridge/upstreams/http.py): a pooled session
created on first use, capped reads, one mapping of transport failures. Streams yield one
batch of events per network read; closing the iterator early leaves the `async with` and so
closes the HTTP response at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping, Sequence
from contextlib import aclosing, asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import yarl

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError, parse_retry_after
from bridge.events import Batch, estimate_prompt_tokens
from bridge.log import get_logger
from bridge.redaction import Redactor
from bridge.request import ChatRequest
from bridge.upstreams.http import HttpClient, address, read_capped, transport_errors
from bridge.upstreams.spec.converters import TOOL_TURNS
from bridge.upstreams.spec.extract import (
    AnswerReader,
    body_error,
    describe_error,
    error_status,
    raise_for_error,
    read_outputs,
)
from bridge.upstreams.spec.framing import FramingError, make_parser
from bridge.upstreams.spec.model import CallSpec, HttpSpec, RespField, Spec
from bridge.upstreams.spec.outgoing import Outgoing, render_request
from bridge.upstreams.spec.payloads import PayloadReader, json_payload
from bridge.upstreams.spec.templates import Context, to_text

MAX_BODY_BYTES = 8 << 20
MAX_ERROR_BODY = 64 * 1024
MIN_SECRET = 4  # shorter values (a group id "g1") would mask ordinary words
POLL_MARGIN = 5.0  # seconds past poll_timeout for the submit and the last poll, so our own timeout reports first
TOLD = 256  # requests remembered as already told about (the log line comes once per request)


class SpecUpstream:
    """An upstream described by a spec file.

    `secrets` are the values this upstream uses (its key, the spec's `${env.*}` values): every
    UpstreamError it raises is redacted with them, as the app-wide redactor may not know them.
    `extra_params` are UPSTREAM_EXTRA_PARAMS: the parameters `${extra_params}` holds.
    """

    def __init__(self, spec: Spec, call: str, *, name: str, base_url: str, api_key: str | None,
                 model: str | None, env: Mapping[str, str], http: HttpClient,
                 secrets: list[str] | None = None, extra_params: Sequence[str] = ()) -> None:
        self.name = name
        self.spec = spec
        self.call: CallSpec = spec.calls[call]
        self.base_url = base_url
        self.where = address(base_url)
        self.api_key = api_key
        self.model = model
        self.env = env
        self.http = http
        self.extra_params = tuple(extra_params)
        self.redact = Redactor(s for s in (secrets or []) if len(s) >= MIN_SECRET)
        self._told: deque[dict[str, Any]] = deque(maxlen=TOLD)
        # A submit-then-poll answer arrives all at once, when the job is done: the core's
        # first-token deadline must wait for it (bridge/upstreams/base.py).
        self.first_event_timeout: float | None = None
        if self.call.apitype == "async":
            self.first_event_timeout = self.call.poll_timeout + self.call.poll_interval + POLL_MARGIN

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        ctx = Context(request, model=self.model or request.model, api_key=self.api_key, env=self.env,
                      extra=self.extra_params)
        apitype = self.call.apitype
        runner = self._stream if apitype == "stream" else self._sync if apitype == "sync" else self._async
        try:
            with self._errors():
                async with aclosing(runner(ctx)) as batches:  # an early close reaches the HTTP response now
                    async for batch in batches:
                        yield batch
        except UpstreamError as exc:
            raise exc.redact(self.redact) from exc.__cause__  # provider texts, converter errors quoting a value

    async def aclose(self) -> None:
        await self.http.aclose()

    # -- the three kinds of call ---------------------------------------------------------

    async def _stream(self, ctx: Context) -> AsyncGenerator[Batch, None]:
        call = self.call
        answer = self._reader(call.resp, ctx, call)
        payloads = PayloadReader(call, answer)
        parser = make_parser(call.framing)
        async with self._send(self._render(call.request, ctx, "path"), call.resp, ctx) as response:
            if call.framing in ("sse", "lines") and response.content_type == "application/json":
                # Providers (MiniMax, Lingyi, Coze) answer a failed stream request with one JSON object.
                yield [*answer.feed(json_payload(await _read_all(response), "response body")), *answer.tail()]
                return
            async for chunk in response.content.iter_any():
                batch = payloads.feed(parser.feed(chunk))
                if batch:
                    yield batch
                payloads.check()
                if payloads.done:
                    break
            else:
                batch = payloads.feed(parser.close())
                if batch:
                    yield batch
                payloads.check()
        payloads.check_complete()
        tail = answer.tail()
        if tail:
            yield tail

    async def _sync(self, ctx: Context) -> AsyncGenerator[Batch, None]:
        payload = await self._fetch(self.call.request, self.call.resp, ctx, "path")
        reader = self._reader(self.call.resp, ctx, self.call)
        yield [*reader.feed(payload), *reader.tail()]

    async def _async(self, ctx: Context) -> AsyncGenerator[Batch, None]:
        call = self.call
        submitted = read_outputs(call.resp, await self._fetch(call.request, call.resp, ctx, "path"), None, ctx)
        raise_for_error(submitted)
        if call.status_map.get(to_text(submitted.get("status", ""))) == "failed":
            raise UpstreamError(ErrorKind.UPSTREAM_ERROR, "upstream refused the task")
        if submitted.get("task_id") in (None, ""):
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream accepted the task but sent no task id")
        qctx = ctx.child({"task_id": to_text(submitted["task_id"])})
        values = await self._poll_until_done(qctx)
        reader = self._reader(call.query_resp, qctx, call)
        yield [*reader.events(values), *reader.tail()]

    async def _poll_until_done(self, qctx: Context) -> dict[str, Any]:
        """Poll the task's status until it succeeded (its outputs) or failed (raised)."""
        call = self.call
        assert call.query is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + call.poll_timeout
        while True:
            await asyncio.sleep(call.poll_interval)
            if loop.time() > deadline:
                raise UpstreamError(ErrorKind.UPSTREAM_TIMEOUT,
                                    f"upstream task not finished within {call.poll_timeout:g}s")
            values = read_outputs(call.query_resp, await self._poll(call.query, qctx), None, qctx)
            if self._outcome(values) == "succeeded":
                return values

    def _outcome(self, values: dict[str, Any]) -> str:
        """`running` or `succeeded`; a failed or unknown status raises."""
        status = to_text(values.get("status", ""))
        outcome = self.call.status_map.get(status)
        if not self.call.status_map:  # no status: failed on an error, done once content has a value
            outcome = ("failed" if "error" in values or "error_code" in values
                       else "running" if values.get("content") in (None, "") else "succeeded")
        if outcome in ("running", "succeeded"):
            return outcome
        raise_for_error(values)
        if outcome is None:
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream task has an unknown status {status[:40]!r}")
        raise UpstreamError(ErrorKind.UPSTREAM_ERROR, f"upstream task ended with status {status[:40]!r}")

    async def _poll(self, query: HttpSpec, qctx: Context) -> Any:
        """One status request. Its failure is final: a retry would submit, and bill, the job again."""
        try:
            with self._errors():
                return await self._fetch(query, self.call.query_resp, qctx, "query_path")
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            raise UpstreamError(ErrorKind.UPSTREAM_ERROR, f"upstream task status request failed: {exc.message}",
                                status=exc.status) from exc

    # -- helpers ---------------------------------------------------------------------------

    def _reader(self, resp: list[RespField], ctx: Context, call: CallSpec) -> AnswerReader:
        messages = ctx.request.messages
        stream = call.apitype == "stream"
        return AnswerReader(resp, ctx, filters=call.chunk_filter if stream else None,
                            cumulative=stream and call.delta_mode == "cumulative",
                            prompt_estimate=lambda: estimate_prompt_tokens(messages),
                            finish_reasons=call.finish_reasons, tool_call_key=call.tool_call_key)

    def _render(self, http: HttpSpec, ctx: Context, where: str) -> Outgoing:
        where = f"calls.{self.call.name}.{where}"
        out = render_request(self.spec.name, http, ctx, self.base_url, self.spec.signer, where)
        if ctx.notes:
            self._tell(ctx)
        return out

    def _tell(self, ctx: Context) -> None:
        """Log, once per request, what the provider could not be sent (tool turns without a `tools_as`)."""
        meta = ctx.request.meta  # one object for a request's every attempt and tool round
        if any(told is meta for told in self._told):
            return
        self._told.append(meta)
        turns = ctx.notes.get(TOOL_TURNS, 0)
        get_logger().warning("spec_history_dropped", upstream=self.name, tool_turns=turns,
                             detail=f"spec {self.spec.name} has no shape for tool calls and results in the history "
                                    f"(the messages converter's tools_as): {turns} message(s) left out")

    async def _fetch(self, http: HttpSpec, resp: list[RespField], ctx: Context, where: str) -> Any:
        """Send one request and return its JSON body."""
        async with self._send(self._render(http, ctx, where), resp, ctx) as response:
            body = await _read_all(response)
        return json_payload(body, "response body")

    @asynccontextmanager
    async def _send(self, out: Outgoing, resp: list[RespField], ctx: Context) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request; an HTTP error status becomes an UpstreamError with the provider's message.

        The error's kind follows the HTTP status, or the `error_status` output when the body has
        one (Gemini refuses a bad key with a 400 whose reason is API_KEY_INVALID).
        """
        url = yarl.URL(out.url, encoded=True)  # exactly the path rendered (and signed): no dot-segment removal
        async with self.http.session.request(out.method, url, params=out.params or None, headers=out.headers,
                                             data=out.body, allow_redirects=False) as response:
            if response.status >= 300:
                body, _ = await read_capped(response, MAX_ERROR_BODY)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                detail, status = self._error_detail(body, resp, ctx)
                raise UpstreamError.from_status(status or response.status, detail, retry_after)
            yield response

    def _error_detail(self, body: bytes, resp: list[RespField], ctx: Context) -> tuple[str, int | None]:
        """The provider's message from an error body (JSON, or the first framed payload), and its error_status."""
        payload = self._error_payload(body)
        if not isinstance(payload, dict):
            return " ".join(body.decode("utf-8", "replace").split()), None
        try:
            values = read_outputs(resp, payload, None, ctx)
        except UpstreamError:
            values = {}
        status = error_status(values)
        if values.get("error") in (None, "") and values.get("error_code") in (None, ""):
            values = body_error(payload)
        return describe_error(values), status

    def _error_payload(self, body: bytes) -> Any:
        try:
            return jsonutil.loads(body)
        except ValueError:
            pass
        try:
            parser = make_parser(self.call.framing if self.call.apitype == "stream" else "sse")
            frames = [*parser.feed(body), *parser.close()]
            return jsonutil.loads(frames[0].data) if frames else None
        except (ValueError, FramingError):
            return None

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Transport and framing failures as UpstreamErrors (UpstreamError itself passes through)."""
        try:
            with transport_errors(self.where):
                yield
        except FramingError as exc:
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream stream is malformed: {exc}") from exc


async def _read_all(response: aiohttp.ClientResponse) -> bytes:
    body, truncated = await read_capped(response, MAX_BODY_BYTES)
    if truncated:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream response larger than {MAX_BODY_BYTES} bytes")
    return body
