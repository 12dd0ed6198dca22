"""The upstream driver that runs a spec: `stream`, `sync` and `async` (submit, then poll) calls.

The HTTP layer is the one every driver shares (bridge/upstreams/http.py): a pooled session
created on first use, capped reads, one mapping of transport failures. Streams yield one
batch of events per network read; closing the iterator early leaves the `async with` and so
closes the HTTP response at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing, asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import yarl

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError, parse_retry_after
from bridge.events import Batch, estimate_prompt_tokens
from bridge.redaction import Redactor
from bridge.request import ChatRequest
from bridge.upstreams.http import HttpClient, address, read_capped, transport_errors
from bridge.upstreams.spec.extract import AnswerReader, body_error, describe_error, raise_for_error, read_outputs
from bridge.upstreams.spec.framing import Frame, FramingError, make_parser
from bridge.upstreams.spec.model import CallSpec, HttpSpec, RespField, Spec
from bridge.upstreams.spec.outgoing import Outgoing, render_request
from bridge.upstreams.spec.templates import Context, to_text

DONE = "[DONE]"  # OpenAI's end marker: never a payload, so it ends a stream even where `done` is not declared
MAX_BODY_BYTES = 8 << 20
MAX_ERROR_BODY = 64 * 1024
MIN_SECRET = 4  # shorter values (a group id "g1") would mask ordinary words
POLL_MARGIN = 5.0  # seconds past poll_timeout for the submit and the last poll, so our own timeout reports first


class SpecUpstream:
    """An upstream described by a spec file.

    `secrets` are the values this upstream uses (its key, the spec's `${env.*}` values): every
    UpstreamError it raises is redacted with them, as the app-wide redactor may not know them.
    """

    def __init__(self, spec: Spec, call: str, *, name: str, base_url: str, api_key: str | None,
                 model: str | None, env: Mapping[str, str], http: HttpClient,
                 secrets: list[str] | None = None) -> None:
        self.name = name
        self.spec = spec
        self.call: CallSpec = spec.calls[call]
        self.base_url = base_url
        self.where = address(base_url)
        self.api_key = api_key
        self.model = model
        self.env = env
        self.http = http
        self.redact = Redactor(s for s in (secrets or []) if len(s) >= MIN_SECRET)
        # A submit-then-poll answer arrives all at once, when the job is done: the core's
        # first-token deadline must wait for it (bridge/upstreams/base.py).
        self.first_event_timeout: float | None = None
        if self.call.apitype == "async":
            self.first_event_timeout = self.call.poll_timeout + self.call.poll_interval + POLL_MARGIN

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        ctx = Context(request, model=self.model or request.model, api_key=self.api_key, env=self.env)
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
        reader = self._reader(call.resp, ctx, call)
        parser = make_parser(call.framing)
        done = False
        async with self._send(self._render(call.request, ctx, "path"), call.resp, ctx) as response:
            if call.framing in ("sse", "lines") and response.content_type == "application/json":
                # Providers (MiniMax, Lingyi) answer a failed stream request with one JSON object.
                payload = _json(await _read_all(response), "response body")
                yield [*reader.feed(payload), *reader.tail()]
                return
            async for chunk in response.content.iter_any():
                batch, done, error = self._read_frames(parser.feed(chunk), reader)
                if batch:
                    yield batch
                if error is not None:
                    raise error
                if done:
                    break
            else:
                batch, done, error = self._read_frames(parser.close(), reader)
                if batch:
                    yield batch
                if error is not None:
                    raise error
        if not done and reader.payloads == 0:
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream answered with a stream that carried no payload")
        if not done and reader.finish is None and (call.done or call.done_event):
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream stream ended before the answer was complete")
        tail = reader.tail()
        if tail:
            yield tail

    async def _sync(self, ctx: Context) -> AsyncGenerator[Batch, None]:
        payload = await self._fetch(self.call.request, self.call.resp, ctx, "path")
        reader = self._reader(self.call.resp, ctx)
        yield [*reader.feed(payload), *reader.tail()]

    async def _async(self, ctx: Context) -> AsyncGenerator[Batch, None]:
        call = self.call
        assert call.query is not None
        submitted = read_outputs(call.resp, await self._fetch(call.request, call.resp, ctx, "path"), None, ctx)
        raise_for_error(submitted)
        if call.status_map.get(to_text(submitted.get("status", ""))) == "failed":
            raise UpstreamError(ErrorKind.UPSTREAM_ERROR, "upstream refused the task")
        if submitted.get("task_id") in (None, ""):
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream accepted the task but sent no task id")
        qctx = ctx.child({"task_id": to_text(submitted["task_id"])})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + call.poll_timeout
        while True:
            await asyncio.sleep(call.poll_interval)
            if loop.time() > deadline:
                raise UpstreamError(ErrorKind.UPSTREAM_TIMEOUT,
                                    f"upstream task not finished within {call.poll_timeout:g}s")
            payload = await self._poll(call.query, qctx)
            values = read_outputs(call.query_resp, payload, None, qctx)
            status = to_text(values.get("status", ""))
            outcome = call.status_map.get(status)
            if not call.status_map:  # no status: failed on an error, done once content has a value
                outcome = ("failed" if "error" in values or "error_code" in values
                           else "running" if values.get("content") in (None, "") else "succeeded")
            if outcome == "running":
                continue
            if outcome is None:
                raise_for_error(values)
                raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream task has an unknown status {status[:40]!r}")
            if outcome == "failed":
                raise_for_error(values)
                raise UpstreamError(ErrorKind.UPSTREAM_ERROR, f"upstream task ended with status {status[:40]!r}")
            reader = self._reader(call.query_resp, qctx)
            yield [*reader.events(values), *reader.tail()]
            return

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

    def _reader(self, resp: list[RespField], ctx: Context, call: CallSpec | None = None) -> AnswerReader:
        messages = ctx.request.messages
        return AnswerReader(resp, ctx, filters=call.chunk_filter if call else None,
                            cumulative=call is not None and call.delta_mode == "cumulative",
                            prompt_estimate=lambda: estimate_prompt_tokens(messages))

    def _read_frames(self, frames: list[Frame], reader: AnswerReader) -> tuple[Batch, bool, UpstreamError | None]:
        """The events of one read's frames, whether the end marker came, and the error that stopped it.

        A bad payload ends the stream, but the events before it still reach the caller.
        """
        call = self.call
        batch: Batch = []
        for frame in frames:
            if call.done_event is not None and frame.event == call.done_event:
                return batch, True, None
            data = frame.data
            if call.done is not None and data.strip() == call.done:
                return batch, True, None
            if call.chunk_match is not None:
                match = call.chunk_match.search(data)
                if match is None:
                    continue
                data = match.group(1) if call.chunk_match.groups else match.group(0)
            if data.strip() == (call.done or DONE):  # the marker, whatever the framing (`data: [DONE]` lines)
                return batch, True, None
            if data and not data.isspace():
                try:
                    batch += reader.feed(_json(data, "stream payload"), frame.event)
                except UpstreamError as exc:
                    return batch, False, exc
        return batch, False, None

    def _render(self, http: HttpSpec, ctx: Context, where: str) -> Outgoing:
        where = f"calls.{self.call.name}.{where}"
        return render_request(self.spec.name, http, ctx, self.base_url, self.spec.signer, where)

    async def _fetch(self, http: HttpSpec, resp: list[RespField], ctx: Context, where: str) -> Any:
        """Send one request and return its JSON body."""
        async with self._send(self._render(http, ctx, where), resp, ctx) as response:
            body = await _read_all(response)
        return _json(body, "response body")

    @asynccontextmanager
    async def _send(self, out: Outgoing, resp: list[RespField], ctx: Context) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request; an HTTP error status becomes an UpstreamError with the provider's message."""
        url = yarl.URL(out.url, encoded=True)  # exactly the path rendered (and signed): no dot-segment removal
        async with self.http.session.request(out.method, url, params=out.params or None, headers=out.headers,
                                             data=out.body, allow_redirects=False) as response:
            if response.status >= 300:
                body, _ = await read_capped(response, MAX_ERROR_BODY)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise UpstreamError.from_status(response.status, self._error_detail(body, resp, ctx), retry_after)
            yield response

    def _error_detail(self, body: bytes, resp: list[RespField], ctx: Context) -> str:
        """The provider's message from an error body (JSON, or the first framed payload)."""
        payload: Any = None
        try:
            payload = jsonutil.loads(body)
        except ValueError:
            try:
                parser = make_parser(self.call.framing if self.call.apitype == "stream" else "sse")
                frames = [*parser.feed(body), *parser.close()]
                payload = jsonutil.loads(frames[0].data) if frames else None
            except (ValueError, FramingError):
                payload = None
        if not isinstance(payload, dict):
            return " ".join(body.decode("utf-8", "replace").split())
        try:
            values = read_outputs(resp, payload, None, ctx)
        except UpstreamError:
            values = {}
        if values.get("error") in (None, "") and values.get("error_code") in (None, ""):
            values = body_error(payload)
        return describe_error(values)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Transport and framing failures as UpstreamErrors (UpstreamError itself passes through)."""
        try:
            with transport_errors(self.where):
                yield
        except FramingError as exc:
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream stream is malformed: {exc}") from exc


def _json(data: str | bytes, what: str) -> Any:
    try:
        return jsonutil.loads(data)
    except ValueError:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream sent a {what} that is not JSON") from None


async def _read_all(response: aiohttp.ClientResponse) -> bytes:
    body, truncated = await read_capped(response, MAX_BODY_BYTES)
    if truncated:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream response larger than {MAX_BODY_BYTES} bytes")
    return body
