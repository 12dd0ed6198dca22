"""Any OpenAI-compatible Chat Completions API, through the official `openai` SDK.

The SDK runs on its aiohttp transport with one client (one connection pool) per upstream.
The SSE stream is read as raw lines and each chunk parsed with the fast JSON decoder into
canonical events: building the SDK's pydantic objects per chunk would cost ~3x throughput.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import httpx2
import openai

from bridge import jsonutil
from bridge.events import (
    Event,
    Finish,
    Metadata,
    TextDelta,
    ToolCallDelta,
    UpstreamError,
    Usage,
    parse_retry_after,
)
from bridge.request import ChatRequest

_USAGE_OPTIONS = {"include_usage": True}


class OpenAIUpstream:
    """Streams chat completions from an OpenAI-compatible base URL."""

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

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        try:
            async with self._create(
                model=self.model or request.model,
                messages=request.messages,  # type: ignore[arg-type]
                stream=True,
                stream_options=_USAGE_OPTIONS,  # type: ignore[arg-type]
                extra_body=request.params or None,
            ) as response:
                finished = False
                async for line in response.iter_lines():
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, `event:` / `id:` fields
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    for event in chunk_events(_parse(data)):
                        if type(event) is Finish:
                            finished = True
                        yield event
                if not finished:
                    raise UpstreamError("upstream_protocol", "upstream stream ended before the answer was complete")
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


def _parse(data: str) -> dict[str, Any]:
    try:
        chunk = jsonutil.loads(data)
    except ValueError:
        raise UpstreamError("upstream_protocol", "upstream sent a stream line that is not JSON") from None
    if not isinstance(chunk, dict):
        raise UpstreamError("upstream_protocol", "upstream sent a stream chunk that is not an object")
    return chunk


def chunk_events(chunk: dict[str, Any]) -> list[Event]:
    """Canonical events of one chat.completion.chunk (only choice 0 is used)."""
    events: list[Event] = []
    choices = chunk.get("choices")
    if choices:
        choice = choices[0]
        delta = choice.get("delta")
        if delta:
            content = delta.get("content")
            if content:
                events.append(TextDelta(content))
            tool_calls = delta.get("tool_calls")
            if tool_calls:
                events.extend(_tool_call(tc) for tc in tool_calls)
        reason = choice.get("finish_reason")
        if reason:
            events.append(Finish(reason))
    elif chunk.get("object") == "chat.completion.custom_metadata":
        events.append(Metadata(chunk))
    elif "error" in chunk:
        error = chunk["error"]
        message = error.get("message") if isinstance(error, dict) else str(error)
        raise UpstreamError("upstream_error", f"upstream reported an error mid-stream: {str(message)[:300]}")
    usage = chunk.get("usage")
    if usage:
        events.append(
            Usage(int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0))
        )
    return events


def _tool_call(tc: dict[str, Any]) -> ToolCallDelta:
    function = tc.get("function") or {}
    return ToolCallDelta(
        index=int(tc.get("index") or 0),
        id=tc.get("id"),
        name=function.get("name"),
        arguments=function.get("arguments") or "",
    )
