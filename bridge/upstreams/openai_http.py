"""Any OpenAI-compatible Chat Completions API over a lean aiohttp client (the default).

The same wire protocol the openai SDK speaks, without its per-request machinery: the body
is encoded once with orjson, the stream is read as it arrives, and all complete `data:`
lines of one network read become one batch of events. The SDK driver (`openai_sdk`)
remains for those who want it (`OPENAI_CLIENT=sdk`); bench/README.md has the measurement.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp

from bridge import jsonutil
from bridge.events import Batch, UpstreamError, parse_retry_after
from bridge.request import ChatRequest
from bridge.upstreams.openai_stream import USAGE_OPTIONS, read_batches

DEFAULT_BASE_URL = "https://api.openai.com/v1"
MAX_ERROR_BODY = 64 * 1024
DRAIN_AFTER_DONE = 0.1  # seconds to wait for the end of the body after [DONE]


class OpenAIUpstream:
    """Streams chat completions from `<base_url>/chat/completions`."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str | None,
        connect_timeout: float,
        total_timeout: float,
        max_connections: int = 1000,
        name: str = "openai",
    ) -> None:
        self.name = name
        self.model = model
        self.url = (base_url or DEFAULT_BASE_URL).rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = aiohttp.ClientTimeout(total=total_timeout, sock_connect=connect_timeout)
        self.max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created in the running loop, on first use
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections),
                timeout=self.timeout,
                read_bufsize=1 << 20,  # one SSE line may carry a large tool-call argument
            )
        return self._session

    async def stream(self, request: ChatRequest) -> AsyncIterator[Batch]:
        body = {**request.params, "model": self.model or request.model, "messages": request.messages,
                "stream": True, "stream_options": USAGE_OPTIONS}
        try:
            async with self._client().post(self.url, data=jsonutil.dumps(body), headers=self.headers) as response:
                if response.status >= 400:
                    raise await _status_error(response)
                async for batch in read_batches(response.content.iter_any()):
                    yield batch
                await _finish_body(response)
        except aiohttp.ClientConnectorError:
            raise UpstreamError("upstream_connect", "could not connect to the upstream") from None
        except aiohttp.ConnectionTimeoutError:
            raise UpstreamError("upstream_connect", "timed out connecting to the upstream") from None
        except TimeoutError:
            raise UpstreamError("upstream_timeout", "upstream request timed out") from None
        except (aiohttp.ClientError, OSError):
            raise UpstreamError("upstream_connect", "connection to the upstream was lost mid-stream") from None

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()


async def _status_error(response: aiohttp.ClientResponse) -> UpstreamError:
    """An UpstreamError for an HTTP error answer, with the provider's message when it gave one."""
    raw = b""
    while len(raw) < MAX_ERROR_BODY:  # read() returns what is buffered: loop to the cap or the end
        part = await response.content.read(MAX_ERROR_BODY - len(raw))
        if not part:
            break
        raw += part
    message = ""
    try:
        payload = jsonutil.loads(raw)
        error = payload.get("error") if isinstance(payload, dict) else None
        message = str(error.get("message") if isinstance(error, dict) else error or "")
    except ValueError:
        message = raw.decode("utf-8", "replace").strip()
    detail = f": {message[:300]}" if message else ""
    return UpstreamError.from_status(response.status, detail, parse_retry_after(response.headers.get("Retry-After")))


async def _finish_body(response: aiohttp.ClientResponse) -> None:
    """After [DONE], read the body's end (normally already here) so the connection is reused."""
    if response.content.at_eof():
        return
    try:
        async with asyncio.timeout(DRAIN_AFTER_DONE):
            while await response.content.readany():
                pass
    except TimeoutError:
        pass  # the connection is simply closed instead of pooled
