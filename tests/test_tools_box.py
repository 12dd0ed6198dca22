"""HTTP tools against a real aiohttp tool server on 127.0.0.1: outcomes, bodies, secrets, cancellation."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bridge.tools import ToolBox, load_toolbox
from tests.support.tool_servers import HUGE_TOTAL, WEATHER_KEY, OutcomeToolServer

EXTRA_KEY = "xk-0p9o8i7u6y5t4r3e"


BoxFactory = Callable[..., Awaitable[ToolBox]]


@pytest.fixture
async def make_box(tmp_path: Path, outcome_server: OutcomeToolServer) -> AsyncIterator[BoxFactory]:
    """`await make_box(name=("/path", {http extras}), ...)`: a started toolbox over those tools."""
    boxes: list[ToolBox] = []

    async def make(env: dict[str, str] | None = None, **tools: tuple[str, dict[str, Any]]) -> ToolBox:
        entries = []
        for name, (path, http) in tools.items():
            parameters = http.pop("parameters", {"type": "object"})
            url = http.pop("url", outcome_server.url(path))
            entries.append({"name": name, "description": f"The {name} tool", "parameters": parameters,
                            "http": {"url": url, **http}})
        file = tmp_path / "tools.json"
        file.write_text(json.dumps({"tools": entries}))
        box = load_toolbox(str(file), env or {})
        await box.start()
        boxes.append(box)
        return box

    yield make
    for box in boxes:
        await box.aclose()


CITY = {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"]}


async def test_ok_json_and_the_body_is_exactly_the_arguments(make_box: BoxFactory,
                                                             outcome_server: OutcomeToolServer) -> None:
    box = await make_box(get_weather=("/json", {"parameters": CITY}))
    arguments = '{"city": "Paris", "days": 2, "url": "http://evil.example/", "headers": {"Host": "evil"}}'
    result = await box.call("get_weather", arguments)
    assert result.outcome == "ok" and result.name == "get_weather"
    assert json.loads(result.content) == {"temp": 21, "sky": "clear", "got": json.loads(arguments)}
    assert result.duration_ms > 0
    [seen] = outcome_server.seen
    # URL, method and headers come from the file; the arguments only ever form the body
    assert (seen.method, seen.path, seen.query) == ("POST", "/json", [])
    assert json.loads(seen.body) == json.loads(arguments)
    assert seen.headers["Content-Type"] == "application/json"
    assert seen.headers["Host"] != "evil"


async def test_get_puts_top_level_arguments_in_the_query(make_box: BoxFactory,
                                                         outcome_server: OutcomeToolServer) -> None:
    box = await make_box(search=("/query", {"method": "GET", "url": outcome_server.url("/query") + "?fixed=1"}))
    result = await box.call("search", json.dumps({"q": "rain & wind", "fixed": "model-wins?", "n": 3, "exact": True,
                                                  "tags": ["a", "b"], "skip": None, "where": {"lat": 1.5}}))
    assert result.outcome == "ok"
    [seen] = outcome_server.seen
    assert seen.method == "GET" and seen.body == b""
    assert seen.query == [("fixed", "1"), ("q", "rain & wind"), ("n", "3"), ("exact", "true"),
                          ("tags", "a"), ("tags", "b"), ("where", '{"lat":1.5}')]


async def test_a_fixed_query_key_cannot_be_shadowed_by_a_spelling_servers_read_alike(
        make_box: BoxFactory, outcome_server: OutcomeToolServer) -> None:
    url = outcome_server.url("/query") + "?mode=fixed&api_key=k1"
    box = await make_box(search=("/query", {"method": "GET", "url": url}))
    shadows = {"Mode": "x", "MODE ": "x", "api_key ": "y", "api_key+": "y", "API-KEY": "y", "api.key": "y",
               "api_key[]": "y", "api%5Fkey": "y", "api%255Fkey": "y", "\tmode": "x", "city": "Paris"}
    assert (await box.call("search", json.dumps(shadows))).outcome == "ok"
    [seen] = outcome_server.seen
    assert seen.query == [("mode", "fixed"), ("api_key", "k1"), ("city", "Paris")]


async def test_text_and_empty_answers(make_box: BoxFactory) -> None:
    box = await make_box(weather_text=("/text", {}), ack=("/empty", {}))
    result = await box.call("weather_text", "")  # no arguments at all: an empty object
    assert (result.outcome, result.content) == ("ok", "Sunny, 21 degrees.")
    result = await box.call("ack", "{}")
    assert (result.outcome, result.content) == ("ok", "(the tool returned nothing)")


async def test_http_error_has_status_and_a_short_excerpt(make_box: BoxFactory) -> None:
    box = await make_box(broken=("/fail", {}))
    result = await box.call("broken", "{}")
    assert result.outcome == "error"
    assert result.content.startswith("error: the tool broken answered HTTP 500: database exploded: xxx")
    assert len(result.content) < 400


async def test_redirects_are_not_followed(make_box: BoxFactory, outcome_server: OutcomeToolServer) -> None:
    box = await make_box(moved=("/redirect", {}))
    result = await box.call("moved", "{}")
    assert result.outcome == "error" and "HTTP 302 (redirects are not followed)" in result.content
    assert [s.path for s in outcome_server.seen] == ["/redirect"]


async def test_timeout_per_tool_and_capped_by_the_caller(make_box: BoxFactory) -> None:
    box = await make_box(slow=("/slow", {"timeout": 0.2}), slow_long=("/slow", {"timeout": 30}))
    started = time.perf_counter()
    result = await box.call("slow", "{}")
    assert result.outcome == "timeout" and "within 0.2 s" in result.content
    result = await box.call("slow_long", "{}", timeout=0.2)
    assert result.outcome == "timeout" and "within 0.2 s" in result.content
    assert time.perf_counter() - started < 2
    result = await box.call("slow_long", "{}", timeout=0)
    assert result.outcome == "timeout"


async def test_too_large_is_cut_at_the_cap_and_the_rest_never_read(make_box: BoxFactory,
                                                                   outcome_server: OutcomeToolServer) -> None:
    box = await make_box(dump=("/huge", {"max_result_bytes": 1024}))
    result = await box.call("dump", "{}")
    assert result.outcome == "too_large"
    body, note = result.content.rsplit("\n", 1)
    assert note == "[truncated: the result was larger than 1024 bytes]"
    assert body.startswith("[1,1,1,") and len(body.encode()) <= 1024
    # the connection was dropped, not drained: the server could not push its whole answer
    await asyncio.wait_for(outcome_server.disconnected.wait(), 5)
    assert outcome_server.huge_sent < HUGE_TOTAL / 2


async def test_bad_arguments_never_reach_the_tool(make_box: BoxFactory, outcome_server: OutcomeToolServer) -> None:
    box = await make_box(get_weather=("/json", {"parameters": CITY}))
    cases = {
        '{"city": "Par': "are not valid JSON",
        '["Paris"]': "must be a JSON object",
        '{"days": 2}': "bad arguments for get_weather: arguments: 'city' is a required property",
        '{"city": "Paris", "days": 0}': "bad arguments for get_weather: days: 0 is less than the minimum of 1",
        '{"city": 7}': "bad arguments for get_weather: city: 7 is not of type 'string'",
    }
    for arguments, expected in cases.items():
        result = await box.call("get_weather", arguments)
        assert result.outcome == "bad_arguments", arguments
        assert expected in result.content, result.content
    assert outcome_server.seen == []


async def test_unknown_tool(make_box: BoxFactory) -> None:
    box = await make_box(get_weather=("/json", {}))
    result = await box.call("launch_rockets", "{}")
    assert (result.outcome, result.name) == ("unknown_tool", "launch_rockets")
    assert "no tool named 'launch_rockets'" in result.content
    assert box.owns("get_weather") and not box.owns("launch_rockets")


async def test_env_header_is_sent_and_its_echo_redacted(make_box: BoxFactory,
                                                        outcome_server: OutcomeToolServer) -> None:
    env = {"WEATHER_KEY": WEATHER_KEY, "EXTRA_KEY": EXTRA_KEY}
    headers = {"Authorization": "Bearer ${env.WEATHER_KEY}", "X-Extra": "${env.EXTRA_KEY}", "X-Client": "bridge"}
    box = await make_box(env, whoami=("/headers", {"headers": headers}))
    result = await box.call("whoami", "{}")
    assert result.outcome == "ok"
    [seen] = outcome_server.seen
    assert seen.headers["Authorization"] == f"Bearer {WEATHER_KEY}"
    assert seen.headers["X-Extra"] == EXTRA_KEY
    echoed = json.loads(result.content)["headers_you_sent"]
    assert echoed["X-Client"] == "bridge"
    assert WEATHER_KEY not in result.content and EXTRA_KEY not in result.content
    assert echoed["Authorization"] == "[redacted]" and echoed["X-Extra"] == "[redacted]"


async def test_redaction_happens_before_the_cut(make_box: BoxFactory) -> None:
    box = await make_box({"WEATHER_KEY": WEATHER_KEY},
                         near=("/near_cap", {"max_result_bytes": 1024,
                                             "headers": {"Authorization": "Bearer ${env.WEATHER_KEY}"}}))
    result = await box.call("near", "{}")
    assert result.outcome == "too_large"
    body = result.content.rsplit("\n", 1)[0]
    assert not any(body.endswith(WEATHER_KEY[:n]) for n in range(2, len(WEATHER_KEY)))
    assert body.startswith("a" * 1000)


async def test_cancelling_a_call_closes_the_request_at_once(make_box: BoxFactory,
                                                            outcome_server: OutcomeToolServer) -> None:
    box = await make_box(slow=("/slow", {"timeout": 30}))
    task = asyncio.create_task(box.call("slow", "{}"))
    await asyncio.wait_for(outcome_server.arrived.wait(), 5)
    started = time.perf_counter()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.wait_for(outcome_server.disconnected.wait(), 2)
    assert time.perf_counter() - started < 1


async def test_unreachable_tool_is_an_error_not_an_exception(make_box: BoxFactory) -> None:
    with socket.socket() as sock:  # a port that is bound but not listening refuses connections
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/x"
        box = await make_box(gone=("/x", {"url": url}))
        result = await box.call("gone", "{}")
    assert result.outcome == "error" and "could not be reached" in result.content


async def test_definitions_and_closing(make_box: BoxFactory) -> None:
    box = await make_box(a=("/json", {"parameters": CITY}), b=("/text", {}))
    assert [d["function"]["name"] for d in box.definitions()] == ["a", "b"]
    assert box.definitions()[0] == {"type": "function", "function": {
        "name": "a", "description": "The a tool", "parameters": CITY}}
    await box.aclose()
    await box.aclose()  # idempotent
    result = await box.call("a", '{"city": "Oslo"}')
    assert result.outcome == "error" and "shutting down" in result.content
