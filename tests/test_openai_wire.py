"""The OpenAI drivers on awkward but legal wire behaviour, against real loopback servers."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from bridge.deadline import Deadline
from bridge.upstreams.openai_stream import MAX_LINE
from tests.conftest import FakeUpstream, sse, text_chunks

USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["aiohttp", "sdk"])
def bridge_defaults(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"OPENAI_CLIENT": request.param}


async def test_last_line_without_newline_is_still_read(bridge, fake_upstream: FakeUpstream) -> None:
    async def no_trailing_newline(request: web.Request) -> web.StreamResponse:
        body = sse(text_chunks(["Hello", " there"]), done=False).rstrip(b"\n")
        return web.Response(body=body, content_type="text/event-stream")

    fake_upstream.handler = no_trailing_newline
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/", data={"Message": "hi"})
    assert await resp.json() == {"Text": "Hello there"}


async def test_idle_deadline_shorter_than_first_token_deadline_fires_on_time(bridge, fake_upstream) -> None:
    async def stalls_after_first_token(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(["partial"])[:2], done=False))
        await fake_upstream.disconnected.wait()  # silent until the bridge gives up
        return response

    fake_upstream.handler = stalls_after_first_token
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "UPSTREAM_TTFT_TIMEOUT": "5",
                           "UPSTREAM_IDLE_TIMEOUT": "0.2"})
    started = time.monotonic()
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    text = await resp.text()
    assert "upstream_timeout" in text and text.rstrip().endswith("data: [DONE]")
    assert time.monotonic() - started < 2  # the 0.2 s idle deadline, not the 5 s first-token one


async def test_connection_is_reused_when_done_comes_before_the_body_end(bridge, fake_upstream,
                                                                         bridge_defaults) -> None:
    if bridge_defaults["OPENAI_CLIENT"] == "sdk":
        pytest.skip("the SDK manages its own connection pool")
    peers: set[object] = set()

    async def done_then_end(request: web.Request) -> web.StreamResponse:
        peers.add(request.transport.get_extra_info("peername") if request.transport else None)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(["ok"])))
        await asyncio.sleep(0.02)  # network timing: the chunked terminator comes a moment later
        await response.write_eof()
        return response

    fake_upstream.handler = done_then_end
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    for _ in range(3):
        assert await (await client.post("/", data={"Message": "hi"})).json() == {"Text": "ok"}
    assert len(peers) == 1  # one pooled upstream connection served all three


async def test_an_endless_line_is_a_protocol_error(bridge, fake_upstream) -> None:
    async def endless_line(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'data: {"x": "')
        block = b"y" * 65536
        for _ in range(MAX_LINE // len(block) + 2):
            await response.write(block)
        await fake_upstream.disconnected.wait()  # and the line never ends
        return response

    fake_upstream.handler = endless_line
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "UPSTREAM_IDLE_TIMEOUT": "30"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "upstream_protocol"


async def test_error_body_split_across_writes_keeps_the_whole_message(bridge, fake_upstream) -> None:
    async def split_429(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=429, headers={"Content-Type": "application/json", "Retry-After": "30"})
        await response.prepare(request)
        await response.write(b'{"error": {"message": "rate lim')
        await asyncio.sleep(0.02)  # network timing: the rest of the body comes a moment later
        await response.write(b'it reached for this model"}}')
        return response

    fake_upstream.handler = split_429
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status == 429
    assert "rate limit reached for this model" in (await resp.json())["error"]["message"]


async def test_a_hang_up_at_the_deadline_is_not_mistaken_for_a_timeout() -> None:
    loop = asyncio.get_running_loop()

    async def waiting_for_upstream() -> tuple[bool, int]:
        deadline = Deadline(loop.time(), grace=1.0)  # due at once
        loop.call_soon(task.cancel)  # and the caller hangs up in the same loop pass
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return deadline.absorb(), task.cancelling()
        finally:
            deadline.close()
        raise AssertionError("not cancelled")

    task = asyncio.ensure_future(waiting_for_upstream())
    absorbed, still_cancelling = await task
    assert absorbed is False and still_cancelling == 1  # the hang-up stands: no fallback for a gone caller


async def test_a_deadline_alone_is_absorbed() -> None:
    loop = asyncio.get_running_loop()

    async def waiting_for_upstream() -> tuple[bool, int]:
        deadline = Deadline(loop.time(), grace=1.0)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return deadline.absorb(), asyncio.current_task().cancelling()  # type: ignore[union-attr]
        raise AssertionError("not cancelled")

    assert await asyncio.ensure_future(waiting_for_upstream()) == (True, 0)
