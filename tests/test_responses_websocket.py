"""GET /v1/responses upgraded to a WebSocket (OpenAI's WebSocket mode), driven by a raw aiohttp client.

Message shapes: https://developers.openai.com/api/docs/guides/websocket-mode (`response.create`
events in, the streaming events out, `error` with a `status` for a refusal, a connection-local
cache for `previous_response_id` that works with `store: false`, one response at a time).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import aiohttp
import pytest
from aiohttp import WSMsgType, web

from bridge.inbound.context import SERVICES
from tests.support.responses import (
    AUTH,
    USAGE,
    WEATHER,
    connect,
    create,
    env_for,
    events_until_done,
    scripted,
    sent_messages,
    tool_call_chunks,
)
from tests.support.upstream import FakeUpstream, text_chunks


async def test_a_response_streams_the_same_events_as_over_http(bridge, fake_upstream):
    scripted(fake_upstream, text_chunks(["Hello", " there"], usage=USAGE))
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        events = await create(ws, input="hi", stream=True)  # `stream` is implied here: Pipecat still sends it
    kinds = [event["type"] for event in events]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done", "response.output_item.done",
                          "response.completed"]
    assert [event["sequence_number"] for event in events] == list(range(len(events)))
    done = events[-1]["response"]
    assert done["status"] == "completed" and done["output"][0]["content"][0]["text"] == "Hello there"
    assert done["usage"]["total_tokens"] == 15 and done["id"] == events[0]["response"]["id"]


async def test_store_false_continues_on_the_connection_and_nowhere_else(bridge, fake_upstream):
    scripted(fake_upstream, text_chunks(["Hi Ann."]), text_chunks(["You are Ann."]))
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        first = (await create(ws, input="I am Ann.", store=False))[-1]["response"]
        second = await create(ws, input="Who am I?", store=False, previous_response_id=first["id"])
    assert second[-1]["type"] == "response.completed"
    assert sent_messages(fake_upstream) == [
        {"role": "user", "content": "I am Ann."}, {"role": "assistant", "content": "Hi Ann."},
        {"role": "user", "content": "Who am I?"}]
    async with connect(client) as ws:  # another connection: not stored, so not found
        (error,) = await create(ws, input="Who am I?", previous_response_id=second[-1]["response"]["id"])
    assert error == {"type": "error", "status": 400, "error": {
        "message": f"Previous response with id '{second[-1]['response']['id']}' not found.",
        "type": "invalid_request_error", "param": "previous_response_id", "code": "previous_response_not_found"}}
    assert len(fake_upstream.requests) == 2


async def test_a_stored_response_continues_on_another_connection(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        first = (await create(ws, input="one"))[-1]["response"]
    async with connect(client) as ws:
        second = await create(ws, input="two", previous_response_id=first["id"])
    assert second[-1]["type"] == "response.completed"
    assert [m["content"] for m in sent_messages(fake_upstream)] == ["one", "Hello, world!", "two"]


async def test_a_tool_call_and_its_output(bridge, fake_upstream):
    refusals = scripted(fake_upstream, tool_call_chunks(), text_chunks(["Sunny."]))
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        first = await create(ws, input="Weather in Paris?", tools=[WEATHER], store=False)
        (call,) = first[-1]["response"]["output"]
        second = await create(ws, previous_response_id=first[-1]["response"]["id"], tools=[WEATHER], store=False,
                              input=[{"type": "function_call_output", "call_id": call["call_id"], "output": "sunny"}])
    kinds = [event["type"] for event in first]
    assert "response.function_call_arguments.delta" in kinds
    assert call["type"] == "function_call" and call["name"] == "get_weather" and call["call_id"] == "call_abc"
    assert json.loads(call["arguments"]) == {"city": "Paris"}
    assert second[-1]["response"]["output"][0]["content"][0]["text"] == "Sunny."
    assert refusals == [] and [m["role"] for m in sent_messages(fake_upstream)] == ["user", "assistant", "tool"]


async def test_a_new_response_create_cancels_the_one_in_flight(bridge, fake_upstream: FakeUpstream):
    release = asyncio.Event()
    fake_upstream.pause_midway(release)
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        await ws.send_str(json.dumps({"type": "response.create", "input": "tell me a story"}))
        first: list[dict[str, Any]] = []
        while not first or first[-1]["type"] != "response.output_text.delta":
            first.append(json.loads((await ws.receive()).data))
        fake_upstream.handler = None  # the next answer comes at once
        (cancelled,) = await create(ws, input="stop, what time is it?")  # the caller barged in: the first ends
        async with asyncio.timeout(5):
            await fake_upstream.disconnected.wait()  # and its upstream call was cancelled at once
        rest = await events_until_done(ws)
    assert cancelled["type"] == "response.failed" and cancelled["response"]["status"] == "cancelled"
    assert cancelled["response"]["id"] == first[0]["response"]["id"]
    assert rest[0]["type"] == "response.created" and rest[0]["sequence_number"] == 0
    assert rest[-1]["type"] == "response.completed" and rest[-1]["response"]["id"] != cancelled["response"]["id"]
    release.set()


async def test_response_cancel_and_closing_the_socket_cancel_the_upstream(bridge, fake_upstream: FakeUpstream):
    release = asyncio.Event()
    fake_upstream.pause_midway(release)
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        await ws.send_str(json.dumps({"type": "response.create", "input": "hi"}))
        while json.loads((await ws.receive()).data)["type"] != "response.output_text.delta":
            pass
        await ws.send_str(json.dumps({"type": "response.cancel"}))  # as Pipecat does on an interruption
        (ended,) = await events_until_done(ws)
        assert ended["type"] == "response.failed" and ended["response"]["status"] == "cancelled"
        async with asyncio.timeout(5):
            await fake_upstream.disconnected.wait()
        fake_upstream.disconnected.clear()
        await ws.send_str(json.dumps({"type": "response.create", "input": "again"}))
        while json.loads((await ws.receive()).data)["type"] != "response.output_text.delta":
            pass
    async with asyncio.timeout(5):  # the socket closed mid-answer
        await fake_upstream.disconnected.wait()
    release.set()


async def test_a_bad_message_is_an_error_and_the_connection_stays(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        await ws.send_str("{not json")
        (bad_json,) = await events_until_done(ws)
        await ws.send_str(json.dumps({"type": "session.update"}))
        (bad_type,) = await events_until_done(ws)
        (bad_field,) = await create(ws, input="hi", temperature="hot")
        await ws.send_bytes(b"\x00")
        (binary,) = await events_until_done(ws)
        good = await create(ws, input="hi")
    assert bad_json["status"] == bad_type["status"] == bad_field["status"] == binary["status"] == 400
    assert bad_type["error"]["param"] == "type" and bad_field["error"]["param"] == "temperature"
    assert good[-1]["type"] == "response.completed"


async def test_an_upstream_failure_is_response_failed(bridge, fake_upstream):
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "down"}}, status=503)

    fake_upstream.handler = broken
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        events = await create(ws, input="hi")
    assert [event["type"] for event in events] == ["response.created", "response.in_progress", "response.failed"]
    failed = events[-1]["response"]
    assert failed["status"] == "failed" and failed["error"]["code"] == "server_error" and failed["error"]["message"]


async def test_generate_false_warms_up_without_an_answer(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        warm = await create(ws, input=[{"role": "user", "content": "I am Ann."}], generate=False, store=False)
        answer = await create(ws, input="Who am I?", previous_response_id=warm[-1]["response"]["id"], store=False)
    assert [event["type"] for event in warm] == ["response.created", "response.in_progress", "response.completed"]
    assert warm[-1]["response"]["output"] == [] and len(fake_upstream.requests) == 1
    assert answer[-1]["type"] == "response.completed"
    assert [m["content"] for m in sent_messages(fake_upstream)] == ["I am Ann.", "Who am I?"]


async def test_a_refused_token_is_refused_before_the_upgrade(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        async with connect(client, headers={"Authorization": "Bearer wrong"}):
            pass
    assert caught.value.status == 401
    async with connect(client, "/agents/default/responses") as ws:
        assert (await create(ws, input="hi"))[-1]["type"] == "response.completed"


async def test_each_response_is_logged_and_the_platform_recognised(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream))
    async with connect(client, "/v1/responses?model=gpt-4.1") as ws:  # LiveKit's Responses client adds ?model=
        await create(ws, input="hi")
    async with connect(client, headers={**AUTH, "User-Agent": "Python/3.12 websockets/15.0.1"}) as ws:  # Pipecat's
        await create(ws, input="hi")
    turns = [line for line in await _lines(log_stream, 2) if line.get("method") == "WEBSOCKET"]
    assert [(t["platform"], t["status"], t["route"]) for t in turns] == [("livekit", 200, "/v1/responses"),
                                                                        ("pipecat", 200, "/v1/responses")]
    assert all(t["upstream"] == "openai" and "usage" in t for t in turns)
    metrics = await (await client.get("/metrics")).text()
    assert 'bridge_requests_total{agent="default",route="/v1/responses",status="200"} 2.0' in metrics
    assert 'bridge_requests_total{agent="default",route="/v1/responses",status="101"} 2.0' in metrics


async def _lines(log_stream: Any, websocket_turns: int) -> list[dict[str, Any]]:
    from tests.support.app import log_lines

    await log_stream.wait_for_line(lambda line: len([1 for other in log_lines(log_stream)
                                                     if other.get("status") == 101]) >= websocket_turns)
    return log_lines(log_stream)


async def test_the_drain_closes_an_idle_socket(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with connect(client) as ws:
        await create(ws, input="hi")
        client.server.app[SERVICES].closing.set()  # what the drain sets when the listener closes
        async with asyncio.timeout(5):
            message = await ws.receive()
    assert message.type is WSMsgType.CLOSE and message.data == aiohttp.WSCloseCode.GOING_AWAY
