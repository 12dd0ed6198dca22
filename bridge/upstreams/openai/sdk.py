"""An OpenAI-compatible upstream through the official `openai` SDK (`OPENAI_CLIENT=sdk`).

The SDK runs on its aiohttp transport with one client (one connection pool, sized from
MAX_CONCURRENCY like every driver's) per upstream; the SSE stream is read as raw bytes and
parsed with the fast JSON decoder, never into the SDK's pydantic objects. It is the opt-in
choice: the SDK's request building costs ~0.8 ms of CPU per request (bench/README.md).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncGenerator, Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

import aiohttp
import httpx2
import openai

from bridge.errors import ErrorKind, UpstreamError, parse_retry_after
from bridge.events import Batch
from bridge.request import ChatRequest
from bridge.upstreams.http import address, transport_error
from bridge.upstreams.openai.stream import USAGE_OPTIONS, read_batches
from bridge.upstreams.openai.wire import error_detail, json_answer

DEFAULT_BASE_URL = "https://api.openai.com/v1"


@cache
def tls_context() -> ssl.SSLContext:
    """One verifying TLS context for every SDK client (building one reads the CA store: ~25 ms)."""
    return ssl.create_default_context()


class OpenAISDKUpstream:
    """Streams chat completions from an OpenAI-compatible base URL with the openai SDK."""

    first_event_timeout: float | None = None

    def __init__(self, *, base_url: str | None, api_key: str | None, model: str | None, connect_timeout: float,
                 total_timeout: float, max_connections: int, name: str = "openai") -> None:
        self.name = name
        self.model = model
        self.where = address(base_url or DEFAULT_BASE_URL)
        timeout = httpx2.Timeout(total_timeout, connect=connect_timeout)
        limits = httpx2.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            api_key=api_key or "unused",  # local servers (vLLM, Ollama) need no key, but the SDK insists on one
            max_retries=0,  # the bridge retries itself, and only before the first byte
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(timeout=timeout, limits=limits, verify=tls_context()),
        )
        self._create: Any = self.client.chat.completions.with_streaming_response.create

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        with self._errors():
            async with self._create(model=self.model or request.model, messages=request.messages, stream=True,
                                    stream_options=USAGE_OPTIONS, extra_body=request.params or None) as response:
                if response.headers.get("content-type", "").startswith("application/json"):
                    yield json_answer(await response.read())  # an error object, or a whole completion
                    return
                async for batch in read_batches(response.iter_bytes()):
                    yield batch

    async def aclose(self) -> None:
        await self.client.close()

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """The SDK's exceptions, mapped as the shared HTTP layer maps the transport's own."""
        try:
            yield
        except openai.APIStatusError as exc:
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            raise UpstreamError.from_status(exc.status_code, error_detail(exc.response.content),
                                            retry_after) from exc
        except (openai.APIConnectionError, httpx2.HTTPError) as exc:
            if isinstance(exc, openai.APITimeoutError) and not isinstance(exc.__cause__, httpx2.ConnectTimeout):
                raise UpstreamError(ErrorKind.UPSTREAM_TIMEOUT, f"request to {self.where} timed out") from exc
            cause = _root(exc)
            if isinstance(cause, (aiohttp.ClientError, OSError)):
                raise transport_error(cause, self.where) from exc
            # the aiohttp transport reports a refused connection as a connect timeout, cause unknown
            raise UpstreamError(ErrorKind.UPSTREAM_CONNECT, f"could not connect to {self.where}") from exc


def _root(exc: BaseException) -> BaseException:
    """The transport's own exception under the SDK's wrappers (an aiohttp or OS error), else `exc`."""
    cause: BaseException | None = exc
    while cause is not None:
        if not isinstance(cause, (openai.OpenAIError, httpx2.HTTPError)):
            return cause
        cause = cause.__cause__ or cause.__context__
    return exc
