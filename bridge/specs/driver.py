"""The upstream driver that runs a spec: `stream`, `sync` and `async` (submit, then poll) calls.

One aiohttp session per upstream, created on first use (the constructor needs no running
loop) and closed by `aclose`. Streams yield events as each network read arrives; closing
the iterator early leaves the `async with` and so closes the HTTP response at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from contextlib import aclosing, asynccontextmanager, contextmanager
from typing import Any

import aiohttp
import yarl

from bridge import jsonutil
from bridge.events import Event, UpstreamError, parse_retry_after
from bridge.redaction import Redactor
from bridge.request import ChatRequest
from bridge.specs.extract import AnswerReader, body_error, describe_error, raise_for_error, read_outputs
from bridge.specs.framing import Frame, FramingError, make_parser
from bridge.specs.model import CallSpec, HttpSpec, RespField, Spec
from bridge.specs.outgoing import Outgoing, render_request
from bridge.specs.templates import Context, to_text
from bridge.tokens import estimate_prompt_tokens

MAX_BODY_BYTES = 8 << 20
MIN_SECRET = 4  # shorter values (a group id "g1") would mask ordinary words
POLL_MARGIN = 5.0  # seconds past poll_timeout for the submit and the last poll, so our own timeout reports first


class SpecUpstream:
    """An upstream described by a spec file.

    `secrets` are the values this upstream uses (its key, the spec's `${env.*}` values): every
    UpstreamError it raises is redacted with them, as the app-wide redactor may not know them.
    """

    def __init__(self, spec: Spec, call: str, *, name: str, base_url: str, api_key: str | None,
                 model: str | None, env: Mapping[str, str], connect_timeout: float, total_timeout: float,
                 secrets: list[str] | None = None) -> None:
        self.name = name
        self.spec = spec
        self.call: CallSpec = spec.calls[call]
        self.base_url = base_url
        self.api_key = api_key
        self.model = model
        self.env = env
        self.timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout,
                                             sock_connect=connect_timeout)
        self.redact = Redactor(s for s in (secrets or []) if len(s) >= MIN_SECRET)
        self._session: aiohttp.ClientSession | None = None
        # A submit-then-poll answer arrives all at once, when the job is done: the core's
        # first-token deadline must wait for it (bridge/upstreams/base.py).
        self.first_event_timeout: float | None = None
        if self.call.apitype == "async":
            self.first_event_timeout = self.call.poll_timeout + self.call.poll_interval + POLL_MARGIN

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        ctx = Context(request, model=self.model or request.model, api_key=self.api_key, env=self.env)
        apitype = self.call.apitype
        runner = self._stream if apitype == "stream" else self._sync if apitype == "sync" else self._async
        try:
            with self._errors():
                async with aclosing(runner(ctx)) as events:  # an early close reaches the HTTP response now
                    async for event in events:
                        yield event
        except UpstreamError as exc:
            exc.message = self.redact(exc.message)  # provider texts, converter errors quoting a value
            exc.args = (exc.message,)
            raise

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- the three kinds of call ---------------------------------------------------------

    async def _stream(self, ctx: Context) -> AsyncGenerator[Event, None]:
        call = self.call
        reader = self._reader(call.resp, ctx, call)
        parser = make_parser(call.framing)
        done = False
        async with self._send(self._render(call.request, ctx, "path"), call.resp, ctx) as response:
            if call.framing == "sse" and response.content_type == "application/json":
                # Providers (MiniMax, Lingyi) answer a failed stream request with one JSON object.
                payload = _json(await _read_limited(response), "response body")
                for event in [*reader.feed(payload), *reader.tail()]:
                    yield event
                return
            async for chunk in response.content.iter_any():
                for item in self._frames(parser.feed(chunk), reader):
                    if item is None:
                        done = True
                        break
                    yield item
                if done:
                    break
            else:
                for item in self._frames(parser.close(), reader):
                    if item is None:
                        done = True
                        break
                    yield item
        if not done and reader.payloads == 0:
            raise UpstreamError("upstream_protocol", "upstream answered with a stream that carried no payload")
        if not done and reader.finish is None and (call.done or call.done_event):
            raise UpstreamError("upstream_protocol", "upstream stream ended before the answer was complete")
        for event in reader.tail():
            yield event

    async def _sync(self, ctx: Context) -> AsyncGenerator[Event, None]:
        payload = await self._fetch(self.call.request, self.call.resp, ctx, "path")
        reader = self._reader(self.call.resp, ctx)
        for event in [*reader.feed(payload), *reader.tail()]:
            yield event

    async def _async(self, ctx: Context) -> AsyncGenerator[Event, None]:
        call = self.call
        assert call.query is not None
        submitted = read_outputs(call.resp, await self._fetch(call.request, call.resp, ctx, "path"), None, ctx)
        raise_for_error(submitted, self.redact)
        if call.status_map.get(to_text(submitted.get("status", ""))) == "failed":
            raise UpstreamError("upstream_error", "upstream refused the task")
        if submitted.get("task_id") in (None, ""):
            raise UpstreamError("upstream_protocol", "upstream accepted the task but sent no task id")
        qctx = ctx.child({"task_id": to_text(submitted["task_id"])})
        loop = asyncio.get_running_loop()
        deadline = loop.time() + call.poll_timeout
        while True:
            await asyncio.sleep(call.poll_interval)
            if loop.time() > deadline:
                raise UpstreamError("upstream_timeout", f"upstream task not finished within {call.poll_timeout:g}s")
            payload = await self._poll(call.query, qctx)
            values = read_outputs(call.query_resp, payload, None, qctx)
            status = to_text(values.get("status", ""))
            outcome = call.status_map.get(status)
            if outcome == "running":
                continue
            if outcome is None:
                raise_for_error(values, self.redact)
                raise UpstreamError("upstream_protocol", f"upstream task has an unknown status {status[:40]!r}")
            if outcome == "failed":
                raise_for_error(values, self.redact)
                raise UpstreamError("upstream_error", f"upstream task ended with status {status[:40]!r}")
            reader = self._reader(call.query_resp, qctx)
            for event in [*reader.events(values), *reader.tail()]:
                yield event
            return

    async def _poll(self, query: HttpSpec, qctx: Context) -> Any:
        """One status request. Its failure is final: a retry would submit, and bill, the job again."""
        try:
            with self._errors():
                return await self._fetch(query, self.call.query_resp, qctx, "query_path")
        except UpstreamError as exc:
            if not exc.retryable:
                raise
            raise UpstreamError("upstream_error", f"upstream task status request failed: {exc.message}",
                                status=exc.status) from None

    # -- helpers ---------------------------------------------------------------------------

    def _reader(self, resp: list[RespField], ctx: Context, call: CallSpec | None = None) -> AnswerReader:
        messages = ctx.request.messages
        return AnswerReader(resp, ctx, self.redact, filters=call.chunk_filter if call else None,
                            cumulative=call is not None and call.delta_mode == "cumulative",
                            prompt_estimate=lambda: estimate_prompt_tokens(messages))

    def _frames(self, frames: list[Frame], reader: AnswerReader) -> Iterator[Event | None]:
        """Events of a batch of frames, one by one; None marks the stream's end marker."""
        call = self.call
        for frame in frames:
            if call.done_event is not None and frame.event == call.done_event:
                yield None
                return
            data = frame.data
            if call.done is not None and data.strip() == call.done:
                yield None
                return
            if call.chunk_match is not None:
                match = call.chunk_match.search(data)
                if match is None:
                    continue
                data = match.group(1) if call.chunk_match.groups else match.group(0)
            if data and not data.isspace():
                yield from reader.feed(_json(data, "stream payload"), frame.event)

    def _render(self, http: HttpSpec, ctx: Context, where: str) -> Outgoing:
        where = f"calls.{self.call.name}.{where}"
        return render_request(self.spec.name, http, ctx, self.base_url, self.spec.signer, where)

    async def _fetch(self, http: HttpSpec, resp: list[RespField], ctx: Context, where: str) -> Any:
        """Send one request and return its JSON body."""
        async with self._send(self._render(http, ctx, where), resp, ctx) as response:
            body = await _read_limited(response)
        return _json(body, "response body")

    @asynccontextmanager
    async def _send(self, out: Outgoing, resp: list[RespField], ctx: Context) -> AsyncIterator[aiohttp.ClientResponse]:
        """Send a request; an HTTP error status becomes an UpstreamError with the provider's message."""
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self.timeout, connector=aiohttp.TCPConnector(limit=0))
        url = yarl.URL(out.url, encoded=True)  # exactly the path rendered (and signed): no dot-segment removal
        async with self._session.request(out.method, url, params=out.params or None, headers=out.headers,
                                         data=out.body, allow_redirects=False) as response:
            if response.status >= 300:
                detail = self._error_detail(await _read_limited(response, 64 * 1024), resp, ctx)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                raise UpstreamError.from_status(response.status, detail, retry_after)
            yield response

    def _error_detail(self, body: bytes, resp: list[RespField], ctx: Context) -> str:
        """The provider's error message from an error body (JSON, or the first framed payload)."""
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
            return ""
        try:
            values = read_outputs(resp, payload, None, ctx)
        except UpstreamError:
            values = {}
        if values.get("error") in (None, "") and values.get("error_code") in (None, ""):
            values = body_error(payload)
        message = describe_error(values)
        return f": {self.redact(message)[:300]}" if message else ""

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Transport failures as UpstreamErrors (UpstreamError itself passes through)."""
        try:
            yield
        except FramingError as exc:
            raise UpstreamError("upstream_protocol", f"upstream stream is malformed: {exc}") from None
        except aiohttp.ClientPayloadError:
            raise UpstreamError("upstream_connect", "connection to the upstream was lost mid-answer") from None
        except aiohttp.ConnectionTimeoutError:  # also a TimeoutError, but retried like any connect failure
            raise UpstreamError("upstream_connect", "timed out connecting to the upstream") from None
        except TimeoutError:
            raise UpstreamError("upstream_timeout", "upstream request timed out") from None
        except aiohttp.InvalidURL:
            raise UpstreamError("upstream_config", f"spec {self.spec.name}: the upstream URL is invalid") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamError("upstream_connect", "could not connect to the upstream") from None


def _json(data: str | bytes, what: str) -> Any:
    try:
        return jsonutil.loads(data)
    except ValueError:
        raise UpstreamError("upstream_protocol", f"upstream sent a {what} that is not JSON") from None


async def _read_limited(response: aiohttp.ClientResponse, limit: int = MAX_BODY_BYTES) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        parts.append(chunk)
        size += len(chunk)
        if size > limit:
            if limit < MAX_BODY_BYTES:
                break  # an error body: the start is enough
            raise UpstreamError("upstream_protocol", f"upstream response larger than {limit} bytes")
    return b"".join(parts)
