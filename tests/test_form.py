"""POST / — the Alibaba-spec form endpoint, end to end against a real fake upstream."""

from __future__ import annotations

import json

import aiohttp
import pytest
from aiohttp import web

from tests.support.app import log_lines
from tests.support.upstream import FakeUpstream

KEY = "sk-upstream-secret-0123456789"
TOKEN = "form-token-abcdef"


def env_for(fake: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": KEY, "BRIDGE_TOKENS": TOKEN, **extra}


def history(n: int) -> list[dict[str, str]]:
    return [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(n)]


async def post_form(client, fields: dict[str, str], multipart: bool = False) -> aiohttp.ClientResponse:
    if multipart:
        data = aiohttp.FormData(default_to_multipart=True)
        for name, value in fields.items():
            data.add_field(name, value)
        resp = await client.post("/", data=data)
        assert resp.request_info.headers["Content-Type"].startswith("multipart/form-data")
        return resp
    return await client.post("/", data=fields)


async def test_text_is_joined_deltas_and_upstream_gets_prompt_history_model(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream, SYSTEM_PROMPT="Be brief.", MAX_HISTORY="4",
                                  UPSTREAM_MODEL="qwen-plus"))
    extend = json.dumps({"InstanceId": "inst-42", "UserData": json.dumps({"vip": True})})
    resp = await post_form(client, {"Message": json.dumps(history(7)), "Token": TOKEN, "ExtendData": extend})

    assert resp.status == 200
    assert resp.headers["Content-Type"] == "application/json; charset=utf-8"
    assert await resp.json() == {"Text": "Hello, world!"}
    sent = fake_upstream.last.json()
    assert sent["model"] == "qwen-plus"
    assert sent["stream"] is True
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, *history(7)[-4:]]
    # nothing of the form's other fields reaches the upstream
    raw = fake_upstream.last.body.decode()
    assert TOKEN not in raw and "inst-42" not in raw and "vip" not in raw
    assert fake_upstream.last.headers["Authorization"] == f"Bearer {KEY}"
    line = [entry for entry in log_lines(log_stream) if entry["event"] == "request"][-1]
    assert line["route"] == "/" and line["status"] == 200 and line["instance_id"] == "inst-42"
    assert line["upstream"] == "openai" and "latency_ms" in line


async def test_default_model_when_none_configured(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    await post_form(client, {"Message": "hello", "Token": TOKEN})
    assert fake_upstream.last.json()["model"] == "gpt-4o-mini"
    assert fake_upstream.last.json()["messages"] == [{"role": "user", "content": "hello"}]


@pytest.mark.parametrize("multipart", [False, True])
async def test_urlencoded_and_multipart(bridge, fake_upstream, multipart):
    client = await bridge(env_for(fake_upstream))
    resp = await post_form(client, {"Message": '[{"role": "user", "content": "hi"}]', "Token": TOKEN},
                           multipart=multipart)
    assert resp.status == 200
    assert (await resp.json())["Text"] == "Hello, world!"
    assert fake_upstream.last.json()["messages"] == [{"role": "user", "content": "hi"}]


async def test_python_literal_message(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    literal = "[{'role': 'user', 'content': \"It's sunny?\"}, {'role': 'assistant', 'content': 'Yes'}]"
    resp = await post_form(client, {"Message": literal, "Token": TOKEN})
    assert resp.status == 200
    assert fake_upstream.last.json()["messages"] == [
        {"role": "user", "content": "It's sunny?"},
        {"role": "assistant", "content": "Yes"},
    ]


@pytest.mark.parametrize("speech_filter, spoken", [("off", "今天天气晴朗 ☀️🙂"), ("on", "今天天气晴朗")])
async def test_chinese_and_emoji_round_trip(bridge, fake_upstream, speech_filter, spoken):
    """Chinese passes untouched; emoji only with the speech filter off (a TTS would read them out)."""
    fake_upstream.reply = ["今天", "天气晴朗", " ☀️🙂"]
    client = await bridge(env_for(fake_upstream, SPEECH_FILTER=speech_filter))
    resp = await post_form(client, {"Message": json.dumps([{"role": "user", "content": "天气怎么样？🙂"}]),
                                    "Token": TOKEN})
    assert (await resp.json())["Text"] == spoken
    assert "今天天气晴朗".encode() in await resp.read()  # raw UTF-8, not \u escapes
    assert fake_upstream.last.json()["messages"][0]["content"] == "天气怎么样？🙂"


@pytest.mark.parametrize("token", [None, "", "wrong-token", TOKEN + "x"])
async def test_token_rejected(bridge, fake_upstream, token):
    client = await bridge(env_for(fake_upstream))
    fields = {"Message": "hi"} if token is None else {"Message": "hi", "Token": token}
    resp = await post_form(client, fields)
    assert resp.status == 401
    assert (await resp.json()) == {"error": "Token: missing or invalid"}
    assert fake_upstream.requests == []


async def test_any_of_several_tokens_accepted(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream, BRIDGE_TOKENS=f"first-token, {TOKEN}"))
    assert (await post_form(client, {"Message": "hi", "Token": TOKEN})).status == 200
    assert (await post_form(client, {"Message": "hi", "Token": "first-token"})).status == 200


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", "Message: required"),
        ("[]", "Message: the history is empty"),
        ("[{'role': 'user', 'content': 'x'", "Message: not valid JSON or a Python-literal"),
        ('{"role": "user"', "Message: not valid JSON or a Python-literal"),
        ('[{"role": "robot", "content": "x"}]', "Message[0].role: must be one of system, user, assistant"),
        ('[{"role": "user", "content": 5}]', "Message[0].content: must be a string; got int"),
        ("[{'role': ['user'], 'content': 'x'}]", "Message[0].role: must be one of"),
        ('[{"role": "user", "content": "a"}, "b"]', "Message[1]: must be an object"),
        ("[1, 2]", "Message[0]: must be an object"),
        ("[__import__('os').system('true')]", "Message: not valid JSON or a Python-literal"),
    ],
)
async def test_malformed_message_is_400_naming_the_field(bridge, fake_upstream, message, expected):
    client = await bridge(env_for(fake_upstream))
    resp = await post_form(client, {"Message": message, "Token": TOKEN})
    assert resp.status == 400
    assert (await resp.json())["error"].startswith(expected)
    assert fake_upstream.requests == []


