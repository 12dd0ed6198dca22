"""Start-up says what is wrong before the first call: the common mistakes, each one line naming
the setting and the fix (a bounded probe of an OpenAI-compatible upstream; settings that cannot
work stop start-up)."""

from __future__ import annotations

import pytest
from aiohttp import web

from bridge.config import ConfigError, read_settings
from tests.support.upstream import FakeUpstream

PROBE = {"UPSTREAM_PROBE": "on"}  # the test harness turns it off for every other test


def serve_models(fake: FakeUpstream, models: list[str], *, status: int = 200, prefix: str = "/v1") -> None:
    """The fake answers `<prefix>/models` (and chat) like an OpenAI-compatible server; 404 elsewhere."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == f"{prefix}/models":
            if status != 200:
                return web.json_response({"error": {"message": "Incorrect API key provided"}}, status=status)
            return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in models]})
        if request.path == f"{prefix}/chat/completions":
            return await fake.stream_openai(request)
        return web.json_response({"error": {"message": "not found"}}, status=404)

    fake.handler = handler


async def check_line(log_stream) -> dict:
    return await log_stream.wait_for_line(lambda e: e.get("event") in ("upstream_check", "upstream_ok"))


async def test_a_base_url_without_v1_is_named_at_start_up(bridge, fake_upstream, log_stream):
    serve_models(fake_upstream, ["gpt-4o-mini"])
    await bridge({"OPENAI_BASE_URL": fake_upstream.url, **PROBE})
    line = await check_line(log_stream)
    assert line["event"] == "upstream_check" and line["status"] == 404
    assert "does OPENAI_BASE_URL end in /v1" in line["fix"]


async def test_a_refused_key_is_named_at_start_up(bridge, fake_upstream, log_stream):
    serve_models(fake_upstream, [], status=401)
    await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "OPENAI_API_KEY": "sk-wrong-key-0123456789", **PROBE})
    line = await check_line(log_stream)
    assert line["status"] == 401 and "check OPENAI_API_KEY" in line["fix"]
    assert "sk-wrong-key-0123456789" not in log_stream.getvalue()


async def test_a_default_model_the_upstream_lacks_is_named(bridge, fake_upstream, log_stream):
    serve_models(fake_upstream, ["qwen-plus", "qwen-max"])
    await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", **PROBE})
    line = await check_line(log_stream)
    assert "UPSTREAM_MODEL is not set" in line["fix"] and "'gpt-4o-mini'" in line["fix"] and "qwen-plus" in line["fix"]


async def test_a_working_upstream_says_so_once(bridge, fake_upstream, log_stream):
    serve_models(fake_upstream, ["qwen-plus"])
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "UPSTREAM_MODEL": "qwen-plus", **PROBE})
    line = await check_line(log_stream)
    assert line["event"] == "upstream_ok" and line["models"] == 1
    resp = await client.post("/", data={"Message": "hi"})
    assert resp.status == 200
    assert [r.path for r in fake_upstream.requests] == ["/v1/models", "/v1/chat/completions"]  # probed once


@pytest.mark.parametrize(("env", "message"), [
    ({"OPENAI_BASE_URL": "https://api.example.com/v1/chat/completions"},
     "OPENAI_BASE_URL: give the base URL, without /chat/completions"),
    ({"BRIDGE_TOKENS": "alpha beta"}, "BRIDGE_TOKENS: a token contains whitespace"),
])
def test_settings_that_cannot_work_stop_start_up(env, message):
    with pytest.raises(ConfigError, match=message):
        read_settings(env)
