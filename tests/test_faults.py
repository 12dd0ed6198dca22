"""Upstream faults through both endpoints: each gives the documented answer, never a hang or a 500."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web

from bridge.config import DEFAULT_FAILURE_TEXT
from tests.support.app import log_lines
from tests.support.upstream import FakeUpstream, sse, text_chunks

FAST = {"UPSTREAM_TTFT_TIMEOUT": "0.2", "UPSTREAM_IDLE_TIMEOUT": "0.2", "UPSTREAM_TOTAL_TIMEOUT": "0.5"}
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["aiohttp", "sdk", "spec"])
def bridge_defaults(request: pytest.FixtureRequest) -> dict[str, str]:
    """Every fault test runs against both OpenAI drivers and the spec engine (specs/openai.json)."""
    if request.param == "spec":
        return {"UPSTREAM": "specs/openai.json"}
    return {"OPENAI_CLIENT": request.param}
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def status(code: int, headers: dict[str, str] | None = None) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "fault"}}, status=code, headers=headers)
    return handler


async def hang(request: web.Request) -> web.StreamResponse:
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _open(request: web.Request, first: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    await response.write(first)
    return response


async def reset_mid_stream(request: web.Request) -> web.StreamResponse:
    response = await _open(request, sse(text_chunks(["partial"])[:2], done=False))
    assert request.transport is not None
    request.transport.close()
    return response


async def malformed_first(request: web.Request) -> web.StreamResponse:
    return web.Response(body=b"data: {this is not json\n\n", content_type="text/event-stream")


async def malformed_mid_stream(request: web.Request) -> web.StreamResponse:
    return web.Response(body=sse(text_chunks(["partial"])[:2], done=False) + b"data: {oops\n\n",
                        content_type="text/event-stream")


async def endless(request: web.Request) -> web.StreamResponse:
    response = await _open(request, sse(text_chunks(["partial"])[:2], done=False))
    while True:  # a chunk every 50 ms, forever: only the overall deadline stops it
        await asyncio.sleep(0.05)
        await response.write(sse(text_chunks([" more"])[1:2], done=False))


async def slow_trickle(request: web.Request) -> web.StreamResponse:
    response = await _open(request, sse(text_chunks(["partial"])[:2], done=False))
    await asyncio.sleep(0.6)  # longer than the idle deadline between chunks
    await response.write(sse(text_chunks(["late"])[1:]))
    return response


# name -> (handler, kind, status before the first byte, first byte already sent)
FAULTS: dict[str, tuple[Handler | None, str, int, bool]] = {
    "refused": (None, "upstream_connect", 502, False),
    "401": (status(401), "upstream_auth", 502, False),
    "429": (status(429, {"Retry-After": "30"}), "upstream_rate_limited", 429, False),
    "500": (status(500), "upstream_http", 502, False),
    "hang": (hang, "upstream_timeout", 504, False),
    "malformed_first": (malformed_first, "upstream_protocol", 502, False),
    "reset_mid_stream": (reset_mid_stream, "upstream_connect", 200, True),
    "malformed_mid_stream": (malformed_mid_stream, "upstream_protocol", 200, True),
    "endless": (endless, "upstream_timeout", 200, True),
    "slow_trickle": (slow_trickle, "upstream_timeout", 200, True),
}


def upstream_at(host: str) -> dict[str, str]:
    """OPENAI_BASE_URL for the OpenAI drivers; UPSTREAM_BASE_URL for the spec (its path says /v1/...)."""
    return {"OPENAI_BASE_URL": host + "/v1", "UPSTREAM_BASE_URL": host}


async def start(bridge: Any, fake: FakeUpstream, fault: str, unused_port: int, **extra: str) -> Any:
    handler = FAULTS[fault][0]
    fake.handler = handler
    return await bridge({**upstream_at(f"http://127.0.0.1:{unused_port}" if handler is None else fake.url),
                         **FAST, **extra})


def parse_sse(text: str) -> list[str]:
    return [event.removeprefix("data: ") for event in text.split("\n\n") if event]


@pytest.mark.parametrize("fault", FAULTS)
async def test_form_speaks_fallback_phrase_and_logs_cause(bridge, fake_upstream, log_stream, unused_tcp_port, fault):
    client = await start(bridge, fake_upstream, fault, unused_tcp_port)
    resp = await client.post("/", data={"Message": "hi"})
    assert resp.status == 200
    assert await resp.json() == {"Text": DEFAULT_FAILURE_TEXT}
    line = log_lines(log_stream)[-1]
    assert line["error_kind"] == FAULTS[fault][1] and line["failure_phrase"] is True


@pytest.mark.parametrize("fault", FAULTS)
async def test_openai_endpoint_documented_answer(bridge, fake_upstream, unused_tcp_port, fault):
    _, kind, code, mid_stream = FAULTS[fault]
    client = await start(bridge, fake_upstream, fault, unused_tcp_port)
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert resp.status == code
    if not mid_stream:
        assert (await resp.json())["error"]["code"] == kind
        return
    events = parse_sse(await resp.text())
    assert "partial" in events[0]
    assert json.loads(events[-2])["error"]["code"] == kind
    assert events[-1] == "[DONE]"


@pytest.mark.parametrize("fault", [name for name, spec in FAULTS.items() if not spec[3]])
async def test_fallback_upstream_answers_before_first_byte(bridge, fake_upstream, unused_tcp_port, fault):
    client = await start(bridge, fake_upstream, fault, unused_tcp_port, UPSTREAM_FALLBACKS='[{"upstream": "echo"}]')
    resp = await client.post("/", data={"Message": "hi"})
    assert await resp.json() == {"Text": "You said: hi"}
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "You said: hi"


@pytest.mark.parametrize("fault", ["500", "hang", "reset_mid_stream"])
async def test_openai_fallback_text_when_set(bridge, fake_upstream, unused_tcp_port, fault):
    client = await start(bridge, fake_upstream, fault, unused_tcp_port, FALLBACK_TEXT="One moment please.")
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert resp.status == 200
    events = parse_sse(await resp.text())
    assert events[-1] == "[DONE]"
    if FAULTS[fault][3]:  # bytes already went out: the stream ends with the error, not a second answer
        assert json.loads(events[-2])["error"]["code"] == FAULTS[fault][1]
    else:
        assert json.loads(events[0])["choices"][0]["delta"]["content"] == "One moment please."


async def test_retry_after_is_honoured_then_retried(bridge, fake_upstream):
    calls: list[float] = []

    async def limited_once(request: web.Request) -> web.StreamResponse:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return web.json_response({"error": {"message": "slow down"}}, status=429, headers={"Retry-After": "0.2"})
        return await fake_upstream.stream_openai(request)

    fake_upstream.handler = limited_once
    client = await bridge(upstream_at(fake_upstream.url))
    resp = await client.post("/", data={"Message": "hi"})
    assert await resp.json() == {"Text": "Hello, world!"}
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.2


async def test_connection_failure_is_retried_once_then_falls_back(bridge, fake_upstream, log_stream):
    fake_upstream.handler = status(503)
    backups = [{"upstream": "openai", "base_url": fake_upstream.url + "/v1", "model": "backup-model"},
               {"upstream": "echo"}]
    client = await bridge({**upstream_at(fake_upstream.url), "UPSTREAM_FALLBACKS": json.dumps(backups)})
    resp = await client.post("/", data={"Message": "hi"})
    assert await resp.json() == {"Text": "You said: hi"}
    models = [r.json()["model"] for r in fake_upstream.requests]
    assert models == ["gpt-4o-mini", "gpt-4o-mini", "backup-model", "backup-model"]
    assert log_lines(log_stream)[-1]["attempts"] == ["openai:upstream_http"] * 4


async def test_concurrency_cap_gives_503_with_retry_after(bridge, fake_upstream):
    release = asyncio.Event()
    entered = asyncio.Event()

    fake_upstream.hold(release, entered)
    client = await bridge({**upstream_at(fake_upstream.url), "MAX_CONCURRENCY": "1"})
    first = asyncio.ensure_future(client.post("/", data={"Message": "hi"}))
    await asyncio.wait_for(entered.wait(), 5)
    for path, kwargs in (("/", {"data": {"Message": "hi"}}),
                         ("/v1/chat/completions", {"json": {"model": "m", "messages": USER, "stream": True}})):
        resp = await client.post(path, **kwargs)
        assert resp.status == 503 and resp.headers["Retry-After"] == "1"
        assert "error" in await resp.json()
    release.set()
    assert (await (await first).json()) == {"Text": "Hello, world!"}


class BuggyUpstream:
    """A driver with a bug: it raises something that is not an UpstreamError mid-answer."""

    name = "buggy"
    first_event_timeout = None

    async def stream(self, request: Any) -> Any:
        from bridge.events import TextDelta

        yield [TextDelta("partial")]
        raise RuntimeError("driver bug")

    async def aclose(self) -> None:
        return None


async def test_unexpected_error_after_first_byte_still_ends_the_stream(bridge, log_stream):
    from bridge.inbound.context import SERVICES

    client = await bridge({})
    client.server.app[SERVICES].roster.default.pipeline.chain.upstreams = [BuggyUpstream()]
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert resp.status == 200
    events = parse_sse(await resp.text())
    assert "partial" in events[0]
    assert json.loads(events[-2])["error"]["code"] == "internal"
    assert events[-1] == "[DONE]"
    resp = await client.post("/", data={"Message": "hi"})  # nothing sent yet: a JSON 500, and a log line
    assert resp.status == 500 and "error" in await resp.json()
    assert log_lines(log_stream)[-1]["error_kind"] == "internal"