async def test_missing_message_field(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    resp = await post_form(client, {"Token": TOKEN})
    assert resp.status == 400
    assert "Message" in (await resp.json())["error"]


async def test_duplicated_field_is_400(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/", data=[("Message", "a"), ("Message", "b"), ("Token", TOKEN)])
    assert resp.status == 400
    assert (await resp.json())["error"] == "Message: given 2 times; send it once"


async def test_not_a_form_is_415(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    resp = await client.post("/", json={"Message": "hi"})
    assert resp.status == 415
    assert "Content-Type" in (await resp.json())["error"]


async def test_wrong_method_is_405(bridge):
    client = await bridge()
    resp = await client.get("/")
    assert resp.status == 405
    assert "error" in await resp.json()


@pytest.mark.parametrize("extend", [None, "not json", '["list"]', '{"UserData": "plain"}'])
async def test_missing_or_malformed_extend_data_is_not_fatal(bridge, fake_upstream, log_stream, extend):
    client = await bridge(env_for(fake_upstream))
    fields = {"Message": "hi", "Token": TOKEN}
    if extend is not None:
        fields["ExtendData"] = extend
    resp = await post_form(client, fields)
    assert resp.status == 200
    line = log_lines(log_stream)[-1]
    if extend in (None, "not json", '["list"]'):
        assert line["extend_data"] in ("missing", "malformed")
    else:
        assert line["user_data"] == "plain"


async def test_upstream_http_error_gives_502_without_key(bridge, fake_upstream, log_stream):
    async def refuse(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": f"Incorrect API key provided: {KEY}"}}, status=401)

    fake_upstream.handler = refuse
    client = await bridge(env_for(fake_upstream, FALLBACK_TEXT=""))
    resp = await post_form(client, {"Message": "hi", "Token": TOKEN})
    assert resp.status == 502
    body = await resp.json()
    assert body["kind"] == "upstream_auth"
    assert "credentials" in body["error"]
    assert KEY not in json.dumps(body) and KEY not in log_stream.getvalue()


async def test_upstream_500_gives_502(bridge, fake_upstream):
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "boom"}}, status=500)

    fake_upstream.handler = broken
    client = await bridge(env_for(fake_upstream, FALLBACK_TEXT=""))
    resp = await post_form(client, {"Message": "hi", "Token": TOKEN})
    assert resp.status == 502
    assert (await resp.json())["kind"] == "upstream_http"
    assert len(fake_upstream.requests) == 2  # one retry on 5xx before giving up


async def test_connection_refused_gives_502(bridge, unused_tcp_port):
    client = await bridge({"OPENAI_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}/v1", "FALLBACK_TEXT": ""})
    resp = await post_form(client, {"Message": "hi"})
    assert resp.status == 502
    assert (await resp.json())["kind"] == "upstream_connect"


async def test_echo_with_no_environment(bridge, log_stream):
    client = await bridge({})
    resp = await post_form(client, {"Message": '[{"role":"user","content":"Hello"}]'})
    assert resp.status == 200
    assert await resp.read() == b'{"Text":"You said: Hello"}'
    events = [entry["event"] for entry in log_lines(log_stream)]
    assert "echo_active" in events and "auth_disabled" in events


async def test_no_secret_in_logs(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream))
    await post_form(client, {"Message": "hi", "Token": TOKEN})
    await post_form(client, {"Message": "hi", "Token": "wrong-" + TOKEN})
    logs = log_stream.getvalue()
    assert logs and TOKEN not in logs and KEY not in logs and "Bearer" not in logs
