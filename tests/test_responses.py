"""POST /v1/responses and /responses, driven by the official openai SDK (`responses.create`, streamed
and not, and `responses.stream()`), against a fake upstream that is as strict as OpenAI's Chat
Completions (tests/strict_openai.py): the translated request must be one OpenAI would take.

Shapes: https://platform.openai.com/docs/api-reference/responses (create, streaming events).
"""

from __future__ import annotations

import asyncio
import json

import openai
import pytest
from aiohttp import web

from tests.support.app import log_lines
from tests.support.responses import TOKEN, USAGE, WEATHER, env_for, scripted, sdk, sent_messages, tool_call_chunks
from tests.support.tool_servers import tools_file, weather_tool
from tests.support.upstream import sse, text_chunks


@pytest.mark.parametrize("base", ["/v1", ""])
async def test_a_whole_response_is_the_response_object(bridge, fake_upstream, base):
    refusals = scripted(fake_upstream, text_chunks(["Hello", ", world!"], usage=USAGE))
    client = await bridge(env_for(fake_upstream))
    async with sdk(client, base) as oai:
        response = await oai.responses.create(model="gpt-4o-mini", input="hi", instructions="Be brief.",
                                              temperature=0.3, max_output_tokens=50, metadata={"call": "c-1"})
    assert response.object == "response" and response.status == "completed" and response.id.startswith("resp_")
    assert response.output_text == "Hello, world!"
    (message,) = response.output
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert response.model == "gpt-4o-mini" and response.instructions == "Be brief."
    assert response.temperature == 0.3 and response.max_output_tokens == 50 and response.metadata == {"call": "c-1"}
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (11, 4)
    assert response.usage.total_tokens == 15 and response.usage.input_tokens_details.cached_tokens == 8
    sent = fake_upstream.last.json()
    assert refusals == [] and fake_upstream.last.path == "/v1/chat/completions"
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}]
    assert sent["temperature"] == 0.3 and sent["max_tokens"] == 50 and "metadata" not in sent


async def test_a_stream_sends_every_event_in_order_with_its_sequence_number(bridge, fake_upstream):
    scripted(fake_upstream, text_chunks(["One. ", "Two."], usage=USAGE))
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        stream = await oai.responses.create(model="m", input="count", stream=True)
        events = [event async for event in stream]
    kinds = [event.type for event in events]
    deltas = [event.delta for event in events if event.type == "response.output_text.delta"]
    assert kinds[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert kinds[4:4 + len(deltas)] == ["response.output_text.delta"] * len(deltas) and "".join(deltas) == "One. Two."
    assert kinds[4 + len(deltas):] == ["response.output_text.done", "response.content_part.done",
                                       "response.output_item.done", "response.completed"]
    assert [event.sequence_number for event in events] == list(range(len(events)))
    created, completed = events[0].response, events[-1].response
    assert created.status == "in_progress" and created.output == [] and created.id == completed.id
    assert completed.status == "completed" and completed.output_text == "One. Two."
    assert completed.usage is not None and completed.usage.total_tokens == 15
    item_ids = {event.item_id for event in events if hasattr(event, "item_id")}
    assert item_ids == {completed.output[0].id}


async def test_the_sdk_stream_helper_assembles_the_response(bridge, fake_upstream):
    scripted(fake_upstream, text_chunks(["Hello", " there"], usage=USAGE))
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai, oai.responses.stream(model="m", input="hi") as stream:
        texts = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(texts) == "Hello there" and final.output_text == "Hello there" and final.status == "completed"


async def test_a_tool_call_streams_as_a_function_call_item_and_its_output_continues_it(bridge, fake_upstream):
    refusals = scripted(fake_upstream, tool_call_chunks(), text_chunks(["It is sunny."], usage=USAGE))
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        async with oai.responses.stream(model="m", input="Weather in Paris?", tools=[WEATHER],
                                        tool_choice="auto") as stream:
            kinds = [event.type async for event in stream]
            first = await stream.get_final_response()
        (call,) = first.output
        assert call.type == "function_call" and call.id is not None and call.id.startswith("fc_")
        assert (call.call_id, call.name, json.loads(call.arguments)) == ("call_abc", "get_weather", {"city": "Paris"})
        assert "response.function_call_arguments.delta" in kinds and "response.function_call_arguments.done" in kinds
        assert first.tools[0].name == "get_weather"
        second = await oai.responses.create(model="m", previous_response_id=first.id, tools=[WEATHER], input=[
            {"type": "function_call_output", "call_id": "call_abc", "output": '{"sky": "sunny"}'}])
    assert second.output_text == "It is sunny." and second.previous_response_id == first.id
    assert refusals == []
    assert fake_upstream.requests[0].json()["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city.", "parameters": WEATHER["parameters"]}}]
    assert sent_messages(fake_upstream) == [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_abc", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "tool_call_id": "call_abc", "content": '{"sky": "sunny"}'},
    ]


