"""An OpenAI-compatible upstream through the official `openai` SDK (`OPENAI_CLIENT=sdk`).

The SDK runs on its aiohttp transport with one client (one connection pool) per upstream;
the SSE stream is read as raw lines and parsed with the fast JSON decoder, never into the
SDK's pydantic objects. It is the opt-in choice: the SDK's request building costs ~0.8 ms
of CPU per request (bench/README.md), so the default driver is `openai_http`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import httpx2
import openai

from bridge.events import Batch, UpstreamError, parse_retry_after
from bridge.request import ChatRequest
from bridge.upstreams.openai_stream import USAGE_OPTIONS, read_batches


class OpenAISDKUpstream:
    """Streams chat completions from an OpenAI-compatible base URL with the openai SDK."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str | None,
        model: str | None,
        connect_timeout: float,
        total_timeout: float,
        name: str = "openai",
    ) -> None:
        self.name = name
        self.model = model
        timeout = httpx2.Timeout(total_timeout, connect=connect_timeout)
        self.client = openai.AsyncOpenAI(
            base_url=base_url,
            # Local servers (vLLM, Ollama) need no key, but the SDK insists on one.
            api_key=api_key or "unused",
            max_retries=0,  # the bridge retries itself, and only before the first byte
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(timeout=timeout),
        )
        self._create = self.client.chat.completions.with_streaming_response.create

    async def stream(self, request: ChatRequest) -> AsyncIterator[Batch]:
        try:
            async with self._create(  # type: ignore[call-overload]
                model=self.model or request.model,
                messages=request.messages,  # type: ignore[arg-type]
                stream=True,
                stream_options=USAGE_OPTIONS,  # type: ignore[arg-type]
                extra_body=request.params or None,
            ) as response:
                async for batch in read_batches(response.iter_bytes()):
                    yield batch
        except openai.APIStatusError as exc:
            detail = f": {exc.message[:300]}" if exc.message else ""
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            raise UpstreamError.from_status(exc.status_code, detail, retry_after) from None
        except openai.APITimeoutError as exc:
            if isinstance(exc.__cause__, httpx2.ConnectTimeout):
                # the aiohttp transport reports refused connections as connect timeouts too
                raise UpstreamError("upstream_connect", "could not connect to the upstream") from None
            raise UpstreamError("upstream_timeout", "upstream request timed out") from None
        except openai.APIConnectionError:
            raise UpstreamError("upstream_connect", "could not connect to the upstream") from None
        except (httpx2.HTTPError, aiohttp.ClientError, OSError):
            raise UpstreamError("upstream_connect", "connection to the upstream was lost mid-stream") from None

    async def aclose(self) -> None:
        await self.client.close()
