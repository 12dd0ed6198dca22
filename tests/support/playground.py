"""The playground tests' model and environment: a weather tool the model calls, then its answer."""

from __future__ import annotations

import json
from pathlib import Path

from aiohttp import web

from tests.support.tool_servers import tools_file, weather_tool
from tests.support.upstream import FakeUpstream, sse, text_chunks

ANSWER = "It's sunny in Paris, 21 degrees."


def weather_model(fake: FakeUpstream) -> None:
    """Round 1: call get_weather for Paris. Once the tool's result is in the history: say the weather."""
    base = text_chunks([])[0]

    async def handler(request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        if messages[-1]["role"] == "tool":
            weather = json.loads(messages[-1]["content"])
            pieces = [f"It's {weather['sky']} in {weather['city']}", f", {weather['celsius']} degrees."]
            return web.Response(body=sse(text_chunks(pieces)), content_type="text/event-stream")
        call = {"index": 0, "id": "call_1", "type": "function",
                "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}
        chunks = [base, {**base, "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}]},
                  {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}]
        return web.Response(body=sse(chunks), content_type="text/event-stream")

    fake.handler = handler


def weather_env(fake: FakeUpstream, url: str, tmp_path: Path, **more: str) -> dict[str, str]:
    """A bridge whose model calls a weather tool at `url`, with a filler said while it runs."""
    return {"OPENAI_BASE_URL": fake.url + "/v1", "WEATHER_KEY": "weather-key-123456",
            "BRIDGE_TOOLS": tools_file(tmp_path, [weather_tool(url)], filler="One moment, let me check."), **more}