async def test_a_follow_up_is_answered_with_the_whole_history(bridge, fake_upstream):
    scripted(fake_upstream, text_chunks(["Hi Ann."]), text_chunks(["You are Ann."]), text_chunks(["Bye."]))
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        one = await oai.responses.create(model="m", input="I am Ann.", instructions="Be kind.")
        two = await oai.responses.create(model="m", input="Who am I?", previous_response_id=one.id, stream=True)
        two_id = [event async for event in two][-1].response.id
        await oai.responses.create(model="m", previous_response_id=two_id, instructions="Be brief.", input=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Bye"}]}])
    assert sent_messages(fake_upstream) == [
        {"role": "system", "content": "Be brief."},  # instructions are not carried over, as OpenAI does
        {"role": "user", "content": "I am Ann."}, {"role": "assistant", "content": "Hi Ann."},
        {"role": "user", "content": "Who am I?"}, {"role": "assistant", "content": "You are Ann."},
        {"role": "user", "content": "Bye"},
    ]


async def test_the_tools_filler_is_heard_but_not_kept_in_the_conversation(bridge, fake_upstream, weather_server,
                                                                          tmp_path):
    scripted(fake_upstream, tool_call_chunks(), text_chunks(["Sunny."]), text_chunks(["Bye."]))
    tools = tools_file(tmp_path, [weather_tool(weather_server.url("/weather"))], filler="One moment.")
    client = await bridge(env_for(fake_upstream, BRIDGE_TOOLS=tools, WEATHER_KEY="wk-1234567890"))
    async with sdk(client) as oai:
        stream = await oai.responses.create(model="m", input="Weather in Paris?", stream=True)
        done = [event async for event in stream][-1].response
        await oai.responses.create(model="m", input="Thanks", previous_response_id=done.id)
    assert done.output_text == "One moment. Sunny."  # the caller heard the filler
    assert sent_messages(fake_upstream)[1:] == [{"role": "assistant", "content": "Sunny."},
                                                 {"role": "user", "content": "Thanks"}]


async def test_an_unknown_previous_response_is_previous_response_not_found(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        with pytest.raises(openai.BadRequestError) as caught:
            await oai.responses.create(model="m", input="hi", previous_response_id="resp_0123456789abcdef")
    assert caught.value.status_code == 400 and caught.value.body == {
        "message": "Previous response with id 'resp_0123456789abcdef' not found.", "type": "invalid_request_error",
        "param": "previous_response_id", "code": "previous_response_not_found"}
    assert fake_upstream.requests == []


async def test_store_false_keeps_nothing(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        unstored = await oai.responses.create(model="m", input="hi", store=False)
        stored = await oai.responses.create(model="m", input="hi")
        await oai.responses.create(model="m", input="again", previous_response_id=stored.id)
        with pytest.raises(openai.BadRequestError, match="not found"):
            await oai.responses.create(model="m", input="again", previous_response_id=unstored.id)
    assert unstored.output_text == "Hello, world!"


async def test_the_oldest_stored_response_goes_past_responses_store_max(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream, RESPONSES_STORE_MAX="1"))
    async with sdk(client) as oai:
        first = await oai.responses.create(model="m", input="one")
        second = await oai.responses.create(model="m", input="two")  # RESPONSES_STORE_MAX=1: the first goes
        await oai.responses.create(model="m", input="three", previous_response_id=second.id)
        with pytest.raises(openai.BadRequestError, match="not found"):
            await oai.responses.create(model="m", input="four", previous_response_id=first.id)


async def test_another_agents_response_is_not_found(bridge, fake_upstream, tmp_path):
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps({"agents": {"sales": {"BRIDGE_TOKENS": "sales-token-0123"}}}))
    client = await bridge(env_for(fake_upstream, BRIDGE_AGENTS=str(agents)))
    async with sdk(client) as oai, sdk(client, token="sales-token-0123") as sales:
        mine = await oai.responses.create(model="m", input="secret plans")
        with pytest.raises(openai.BadRequestError, match="not found"):
            await sales.responses.create(model="m", input="what were they?", previous_response_id=mine.id)


@pytest.mark.parametrize(("body", "param"), [
    ({"input": 5}, "input"),
    ({"input": [{"type": "message", "role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}, "input[0].content[0].text"),
    ({"input": [{"role": "user", "content": [{"type": "input_video"}]}]}, "input[0].content[0].type"),
    ({"input": [{"type": "function_call_output", "output": "x"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "input[0].arguments"),
    ({"input": [{"type": "web_search_call", "id": "ws_1"}]}, "input[0].type"),
    ({"input": "x", "temperature": "hot"}, "temperature"),
    ({"input": "x", "max_output_tokens": "many"}, "max_output_tokens"),
    ({"input": "x", "tools": [{"type": "function"}]}, "tools[0].name"),
    ({"input": "x", "tools": {"type": "function"}}, "tools"),
    ({"input": "x", "tool_choice": 5}, "tool_choice"),
    ({"input": "x", "metadata": {"k": 1}}, "metadata"),
    ({"input": "x", "background": True}, "background"),
    ({"input": "x", "conversation": "conv_1"}, "conversation"),
    ({"input": "x", "previous_response_id": 5}, "previous_response_id"),
    ({"input": "x", "text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"input": "x", "stream": "yes"}, "stream"),
    ({"input": "x", "store": "no"}, "store"),
    ({"input": "x", "instructions": ["be brief"]}, "instructions"),
    ({"input": "x", "model": ""}, "model"),
    ({}, "input"),
])
async def test_every_bad_field_is_a_400_naming_it(bridge, fake_upstream, body, param):
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/v1/responses", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["param"] == param and error["type"] == "invalid_request_error", error
    assert fake_upstream.requests == []


@pytest.mark.parametrize("raw", [b"{not json", b"[1, 2]"])
async def test_a_body_that_is_not_an_object_is_a_400(bridge, fake_upstream, raw):
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/v1/responses", data=raw, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 400 and (await resp.json())["error"]["type"] == "invalid_request_error"


async def test_auth_and_the_agent_path_are_the_chat_routes(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/v1/responses", json={"input": "hi"})
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
    async with sdk(client, "/agents/default/v1") as oai:
        response = await oai.responses.create(model="m", input="hi")
    assert response.output_text == "Hello, world!"


async def test_text_format_reasoning_and_parameters_reach_the_upstream_in_chat_spelling(bridge, fake_upstream):
    refusals = scripted(fake_upstream, text_chunks(['{"ok": true}']))
    client = await bridge(env_for(fake_upstream))
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
              "additionalProperties": False}
    async with sdk(client) as oai:
        response = await oai.responses.create(
            model="m", input="ok?", top_p=0.5, user="u-1", parallel_tool_calls=False, reasoning={"effort": "low"},
            text={"format": {"type": "json_schema", "name": "answer", "schema": schema, "strict": True}},
            tools=[WEATHER, {"type": "web_search"}], tool_choice={"type": "function", "name": "get_weather"},
            include=["reasoning.encrypted_content"], truncation="auto")
    sent = fake_upstream.last.json()
    assert refusals == [] and response.text.format.type == "json_schema"
    assert sent["response_format"] == {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema,
                                                                             "strict": True}}
    assert (sent["top_p"], sent["user"], sent["parallel_tool_calls"], sent["reasoning_effort"]) == (0.5, "u-1", False,
                                                                                                    "low")
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert [tool["function"]["name"] for tool in sent["tools"]] == ["get_weather"]  # web_search has no upstream


async def test_platforms_are_recognised_and_their_fields_logged_and_dropped(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        await oai.responses.create(model="m", input="hi", tools=[{"type": "web_search"}],
                                   extra_body={"user_id": "user_2f9c61d4", "elevenlabs_extra_body": {"UUID": "u"}})
    line = await log_stream.wait_for_line(lambda line: line.get("route") == "/v1/responses")
    assert line["platform"] == "elevenlabs" and line["user_id"] == "user_2f9c61d4" and line["status"] == 200
    assert line["dropped"] == ["elevenlabs_extra_body", "tools[].web_search", "user_id"]
    assert set(fake_upstream.last.json()) == {"model", "messages", "stream", "stream_options"}


async def test_an_upstream_that_fails_before_the_first_byte_is_an_http_error(bridge, fake_upstream):
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "slow down"}}, status=429)

    fake_upstream.handler = refuse
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        with pytest.raises(openai.RateLimitError):
            await oai.responses.create(model="m", input="hi", stream=True)


async def test_a_failure_after_the_first_byte_is_response_failed(bridge, fake_upstream, log_stream):
    never = asyncio.Event()

    async def stall(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse(text_chunks(["first half"])[:2], done=False))
        await never.wait()  # then silence: the idle deadline cuts it
        return response

    fake_upstream.handler = stall
    client = await bridge(env_for(fake_upstream, UPSTREAM_IDLE_TIMEOUT="0.2"))
    async with sdk(client) as oai:
        events = [event async for event in await oai.responses.create(model="m", input="hi", stream=True)]
    assert [event.type for event in events][-2:] == ["response.output_text.delta", "response.failed"]
    failed = events[-1].response
    assert failed.status == "failed" and failed.error is not None and failed.error.code == "server_error"
    assert failed.output_text == "first half" and failed.output[0].status == "incomplete"
    line = await log_stream.wait_for_line(lambda line: line.get("route") == "/v1/responses")
    assert line["error_kind"] == "upstream_timeout" and failed.error.message == line["error"]


async def test_a_short_answer_is_incomplete(bridge, fake_upstream):
    scripted(fake_upstream, text_chunks(["Cut sh"], finish="length"))
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        events = [event async for event in await oai.responses.create(model="m", input="hi", stream=True)]
        whole = await oai.responses.create(model="m", input="hi")
    assert events[-1].type == "response.incomplete" and events[-1].response.status == "incomplete"
    assert events[-1].response.incomplete_details.reason == "max_output_tokens"
    assert whole.status == "incomplete" and whole.output_text == "Cut sh"


async def test_a_caller_that_hangs_up_cancels_the_upstream(bridge, fake_upstream):
    release = asyncio.Event()
    fake_upstream.pause_midway(release)
    client = await bridge(env_for(fake_upstream))
    async with sdk(client) as oai:
        stream = await oai.responses.create(model="m", input="hi", stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                break
        await stream.close()
    async with asyncio.timeout(5):
        await fake_upstream.disconnected.wait()
    release.set()


async def test_a_get_without_an_upgrade_is_a_400_saying_so(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    resp = await client.get("/v1/responses", headers={"Authorization": f"Bearer {TOKEN}"})
    body = await resp.json()
    assert resp.status == 400 and "WebSocket" in body["error"]["message"]


async def test_models_are_unchanged(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream, UPSTREAM_MODEL="qwen-plus"))
    async with sdk(client) as oai:
        models = await oai.models.list()
    assert [m.id for m in models.data] == ["qwen-plus"]
    assert not [line for line in log_lines(log_stream) if line.get("level") == "error"]
