"""Spec driver behaviour beyond the happy path: streaming as it arrives, early close, async polling,
missing values, fallbacks, malformed provider output, secrets."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from bridge.config import read_settings
from bridge.errors import UpstreamError
from bridge.events import TextDelta
from bridge.request import ChatRequest
from bridge.upstreams import build_upstream
from tests.support import spec_fakes as fakes
from tests.support.spec_cases import (
    KEY,
    MESSAGES,
    MODEL,
    PIECES,
    TEXT,
    ask_form,
    ask_openai,
    lingyi_signature_ok,
    sdk,
)
from tests.support.upstream import FakeUpstream

SPECS = Path(__file__).resolve().parents[1] / "specs"


def gated(first: bytes, rest: list[bytes], release: asyncio.Event, content_type: str) -> fakes.Handler:
    """Sends `first`, then waits for `release` before sending the rest."""

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": content_type})
        await response.prepare(request)
        await response.write(first)
        await release.wait()
        for frame in rest:
            await response.write(frame)
        await response.write_eof()
        return response

    return handler


@pytest.mark.parametrize("upstream", ["dashscope", "ollama"])
async def test_deltas_arrive_before_the_provider_finishes(upstream: str, bridge, fake_upstream: FakeUpstream) -> None:
    release = asyncio.Event()
    if upstream == "dashscope":
        frame = 'id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"choices":[{"message":{"content":"%s"},' \
                '"finish_reason":"%s"}]}}\n\n'
        first, rest = (frame % ("Hel", "null")).encode(), [(frame % ("lo", "stop")).encode()]
        content_type = "text/event-stream"
    else:
        line = '{"message":{"role":"assistant","content":"%s"},"done":%s}\n'
        first, rest = (line % ("Hel", "false")).encode(), [(line % ("lo", "true")).encode()]
        content_type = "application/x-ndjson"
    fake_upstream.handler = gated(first, rest, release, content_type)
    client = await bridge({"UPSTREAM": upstream, "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY})
    async with sdk(client) as api:
        stream = await api.chat.completions.create(model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
        texts = []
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
                release.set()  # the provider sends the rest only once the first delta reached us
    assert texts == ["Hel", "lo"]


async def test_closing_the_stream_early_closes_the_provider_connection(fake_upstream: FakeUpstream) -> None:
    go = asyncio.Event()

    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        await response.write(b'{"message":{"content":"first"},"done":false}\n')
        await go.wait()
        for _ in range(1000):
            await response.write(b'{"message":{"content":"more"},"done":false}\n')
            await asyncio.sleep(0)
        return response

    fake_upstream.handler = endless
    settings = read_settings({"UPSTREAM": "ollama", "UPSTREAM_BASE_URL": fake_upstream.url})
    upstream = build_upstream("ollama", settings)
    events = upstream.stream(ChatRequest(list(MESSAGES), model=MODEL, route="test"))
    assert await anext(events) == [TextDelta("first")]
    await events.aclose()
    go.set()
    await asyncio.wait_for(fake_upstream.disconnected.wait(), 5)
    await upstream.aclose()


async def test_async_task_polls_until_done(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.async_task(TEXT, running_polls=1)
    client = await bridge({"UPSTREAM": "async-task", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY})
    assert await ask_form(client) == (200, {"Text": TEXT})
    assert [(r.method, r.path) for r in fake_upstream.requests] == [
        ("POST", "/api/v1/services/aigc/text-generation/generation"),
        ("GET", "/api/v1/tasks/task-42"), ("GET", "/api/v1/tasks/task-42")]


async def test_async_task_that_never_finishes_times_out(bridge, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    doc = json.loads((SPECS / "async-task.json").read_text())
    doc["calls"]["chat"].update(poll_interval=0.01, poll_timeout=0.05)
    (tmp_path / "slow.json").write_text(json.dumps(doc))
    fake_upstream.handler = fakes.async_task(TEXT, running_polls=10**6)
    client = await bridge({"UPSTREAM": str(tmp_path / "slow.json"), "UPSTREAM_BASE_URL": fake_upstream.url,
                           "UPSTREAM_API_KEY": KEY, "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (504, "upstream_timeout")
    assert "0.05s" in body["error"]


def fast_async_spec(tmp_path: Path, **call: Any) -> str:
    doc = json.loads((SPECS / "async-task.json").read_text())
    doc["calls"]["chat"].update(call)
    (tmp_path / "fast.json").write_text(json.dumps(doc))
    return str(tmp_path / "fast.json")


async def test_async_task_may_take_longer_than_the_first_token_timeout(bridge, fake_upstream: FakeUpstream,
                                                                     tmp_path: Path) -> None:
    spec = fast_async_spec(tmp_path, poll_interval=0.05, poll_timeout=5)
    fake_upstream.handler = fakes.async_task(TEXT, running_polls=6)  # done after >= 0.35s
    client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
                           "UPSTREAM_TTFT_TIMEOUT": "0.1", "FALLBACK_TEXT": ""})
    assert await ask_form(client) == (200, {"Text": TEXT})
    assert [r.method for r in fake_upstream.requests] == ["POST"] + ["GET"] * 7


@pytest.mark.parametrize("status", [503, 429])
async def test_a_failed_poll_never_submits_the_job_again(status: int, bridge, fake_upstream: FakeUpstream,
                                                         tmp_path: Path) -> None:
    spec = fast_async_spec(tmp_path, poll_interval=0.01)

    async def poll_fails(request: web.Request) -> web.Response:
        if request.method == "POST":
            return web.json_response({"output": {"task_id": "task-42", "task_status": "PENDING"}})
        return web.json_response({"message": "busy"}, status=status)

    fake_upstream.handler = poll_fails
    client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
                           "FALLBACK_TEXT": ""})
    status_, body = await ask_form(client)
    assert (status_, body["kind"]) == (502, "upstream_error")
    assert f"HTTP {status}" in body["error"] and "busy" in body["error"]
    assert [r.method for r in fake_upstream.requests] == ["POST", "GET"]  # one job, billed once


def write_spec(tmp_path: Path, call: dict[str, Any], **top: Any) -> str:
    doc = {"name": "custom", "calls": {"chat": call}, **top}
    file = tmp_path / "custom.json"
    file.write_text(json.dumps(doc))
    return str(file)


SYNC_CALL = {"path": "/ask", "apitype": "sync", "resp": [{"name": "content", "value": "answer"}]}


async def test_a_placeholder_without_a_value_is_named(bridge, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {**SYNC_CALL, "data": [{"name": "session", "value": "ims-${extend.instance_id}"}]})
    fake_upstream.handler = fakes.json_body({"answer": "ok"})
    client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url, "FALLBACK_TEXT": ""})
    resp = await client.post("/", data={"Message": "hi"})  # no ExtendData, so no instance id
    body = await resp.json()
    assert (resp.status, body["kind"]) == (502, "upstream_config")
    assert "calls.chat.data[0]" in body["error"] and "${extend.instance_id}" in body["error"]
    assert fake_upstream.requests == []
    assert await ask_form(client) == (200, {"Text": "ok"})  # with ExtendData it is there
    assert fake_upstream.last.json() == {"session": "ims-inst-1"}


async def test_request_input_only_fills_escaped_path_segments(bridge, fake_upstream: FakeUpstream,
                                                              tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {**SYNC_CALL, "path": "/models/${model}/ask", "method": "GET"})
    raw_paths = []

    async def answer(request: web.Request) -> web.Response:
        raw_paths.append(request.raw_path)
        return web.json_response({"answer": "ok"})

    fake_upstream.handler = answer
    client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url})
    async with sdk(client) as api:
        reply = await api.chat.completions.create(model="../../admin?x=1#", messages=MESSAGES)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "ok"
    assert raw_paths == ["/models/..%2F..%2Fadmin%3Fx%3D1%23/ask"]  # sent exactly as escaped
    assert fake_upstream.last.query == {}


@pytest.mark.parametrize("model", ["..", "."])
async def test_a_dot_segment_from_request_input_is_refused(model: str, bridge, fake_upstream: FakeUpstream,
                                                           tmp_path: Path) -> None:
    spec = write_spec(tmp_path, {**SYNC_CALL, "path": "/models/${model}/ask", "method": "GET"})
    fake_upstream.handler = fakes.json_body({"answer": "ok"})
    client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url})
    with pytest.raises(openai.BadRequestError) as caught:
        async with sdk(client) as api:
            await api.chat.completions.create(model=model, messages=MESSAGES)  # type: ignore[arg-type]
    assert caught.value.body["code"] == "upstream_bad_request"  # type: ignore[index]
    assert "calls.chat.path" in caught.value.message
    assert fake_upstream.requests == []  # never sent as /models/ask or /ask


async def test_the_signed_path_is_the_path_sent(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.lingyi_stream(PIECES)
    client = await bridge({"UPSTREAM": "lingyi", "UPSTREAM_BASE_URL": fake_upstream.url + "/gw/%7Eteam",
                           "LINGYI_AK": "ak-lingyi", "LINGYI_SK": "sk-lingyi-secret"})
    assert await ask_form(client) == (200, {"Text": TEXT})
    assert fake_upstream.last.path == "/gw/~team/api/01bot/sse-gateway/stream"
    assert lingyi_signature_ok(fake_upstream.last, "ak-lingyi", "sk-lingyi-secret")  # signed "/gw/~team/..." too


async def test_a_dot_task_id_from_the_provider_is_refused(bridge, fake_upstream: FakeUpstream) -> None:
    async def submit_only(request: web.Request) -> web.Response:
        return web.json_response({"output": {"task_id": "..", "task_status": "PENDING"}})

    fake_upstream.handler = submit_only
    client = await bridge({"UPSTREAM": "async-task", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
                           "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_protocol")
    assert [r.method for r in fake_upstream.requests] == ["POST"]  # no GET /api/v1/tasks/%2E%2E -> /api/v1/


async def test_fallback_spec_does_not_receive_the_primary_key(bridge, fake_upstream: FakeUpstream) -> None:
    async def route(request: web.Request) -> web.StreamResponse:
        if request.path == "/api/chat":
            return await fakes.ollama_stream(PIECES, 3, 4)(request)
        return await fakes.minimax_error(1008, "insufficient balance")(request)

    fake_upstream.handler = route
    fallbacks = json.dumps([{"upstream": "ollama", "base_url": fake_upstream.url}])
    client = await bridge({"UPSTREAM": "minimax", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
                           "MINIMAX_GROUP_ID": "g", "UPSTREAM_FALLBACKS": fallbacks})
    text, usage = await ask_openai(client)
    assert (text, usage.prompt_tokens, usage.completion_tokens) == (TEXT, 3, 4)
    assert [r.path for r in fake_upstream.requests] == ["/v1/text/chatcompletion_pro", "/api/chat"]
    assert "Authorization" not in fake_upstream.last.headers


@pytest.mark.parametrize(("body", "kind", "status"), [
    (b'not json\n', "upstream_protocol", 502),
    (b'{"error":"model requires more system memory"}\n', "upstream_error", 502),
])
async def test_malformed_or_failed_ndjson(body: bytes, kind: str, status: int, bridge,
                                          fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.raw_stream([body], content_type="application/x-ndjson")
    client = await bridge({"UPSTREAM": "ollama", "UPSTREAM_BASE_URL": fake_upstream.url})
    with pytest.raises(openai.APIStatusError) as caught:
        await ask_openai(client)
    assert (caught.value.status_code, caught.value.body["code"]) == (status, kind)  # type: ignore[index]


async def test_stream_cut_before_its_done_marker_is_an_error(bridge, fake_upstream: FakeUpstream) -> None:
    start = {"type": "message_start", "message": {"usage": {"input_tokens": 1}}}
    frames = [f"event: message_start\ndata: {json.dumps(start)}\n\n"]
    fake_upstream.handler = fakes.raw_stream(frames)
    client = await bridge({"UPSTREAM": "anthropic", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
                           "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_protocol")


async def test_error_event_after_text_ends_the_openai_stream_with_an_error(bridge, fake_upstream: FakeUpstream) -> None:
    delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hel"}}
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    fake_upstream.handler = fakes.raw_stream([f"event: content_block_delta\ndata: {json.dumps(delta)}\n\n",
                                              f"event: error\ndata: {json.dumps(error)}\n\n"])
    client = await bridge({"UPSTREAM": "anthropic", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY})
    texts: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        async with sdk(client) as api:
            stream = await api.chat.completions.create(
                model="m", messages=MESSAGES, stream=True)  # type: ignore[arg-type]
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    texts.append(chunk.choices[0].delta.content)
    assert texts == ["Hel"]
    assert "Overloaded" in caught.value.message


async def test_provider_error_text_never_carries_our_secrets(fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.openai_error(400, f"Incorrect API key provided: {KEY}")
    settings = read_settings({"UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY})
    upstream = build_upstream(str(SPECS / "openai.json"), settings)
    with pytest.raises(UpstreamError) as caught:
        await anext(upstream.stream(ChatRequest(list(MESSAGES), model=MODEL, route="test")))
    await upstream.aclose()
    assert caught.value.kind == "upstream_bad_request"
    assert "Incorrect API key provided: [redacted]" in caught.value.message


@pytest.mark.parametrize("body", [
    {"error": {"code": "engine_overloaded", "type": "server_error"}},  # an error object without a message
    {"error": {"msg": "engine_overloaded"}},
    {"msg": "engine_overloaded"},
])
async def test_an_http_error_body_is_read_like_an_error_payload(body: dict, bridge, fake_upstream: FakeUpstream,
                                                                tmp_path: Path) -> None:
    spec = write_spec(tmp_path, SYNC_CALL)
    fake_upstream.handler = fakes.json_body(body, status=500)
    client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url, "FALLBACK_TEXT": ""})
    status, answer = await ask_form(client)
    assert (status, answer["kind"]) == (502, "upstream_http")
    assert "HTTP 500: " in answer["error"] and "engine_overloaded" in answer["error"]

    fake_upstream.handler = fakes.json_body(body)  # the same error in a 200 answer
    spec = write_spec(tmp_path, {**SYNC_CALL, "resp": [*SYNC_CALL["resp"], {"name": "error", "value": "error"}]})
    if "error" in body:
        client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url, "FALLBACK_TEXT": ""})
        status, answer = await ask_form(client)
        assert (status, answer["kind"]) == (502, "upstream_error")
        assert "engine_overloaded" in answer["error"]


async def test_the_specs_own_env_values_never_reach_an_error_text(bridge, fake_upstream: FakeUpstream,
                                                                  tmp_path: Path) -> None:
    account = "acct-9f8e7d6c5b4a"  # a name and a value the app-wide redactor does not recognise as secret
    spec = write_spec(tmp_path, {**SYNC_CALL, "headers": [
        {"name": "X-Account", "value": "${env.ACME_ACCOUNT}", "converter": "int"}]})
    client = await bridge({"UPSTREAM": spec, "UPSTREAM_BASE_URL": fake_upstream.url, "ACME_ACCOUNT": account,
                           "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_config")
    assert "int: cannot convert" in body["error"] and "[redacted]" in body["error"]
    assert account not in body["error"] and account[:10] not in body["error"]
    assert fake_upstream.requests == []


async def test_unreachable_provider_is_a_connect_error(bridge, unused_tcp_port: int) -> None:
    client = await bridge({"UPSTREAM": "ollama", "UPSTREAM_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}",
                           "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_connect")


@contextmanager
def listener_that_never_accepts() -> Iterator[str]:
    """A loopback port whose accept queue is full: the kernel drops new SYNs, so connecting times out."""
    with socket.socket() as server, socket.socket() as filler:
        server.bind(("127.0.0.1", 0))
        server.listen(0)
        filler.settimeout(5)
        filler.connect(server.getsockname())  # takes the one place in the queue; never accepted
        yield f"http://127.0.0.1:{server.getsockname()[1]}"


async def test_a_connect_timeout_is_a_connect_error_and_retried(bridge) -> None:
    with listener_that_never_accepts() as url:
        client = await bridge({"UPSTREAM": "ollama", "UPSTREAM_BASE_URL": url, "UPSTREAM_CONNECT_TIMEOUT": "0.1",
                               "FALLBACK_TEXT": ""})
        status, body = await ask_form(client)
        metrics = await (await client.get("/metrics")).text()
    assert (status, body["kind"]) == (502, "upstream_connect")
    assert 'bridge_upstream_errors_total{kind="upstream_connect",upstream="ollama"} 2.0' in metrics


async def test_api_key_from_the_spec_variable(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.dashscope_stream(PIECES)
    client = await bridge({"UPSTREAM": "dashscope", "UPSTREAM_BASE_URL": fake_upstream.url,
                           "DASHSCOPE_API_KEY": "sk-from-dashscope-var"})
    assert await ask_form(client) == (200, {"Text": TEXT})
    assert fake_upstream.last.headers["Authorization"] == "Bearer sk-from-dashscope-var"


async def test_a_stream_without_any_payload_is_an_error(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.raw_stream(["<html>gateway says hi</html>"], content_type="text/html")
    client = await bridge({"UPSTREAM": "lingyi", "UPSTREAM_BASE_URL": fake_upstream.url, "LINGYI_AK": "a",
                           "LINGYI_SK": "b", "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_protocol")
    assert "no payload" in body["error"]
