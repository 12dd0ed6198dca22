"""The OpenAI drivers on awkward but legal wire behaviour, against real loopback servers."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiohttp import web

from bridge.config import DEFAULT_FAILURE_TEXT
from bridge.pipeline.deadline import Deadline
from bridge.upstreams.openai.stream import MAX_LINE
from tests.support.app import log_lines
from tests.support.upstream import FakeUpstream, sse, text_chunks

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
        deadline = Deadline(loop, loop.time(), grace=1.0)  # due at once
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
        deadline = Deadline(loop, loop.time(), grace=1.0)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            return deadline.absorb(), asyncio.current_task().cancelling()  # type: ignore[union-attr]
        raise AssertionError("not cancelled")

    assert await asyncio.ensure_future(waiting_for_upstream()) == (True, 0)


async def raw_upstream(response: bytes) -> tuple[asyncio.AbstractServer, str]:
    """A loopback server that answers every request with exactly `response`, then closes."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(response)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/v1"


async def test_an_answer_ending_in_done_survives_a_cut_chunked_body(bridge) -> None:
    """[DONE] came, then the connection closed without chunked encoding's final zero-length chunk."""
    payload = sse(text_chunks(["complete", " answer"]))
    response = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                + f"{len(payload):x}\r\n".encode() + payload + b"\r\n")  # no "0\r\n\r\n"
    server, url = await raw_upstream(response)
    async with server:
        client = await bridge({"OPENAI_BASE_URL": url})
        resp = await client.post("/", data={"Message": "hi"})
        assert await resp.json() == {"Text": "complete answer"}
        resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
        assert "upstream_connect" not in await resp.text()


async def test_bare_cr_line_endings_are_read(bridge, fake_upstream) -> None:
    async def cr_only(request: web.Request) -> web.StreamResponse:
        body = sse(text_chunks(["carriage", " returns"])).replace(b"\n", b"\r")
        return web.Response(body=body, content_type="text/event-stream")

    fake_upstream.handler = cr_only
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    assert await (await client.post("/", data={"Message": "hi"})).json() == {"Text": "carriage returns"}


async def test_a_line_over_the_cap_is_refused_even_when_it_ends(bridge, fake_upstream) -> None:
    async def huge_line(request: web.Request) -> web.StreamResponse:
        chunk = text_chunks(["x" * (MAX_LINE + 1024)])[1]
        return web.Response(body=sse([chunk]), content_type="text/event-stream")

    fake_upstream.handler = huge_line
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status == 502 and (await resp.json())["error"]["code"] == "upstream_protocol"


async def test_a_refused_upstream_is_logged_with_its_address_and_reason(bridge, log_stream, unused_tcp_port) -> None:
    client = await bridge({"OPENAI_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}/v1"})
    await client.post("/", data={"Message": "hi"})
    error = log_lines(log_stream)[-1]["error"]
    assert f"127.0.0.1:{unused_tcp_port}" in error
    assert "refused" in error.lower() or "connect call failed" in error.lower()


async def test_an_error_object_in_a_200_json_body_keeps_the_providers_message(bridge, fake_upstream,
                                                                              log_stream) -> None:
    async def error_200(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "model is overloaded, try later", "type": "server_error"}})

    fake_upstream.handler = error_200
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    body = await resp.json()
    assert resp.status == 502 and body["error"]["code"] == "upstream_error"
    assert "model is overloaded, try later" in body["error"]["message"]


async def test_a_whole_completion_instead_of_a_stream_is_read(bridge, fake_upstream) -> None:
    async def not_streamed(request: web.Request) -> web.Response:
        return web.json_response({"id": "c1", "object": "chat.completion", "created": 1, "model": "m",
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": "whole"},
                                               "finish_reason": "stop"}],
                                  "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})

    fake_upstream.handler = not_streamed
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    assert await (await client.post("/", data={"Message": "hi"})).json() == {"Text": "whole"}


async def test_a_key_straddling_the_message_cut_is_still_masked(bridge, fake_upstream, log_stream) -> None:
    key = "sk-straddle-0123456789abcdefghij"

    async def long_error(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "x" * 290 + f" your key {key} is invalid"}}, status=500)

    fake_upstream.handler = long_error
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "OPENAI_API_KEY": key})
    text = await (await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})).text()
    for fragment in (key[:12], key[-12:]):
        assert fragment not in text and fragment not in log_stream.getvalue()


def test_every_driver_pools_as_many_connections_as_max_concurrency() -> None:
    from bridge.config import read_settings
    from bridge.upstreams import build_upstream

    for client in ("aiohttp", "sdk"):
        settings = read_settings({"OPENAI_CLIENT": client, "MAX_CONCURRENCY": "1200"})
        upstream = build_upstream("openai", settings)
        if client == "aiohttp":
            assert upstream.http.max_connections == 1200  # type: ignore[attr-defined]
        else:
            limits = upstream.client._client._transport.limits  # type: ignore[attr-defined]
            assert limits.max_connections == 1200


@pytest.mark.parametrize(("status", "body", "code"), [
    (200, b'data: {"id":"c","x":' + b"[" * 1500 + b"]" * 1500 + b"}\n\n", "upstream_protocol"),  # msgspec's recursion
    (400, b'{"error":{"message":' + b"[" * 300 + b"]" * 300 + b"}}", "upstream_bad_request"),  # orjson's dumps limit
])
async def test_deep_nesting_from_the_upstream_is_its_failure_not_a_500(bridge, fake_upstream, status, body, code):
    """A provider's deeply nested JSON (in a chunk, or in its error message) is the upstream's
    failure, answered like any other: never a 500 that skips retries, backups and the phrase."""
    async def nested(request: web.Request) -> web.Response:
        kind = "text/event-stream" if status == 200 else "application/json"
        return web.Response(status=status, body=body, content_type=kind)

    fake_upstream.handler = nested
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status in (400, 502) and (await resp.json())["error"]["code"] == code
    form = await client.post("/", data={"Message": "hi"})
    assert (await form.json()) == {"Text": DEFAULT_FAILURE_TEXT}


@pytest.mark.parametrize("pieces", [["x" * 100] * 50, ["x" * 5000]], ids=["paced", "one_chunk"])
async def test_an_answer_past_max_answer_chars_is_the_upstreams_failure(bridge, fake_upstream, pieces):
    """MAX_ANSWER_CHARS bounds one upstream answer: past it the answer is cut as the upstream's
    failure (never held whole, never grown without a bound), after what was already sent."""
    async def long_answer(request: web.Request) -> web.Response:
        return web.Response(body=sse(text_chunks(pieces)), content_type="text/event-stream")

    fake_upstream.handler = long_answer
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "MAX_ANSWER_CHARS": "4096"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    error = (await resp.json())["error"]
    assert resp.status == 502 and error["code"] == "upstream_protocol"
    assert "longer than 4096 characters (MAX_ANSWER_CHARS)" in error["message"]
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    body = (await resp.read()).decode()  # one read may carry it all: then the 502 comes before any byte
    sent = [line for line in body.splitlines() if line.startswith("data: {")] or [body]
    assert '"upstream_protocol"' in sent[-1] and "[DONE]" not in body
    assert sum(line.count("x") for line in sent[:-1]) <= 4096
