"""Any OpenAI-compatible Chat Completions API over a lean aiohttp client (the default).

The same wire protocol the openai SDK speaks, without its per-request machinery: the body
is encoded once with orjson, the stream is read as it arrives, and all complete `data:`
lines of one network read become one batch of events. The SDK driver (`openai_sdk`)
remains for those who want it (`OPENAI_CLIENT=sdk`); bench/README.md has the measurement.

A server that answers with one JSON body instead of a stream is read too: an error object
becomes `upstream_error` with the provider's message, a whole `chat.completion` its events.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import aiohttp

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError, parse_retry_after
from bridge.events import Batch
from bridge.request import ChatRequest
from bridge.upstreams.http import HttpClient, address, read_capped, transport_errors
from bridge.upstreams.openai.stream import USAGE_OPTIONS, read_batches
from bridge.upstreams.openai.wire import Probe, error_detail, json_answer, model_ids, outbound_body

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_ERROR_BODY = 64 * 1024
MAX_JSON_BODY = 8 * 1024 * 1024
DRAIN_AFTER_DONE = 0.1  # seconds to wait for the end of the body after [DONE]
MAX_PROBE_BODY = 1024 * 1024  # a /models list


class OpenAIUpstream:
    """Streams chat completions from `<base_url><chat_path>` (default `/chat/completions`)."""

    first_event_timeout: float | None = None

    def __init__(self, *, base_url: str | None, api_key: str | None, model: str | None, http: HttpClient,
                 chat_path: str = "/chat/completions", name: str = "openai") -> None:
        self.name = name
        self.model = model
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.url = self.base_url + chat_path
        self.where = address(self.url)
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.http = http

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        body = outbound_body(request, self.model, USAGE_OPTIONS)
        with transport_errors(self.where):
            async with self.http.session.post(self.url, data=jsonutil.dumps(body), headers=self.headers) as response:
                if response.status >= 400:
                    raise await _status_error(response)
                if response.content_type == "application/json":
                    yield await _json_answer(response)
                    return
                async for batch in read_batches(response.content.iter_any()):
                    yield batch
                await _finish_body(response)

    async def probe(self, timeout: float) -> Probe:
        """`GET <base>/models` once, at start-up: whether the base URL and the key work, and the models
        offered. Never raises: a failure is the probe's answer."""
        headers = {k: v for k, v in self.headers.items() if k == "Authorization"}
        try:
            async with asyncio.timeout(timeout):
                async with self.http.session.get(self.base_url + "/models", headers=headers) as response:
                    raw, _ = await read_capped(response, MAX_PROBE_BODY)
        except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
            return Probe(None, (), f"{type(exc).__name__}")
        if response.status >= 400:
            return Probe(response.status, (), error_detail(raw)[:200])
        return Probe(response.status, model_ids(raw), None)

    async def aclose(self) -> None:
        await self.http.aclose()


async def _status_error(response: aiohttp.ClientResponse) -> UpstreamError:
    """An UpstreamError for an HTTP error answer, with the provider's whole message."""
    raw, _ = await read_capped(response, MAX_ERROR_BODY)
    retry_after = parse_retry_after(response.headers.get("Retry-After"))
    return UpstreamError.from_status(response.status, error_detail(raw), retry_after)


async def _json_answer(response: aiohttp.ClientResponse) -> Batch:
    """A 200 answered with one JSON body: an error object, or a whole (non-streamed) completion."""
    raw, truncated = await read_capped(response, MAX_JSON_BODY)
    if truncated:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream answer larger than {MAX_JSON_BODY} bytes")
    return json_answer(raw)


async def _finish_body(response: aiohttp.ClientResponse) -> None:
    """After [DONE], read the body's end (normally already here) so the connection is reused.

    The answer is complete at [DONE]: a server that then closes without ending its chunked
    body, or stalls, costs the pooled connection, never the answer.
    """
    if response.content.at_eof():
        return
    try:
        async with asyncio.timeout(DRAIN_AFTER_DONE):
            while await response.content.readany():
                pass
    except (TimeoutError, aiohttp.ClientError, OSError):
        response.close()
