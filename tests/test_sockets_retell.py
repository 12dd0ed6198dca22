"""Retell's custom LLM end to end: a client sending the documented events, the real app, a strict
OpenAI upstream. The opening, ping-pong, the transcript as history, supersession, call control."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from tests.support.app import BridgeFactory, LogStream, log_lines
from tests.support.socket_clients import ANSWER, RETELL, RetellClient, messages_sent, strict, tool_call, upstream_env
from tests.support.strict_openai import strict_openai
from tests.support.upstream import FakeUpstream, sse, text_chunks

CALL_ID = RETELL["from_platform"]["call_details"]["call"]["call_id"]


async def retell(client: TestClient, path: str = f"/retell/{CALL_ID}") -> RetellClient:
    platform = RetellClient(await client.ws_connect(path), RETELL)
    await platform.opening()
    return platform


async def test_the_opening_is_config_then_the_begin_response(bridge: BridgeFactory) -> None:
    client = await bridge({"UPSTREAM": "echo"})
    platform = RetellClient(await client.ws_connect(f"/retell/{CALL_ID}"), RETELL)
    config, begin = await platform.opening()
    assert config == RETELL["to_platform"]["config"]
    assert begin == {"response_type": "response", "response_id": 0, "content": "", "content_complete": True}
    client = await bridge({"UPSTREAM": "echo", "GREETING": "Thanks for calling Acme."})
    platform = RetellClient(await client.ws_connect(f"/retell/{CALL_ID}"), RETELL)
    assert (await platform.opening())[1]["content"] == "Thanks for calling Acme."


async def test_call_details_ping_pong_and_update_only(bridge: BridgeFactory, fake_upstream: FakeUpstream,
                                                      log_stream: LogStream) -> None:
    strict_openai(fake_upstream, ANSWER)
    client = await bridge(upstream_env(fake_upstream))
    platform = await retell(client)
    await platform.send("call_details")
    await platform.send("ping_pong")
    assert await platform.next() == RETELL["to_platform"]["ping_pong"]
    await platform.send("update_only")  # nothing to answer
    await platform.send("ping_pong", timestamp=1703302407334)
    assert await platform.next() == {"response_type": "ping_pong", "timestamp": 1703302407334}
    assert fake_upstream.requests == []
    await platform.ws.close()
    line = await log_stream.wait_for_line(lambda r: r.get("status") == 101)
    assert line["platform"] == "retell" and line["call_id"] == CALL_ID and line["route"] == "/retell/{call_id}"
    assert line["agent_id"] == "oBeDLoLOeuAbiuaMFXRtDOLriTJ5tSxD"
    assert line["from_number"] == "+12*****1234" and line["to_number"] == "+12*****1235"
    assert line["turns"] == 0


async def test_the_transcript_is_the_history(bridge: BridgeFactory, fake_upstream: FakeUpstream,
                                             log_stream: LogStream) -> None:
    refused = strict_openai(fake_upstream, ANSWER)
    client = await bridge(upstream_env(fake_upstream, SYSTEM_PROMPT="You book appointments."))
    platform = await retell(client)
    await platform.send("response_required")  # the documented one: its entries carry word timings too
    content, events = await platform.response(1)
    assert content == "Life is a journey."
    assert [e["content_complete"] for e in events] == [False] * (len(events) - 1) + [True]
    assert messages_sent(fake_upstream) == [
        {"role": "system", "content": "You book appointments."},
        {"role": "assistant", "content": "Hi, how can I help you?"},
        {"role": "user", "content": "Hi, I'd like to book an appointment."},
    ]
    await platform.send("reminder_required")  # silence: the model is asked for a short nudge
    await platform.response(2)
    sent = messages_sent(fake_upstream)
    assert sent[-2] == {"role": "assistant", "content": "Hi, how can I help you?"}
    assert sent[-1]["role"] == "system" and "not said anything" in sent[-1]["content"]
    assert refused == []
    turn = next(r for r in log_lines(log_stream) if r.get("event") == "turn")
    assert turn["response_id"] == 1 and turn["call_id"] == CALL_ID and turn["outcome"] == "done"


async def test_the_transcript_is_capped_by_max_history(bridge: BridgeFactory, fake_upstream: FakeUpstream) -> None:
    strict_openai(fake_upstream, ["ok"])
    client = await bridge(upstream_env(fake_upstream, MAX_HISTORY="2"))
    platform = await retell(client)
    transcript = [("agent", "a1"), ("user", "u1"), ("system", "ignored"), ("agent", "a2"), ("user", "u2")]
    assert await platform.ask(1, transcript) == "ok"
    assert messages_sent(fake_upstream) == [{"role": "assistant", "content": "a2"}, {"role": "user", "content": "u2"}]


async def test_a_newer_response_id_supersedes_the_answer_in_progress(
        bridge: BridgeFactory, fake_upstream: FakeUpstream, log_stream: LogStream) -> None:
    release = asyncio.Event()

    async def reply(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        if len(fake_upstream.requests) > 1:
            return web.Response(body=sse(text_chunks(ANSWER)), content_type="text/event-stream")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(["Let me"])[:2], done=False))
        await release.wait()
        await response.write(sse(text_chunks([" think."])[1:]))
        return response

    strict(fake_upstream, reply)
    client = await bridge(upstream_env(fake_upstream))
    platform = await retell(client)
    await platform.ws.send_json(platform.request(1, [("user", "What's the time?")]))
    assert await platform.next() == {"response_type": "response", "response_id": 1, "content": "Let me",
                                     "content_complete": False}
    await platform.ws.send_json(platform.request(2, [("user", "What's the time? In Paris, I mean.")]))
    await asyncio.wait_for(fake_upstream.disconnected.wait(), 0.5)  # the older answer's upstream call, closed
    release.set()  # the older answer's upstream would go on now: nothing of it may reach Retell
    events = []
    while not events or not events[-1]["content_complete"]:
        events.append(await platform.next())
    assert {e["response_id"] for e in events} == {2} and "".join(e["content"] for e in events) == "Life is a journey."
    await platform.ws.send_json(platform.request(1, [("user", "stale")]))  # an older id is ignored
    await platform.ws.send_json(platform.request(2, [("user", "again")]))  # and one answered already
    await platform.send("ping_pong")
    assert await platform.next() == RETELL["to_platform"]["ping_pong"]
    assert len(fake_upstream.requests) == 2
    turns = [r for r in log_lines(log_stream) if r.get("event") == "turn"]
    assert [(t["response_id"], t["outcome"]) for t in turns] == [(1, "superseded"), (2, "done")]
    await platform.ws.close()
    line = await log_stream.wait_for_line(lambda r: r.get("status") == 101)
    assert line["interrupts"] == 1 and line["ignored"] == 2


async def test_superseded_content_never_follows_the_newer_response(bridge: BridgeFactory,
                                                                    fake_upstream: FakeUpstream) -> None:
    """Many quick supersessions: every event of an id comes before the first event of a newer one."""
    strict_openai(fake_upstream, ["one", " two", " three"])
    client = await bridge(upstream_env(fake_upstream))
    platform = await retell(client)
    for response_id in range(1, 11):
        await platform.ws.send_json(platform.request(response_id, [("user", f"question {response_id}")]))
    order: list[tuple[int, bool]] = []
    while order[-1:] != [(10, True)]:
        event = await platform.next()
        order.append((event["response_id"], event["content_complete"]))
    await platform.send("ping_pong")  # everything sent before the pong has arrived by then
    assert (await platform.next())["response_type"] == "ping_pong"
    ids = [response_id for response_id, _ in order]
    assert ids == sorted(ids)  # never an older id after a newer one
    assert [complete for response_id, complete in order if response_id < 10] == [False] * (len(order) - ids.count(10))


async def test_a_hangup_sets_end_call_and_a_transfer_its_number(bridge: BridgeFactory,
                                                                fake_upstream: FakeUpstream,
                                                                log_stream: LogStream) -> None:
    strict(fake_upstream, tool_call("hangup", {}, "Thanks for calling."))
    client = await bridge(upstream_env(fake_upstream, CALL_TOOLS="hangup,transfer"))
    platform = await retell(client)
    await platform.ws.send_json(platform.request(1, [("user", "that's all")]))
    content, events = await platform.response(1)
    assert content == "Thanks for calling."
    assert events[-1] == {"response_type": "response", "response_id": 1, "content": "", "content_complete": True,
                          "end_call": True}
    await platform.ws.send_json(platform.request(2, [("user", "wait")]))  # ending: not answered
    await platform.ws.close()
    assert (await log_stream.wait_for_line(lambda r: r.get("status") == 101))["end_reason"] == "hangup"
    assert len(fake_upstream.requests) == 1

    strict(fake_upstream, tool_call("transfer", {"number": "+12137771236", "message": "Transferring you now."}))
    platform = await retell(client)
    await platform.ws.send_json(platform.request(1, [("user", "a human, please")]))
    content, events = await platform.response(1)
    assert events[-1] == {"response_type": "response", "response_id": 1, "content": "Transferring you now.",
                          "content_complete": True, "transfer_number": "+12137771236"}


async def test_malformed_events_are_ignored(bridge: BridgeFactory, fake_upstream: FakeUpstream,
                                            log_stream: LogStream) -> None:
    strict_openai(fake_upstream, ["ok"])
    client = await bridge(upstream_env(fake_upstream))
    platform = await retell(client)
    await platform.ws.send_json({"interaction_type": "response_required", "response_id": "1", "transcript": []})
    await platform.ws.send_json({"interaction_type": "response_required", "response_id": True, "transcript": []})
    await platform.ws.send_json({"interaction_type": "response_required", "response_id": 1, "transcript": "hi"})
    await platform.ws.send_json({"interaction_type": "ping_pong", "timestamp": "now"})
    await platform.ws.send_json({"interaction_type": "call_details", "call": []})
    await platform.ws.send_json({"interaction_type": "agent_interrupt"})
    await platform.ws.send_json({"response_type": "response"})
    assert await platform.ask(3, [("user", "hello")]) == "ok"
    await platform.ws.close()
    assert (await log_stream.wait_for_line(lambda r: r.get("status") == 101))["ignored"] == 7
