"""POST /v1/chat/completions and /chat/completions, driven by the official openai SDK."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import openai
import pytest
from aiohttp import web

from tests.support.app import log_lines, sdk_client
from tests.support.upstream import FakeUpstream, sse, text_chunks

KEY = "sk-upstream-secret-0123456789"
TOKEN = "bridge-token-abcdef"
IMS_EXTEND = {"instanceId": "inst-1", "channelId": "ch-1", "sentenceId": 3, "callerNumber": "13800001234",
              "calleeNumber": "02188886666", "userData": '{"vip": true}'}


def env_for(fake: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": KEY, "BRIDGE_TOKENS": TOKEN, **extra}


def sdk(client: Any, path: str = "/v1", token: str = TOKEN) -> openai.AsyncOpenAI:
    return sdk_client(str(client.make_url(path)), token)


USER = [{"role": "user", "content": "hi"}]


@pytest.fixture(params=["aiohttp", "sdk"])
def bridge_defaults(request: pytest.FixtureRequest) -> dict[str, str]:
    """Every OpenAI endpoint test runs against both OpenAI drivers: the lean default and the SDK."""
    return {"OPENAI_CLIENT": request.param}


@pytest.mark.parametrize("base", ["/v1", ""])
async def test_streaming_deltas_arrive_in_order(bridge, fake_upstream, base):
    client = await bridge(env_for(fake_upstream, SPEECH_FILTER="off"))
    async with sdk(client, base) as oai:
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
        chunks = [chunk async for chunk in stream]
    texts = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    # The upstream's pieces in order; the pieces one network read brought are one chunk.
    assert "".join(texts) == "Hello, world!" and 1 <= len(texts) <= 4
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({c.id for c in chunks}) == 1
    assert fake_upstream.last.path == "/v1/chat/completions"


async def test_each_piece_reaches_the_caller_before_the_upstream_sends_the_next(bridge, fake_upstream):
    """Pieces that arrive in one read are one chunk, but none waits for a later read."""
    received = asyncio.Event()
    pieces = text_chunks(["One. ", "Two. ", "Three."])

    async def paced(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(pieces[:2], done=False))  # the role chunk and "One. "
        for piece in pieces[2:-1]:
            await received.wait()  # the caller has the last piece: only then the next
            received.clear()
            await response.write(sse([piece], done=False))
        await received.wait()
        await response.write(sse(pieces[-1:]))
        return response

    fake_upstream.handler = paced
    client = await bridge(env_for(fake_upstream, SPEECH_FILTER="off"))
    texts = []
    async with sdk(client) as oai:
        async for chunk in await oai.chat.completions.create(model="m", messages=USER, stream=True):
            if chunk.choices and chunk.choices[0].delta.content:
                texts.append(chunk.choices[0].delta.content)
                received.set()
    assert texts == ["One. ", "Two. ", "Three."]


async def test_speech_filter_keeps_plain_text(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))  # SPEECH_FILTER=on, the default
    async with sdk(client) as oai:
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
        texts = [c.choices[0].delta.content async for c in stream if c.choices and c.choices[0].delta.content]
    assert "".join(texts) == "Hello, world!"  # test_speech_filter.py: what is held back between pieces


async def test_non_streaming_completion(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        completion = await oai.chat.completions.create(model="m", messages=USER)
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello, world!"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens == 15


async def test_platform_fields_are_logged_and_dropped(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream, UPSTREAM_MODEL="qwen-turbo", SYSTEM_PROMPT="Speak briefly.",
                                  UPSTREAM_EXTRA_PARAMS="enable_thinking"))
    messages = [
        {"role": "system", "content": "You are a voice agent."},
        {"role": "user", "content": "hi", "turn_id": 7, "timestamp": 1700000000000,
         "metadata": {"source": "asr", "interrupted": False, "original": "hi"}},
    ]
    tools = [{"type": "function", "function": {"name": "hangup", "parameters": {"type": "object"}}}]
    async with sdk(client) as oai:
        await oai.chat.completions.create(
            model="client-model", messages=messages, stream=True, temperature=0.3, seed=5, tools=tools,
            user="u1", extra_body={"extendData": IMS_EXTEND, "context": {"presence": {"a": 1}}, "turn_id": 7,
                                   "enable_thinking": False, "top_k": 5},
            extra_query={"task_id": "t1", "room_id": "r1"},
        )
    sent = fake_upstream.last.json()
    assert set(sent) == {"model", "messages", "stream", "stream_options", "temperature", "seed", "tools", "user",
                         "enable_thinking"}  # the operator's UPSTREAM_EXTRA_PARAMS, and nothing unlisted
    assert sent["messages"] == [
        {"role": "system", "content": "Speak briefly."},
        {"role": "system", "content": "You are a voice agent."},
        {"role": "user", "content": "hi"},
    ]
    assert sent["model"] == "qwen-turbo"
    assert sent["temperature"] == 0.3 and sent["seed"] == 5 and sent["user"] == "u1"
    assert sent["tools"] == tools and sent["enable_thinking"] is False
    assert "inst-1" not in fake_upstream.last.body.decode()
    line = [entry for entry in log_lines(log_stream) if entry["event"] == "request"][-1]
    assert line["platform"] == "alibaba_ims"
    assert line["instance_id"] == "inst-1" and line["channel_id"] == "ch-1" and line["sentence_id"] == 3
    assert line["task_id"] == "t1" and line["room_id"] == "r1"
    assert line["caller"] == "138****1234"  # masked phone number
    assert "13800001234" not in log_stream.getvalue()
    assert line["dropped"] == ["context", "extendData", "messages[].metadata", "messages[].timestamp",
                               "messages[].turn_id", "top_k", "turn_id"]  # names only, never values


async def test_sentence_id_as_string_is_accepted(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        await oai.chat.completions.create(model="m", messages=USER, stream=True,
                                          extra_body={"extendData": {**IMS_EXTEND, "sentenceId": "3"}})
    assert log_lines(log_stream)[-1]["sentence_id"] == "3"


def tool_call_chunks() -> list[dict[str, Any]]:
    base = {"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1, "model": "m"}

    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    return [
        delta({"role": "assistant", "content": None, "tool_calls": [
            {"index": 0, "id": "call_abc", "type": "function", "function": {"name": "hangup", "arguments": ""}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '{"reason": '}}]}),
        delta({"tool_calls": [{"index": 0, "function": {"arguments": '"bye"}'}}]}),
        delta({"tool_calls": [{"index": 1, "id": "call_def", "type": "function",
                               "function": {"name": "log", "arguments": "{}"}}]}),
        delta({}, "tool_calls"),
    ]


async def test_tool_calls_stream_through_intact(bridge, fake_upstream):
    async def tools(request: web.Request) -> web.StreamResponse:
        return web.Response(body=sse(tool_call_chunks()), content_type="text/event-stream")

    fake_upstream.handler = tools
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
        chunks = [chunk async for chunk in stream]
        completion = await oai.chat.completions.create(model="m", messages=USER)
    calls = [tc for c in chunks if c.choices for tc in (c.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.id, tc.function.name, tc.function.arguments) for tc in calls] == [
        (0, "call_abc", "hangup", ""), (0, None, None, '{"reason": '), (0, None, None, '"bye"}'),
        (1, "call_def", "log", "{}"),
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls"
    assert [(t.id, t.function.name, t.function.arguments) for t in message.tool_calls] == [
        ("call_abc", "hangup", '{"reason": "bye"}'), ("call_def", "log", "{}")]


async def test_include_usage_passes_upstream_usage(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True,
                                                   stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
        plain = await oai.chat.completions.create(model="m", messages=USER, stream=True)
        plain_chunks = [chunk async for chunk in plain]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (11, 4)
    assert all(c.usage is None for c in plain_chunks)
    assert fake_upstream.requests[0].json()["stream_options"] == {"include_usage": True}


async def test_usage_is_estimated_when_upstream_gives_none(bridge, fake_upstream, log_stream):
    async def no_usage(request: web.Request) -> web.StreamResponse:
        return web.Response(body=sse(text_chunks(["Hello there"])), content_type="text/event-stream")

    fake_upstream.handler = no_usage
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True,
                                                   stream_options={"include_usage": True})
        chunks = [chunk async for chunk in stream]
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert log_lines(log_stream)[-1]["usage_estimated"] is True


async def test_client_disconnect_closes_upstream_promptly(bridge, fake_upstream, log_stream):
    never = asyncio.Event()

    async def slow(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(["first"])[:2], done=False))
        await never.wait()  # the rest of the answer never comes
        return response

    fake_upstream.handler = slow
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert b'"first"' in await resp.content.readuntil(b"\n\n")
    resp.close()  # the caller barges in
    await asyncio.wait_for(fake_upstream.disconnected.wait(), timeout=2)
    await client.close()  # waits for the bridge's handler to finish and log
    line = [entry for entry in log_lines(log_stream) if entry["event"] == "request"][-1]
    assert line["client_cancel"] is True and line["status"] == 499


async def test_mid_stream_drop_ends_with_error_event_then_done(bridge, fake_upstream):
    async def drop(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(["partial"])[:2], done=False))
        assert request.transport is not None
        request.transport.close()  # the upstream dies mid-answer
        return response

    fake_upstream.handler = drop
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200
    events = [e for e in (await resp.text()).split("\n\n") if e]
    assert '"partial"' in events[0]
    error = json.loads(events[-2].removeprefix("data: "))
    assert error["error"]["code"] == "upstream_connect" and error["error"]["message"]
    assert events[-1] == "data: [DONE]"
    assert len(fake_upstream.requests) == 1  # never retried once bytes went out


def status_handler(status: int, headers: dict[str, str] | None = None):
    async def handler(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": f"nope, key {KEY}", "type": "x"}}, status=status,
                                 headers=headers)
    return handler


@pytest.mark.parametrize(
    ("upstream_status", "headers", "status", "code"),
    [
        (401, None, 502, "upstream_auth"),
        (403, None, 502, "upstream_auth"),
        (429, {"Retry-After": "30"}, 429, "upstream_rate_limited"),
        (500, None, 502, "upstream_http"),
        (503, None, 502, "upstream_http"),
        (400, None, 400, "upstream_bad_request"),
    ],
)
async def test_upstream_errors_before_first_byte(bridge, fake_upstream, upstream_status, headers, status, code):
    fake_upstream.handler = status_handler(upstream_status, headers)
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code and set(body["error"]) == {"message", "type", "param", "code"}
    assert KEY not in json.dumps(body)
    if upstream_status in (401, 403):
        assert "credentials" in body["error"]["message"]
    if upstream_status == 429:
        assert resp.headers["Retry-After"] == "30"


async def test_sdk_sees_rate_limit_error(bridge, fake_upstream):
    fake_upstream.handler = status_handler(429, {"Retry-After": "30"})
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        with pytest.raises(openai.RateLimitError):
            await oai.chat.completions.create(model="m", messages=USER, stream=True)


async def test_connection_failure_is_502(bridge, unused_tcp_port):
    client = await bridge({"OPENAI_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert resp.status == 502
    assert (await resp.json())["error"]["code"] == "upstream_connect"


async def test_upstream_timeout_is_504(bridge, fake_upstream):
    never = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await never.wait()
        return web.Response()

    fake_upstream.handler = hang
    client = await bridge(env_for(fake_upstream, UPSTREAM_TTFT_TIMEOUT="0.2"))
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True},
                             headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 504
    assert (await resp.json())["error"]["code"] == "upstream_timeout"


async def test_bearer_auth(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with sdk(client, token="wrong") as oai:
        with pytest.raises(openai.AuthenticationError):
            await oai.chat.completions.create(model="m", messages=USER, stream=True)
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == "invalid_api_key"
    assert fake_upstream.requests == []


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b"[1, 2]", None),
        (b'{"model": "m"}', "messages"),
        (b'{"model": "m", "messages": []}', "messages"),
        (b'{"model": "m", "messages": "hi"}', "messages"),
        (b'{"model": "m", "messages": [{"role": "wizard", "content": "x"}]}', "messages[0].role"),
        (b'{"model": "m", "messages": [{"role": "user", "content": 3}]}', "messages[0].content"),
        (b'{"model": "m", "messages": [{"role": [], "content": "x"}]}', "messages[0].role"),
        (b'{"model": 5, "messages": [{"role": "user", "content": "x"}]}', "model"),
        (b'{"model": "m", "stream": "yes", "messages": [{"role": "user", "content": "x"}]}', "stream"),
        (b'{"model": "m", "temperature": "hot", "messages": [{"role": "user", "content": "x"}]}', "temperature"),
        (b'{"model": "m", "max_tokens": true, "messages": [{"role": "user", "content": "x"}]}', "max_tokens"),
        (b'{"model": "m", "n": 2, "messages": [{"role": "user", "content": "x"}]}', "n"),
    ],
)
async def test_bad_requests_are_400(bridge, fake_upstream, body, param):
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/v1/chat/completions", data=body,
                             headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]
    assert fake_upstream.requests == []


async def test_unknown_path_is_404_and_oversized_body_is_413(bridge):
    client = await bridge({"MAX_BODY_BYTES": "2048"})
    resp = await client.post("/v1/embeddings", json={})
    assert resp.status == 404
    assert (await resp.json())["error"]["code"] == "not_found"
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 4096}]}
    resp = await client.post("/v1/chat/completions", json=big)
    assert resp.status == 413
    assert "2048" in (await resp.json())["error"]["message"]


async def test_query_string_is_tolerated(bridge):
    client = await bridge()
    resp = await client.post("/chat/completions?task_id=1&room_id=2", json={"messages": USER})
    assert resp.status == 200
    assert (await resp.json())["choices"][0]["message"]["content"] == "You said: hi"
