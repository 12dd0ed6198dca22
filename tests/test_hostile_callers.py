"""Hostile and broken callers get a JSON error with the right status; none can hold the process."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.support.app import log_lines

TOKEN = "caller-token-0123456789abcdef"
USER = [{"role": "user", "content": "hi"}]


async def raw_request(client: Any, data: bytes) -> bytes:
    """Send bytes on a raw connection (and nothing more); return what the server sent until it closed."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def split_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("path, content_type", [("/", "application/x-www-form-urlencoded"),
                                                ("/v1/chat/completions", "application/json")])
async def test_a_body_that_trickles_in_is_cut_at_the_body_deadline(bridge, log_stream, path, content_type):
    client = await bridge({"BODY_TIMEOUT": "0.3"})
    head = (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: 1000\r\n\r\n").encode()
    # ten bytes of a thousand, and the rest never comes: the server must not wait for it
    status, headers, body = split_response(await raw_request(client, head + b"Message=hi"))
    assert status == 408 and headers["connection"] == "close"
    assert "did not arrive within 0.3 seconds" in json.dumps(json.loads(body))
    assert log_lines(log_stream)[-1]["error_kind"] == "body_timeout"


@pytest.mark.parametrize("value", [f"Bearer {TOKEN}\x01".encode(), b"Bearer " + TOKEN.encode() + b"x" * 17000])
async def test_a_malformed_authorization_header_is_refused_without_quoting_it(bridge, log_stream, capfd, value):
    client = await bridge({"BRIDGE_TOKENS": TOKEN})
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: " + value +
            b"\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    status, headers, body = split_response(await raw_request(client, head))
    assert status == 400 and headers["content-type"].startswith("application/json")
    assert json.loads(body)["error"]["code"] == "bad_http_request"
    captured = capfd.readouterr()
    for text in (body.decode("latin-1"), log_stream.getvalue(), captured.out, captured.err):
        assert TOKEN not in text


@pytest.mark.parametrize("field", ["context", "turn_id", "metadata", "extendData"])
async def test_platform_fields_nested_deeper_than_the_encoder_are_logged_safely(bridge, log_stream, field):
    client = await bridge({})
    deep: Any = "x"
    for _ in range(400):
        deep = [deep]
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, field: deep})
    assert resp.status == 200
    assert log_lines(log_stream)[-1]["status"] == 200  # the log line itself survived


async def test_a_forwarded_parameter_nested_too_deeply_is_a_400(bridge):
    client = await bridge({})
    deep: Any = {}
    for _ in range(400):
        deep = {"a": deep}
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "response_format": deep})
    assert resp.status == 400
    assert "too deeply" in (await resp.json())["error"]["message"]


async def test_form_user_data_nested_deeply_is_logged_safely(bridge, log_stream):
    client = await bridge({})
    extend = '{"InstanceId": "i-1", "UserData": ' + "[" * 400 + "]" * 400 + "}"
    resp = await client.post("/", data={"Message": "hi", "ExtendData": extend})
    assert (resp.status, await resp.json()) == (200, {"Text": "You said: hi"})
    assert log_lines(log_stream)[-1]["instance_id"] == "i-1"


@pytest.mark.parametrize("part", [{"type": "text", "text": 5}, {"type": "text"}, {"text": "hi"}, "hi", 7])
async def test_content_parts_of_the_wrong_shape_are_a_400_on_every_route(bridge, part):
    client = await bridge({})
    messages = [{"role": "user", "content": [part]}]
    for path in ("/v1/chat/completions", "/rag/chat/completions", "/audio/chat/completions"):
        resp = await client.post(path, json={"model": "m", "messages": messages, "stream": True})
        assert resp.status == 400, path
        assert (await resp.json())["error"]["param"].startswith("messages[0].content[0]")


@pytest.mark.parametrize("part_headers", [
    b'Content-Disposition: form-data; name="Token\r\n',  # unterminated quote
    b"Content-Disposition\r\n",  # no value
    b"X: \x00\x01\r\nContent-Disposition: form-data; name=Message\r\n",  # control bytes
    b"Content-Type: text/plain; charset=nope\r\nContent-Disposition: form-data; name=Message\r\n",
])
async def test_malformed_multipart_part_headers_are_a_400(bridge, part_headers):
    client = await bridge({"BRIDGE_TOKENS": TOKEN})
    body = b"--xyz\r\n" + part_headers + b"\r\nhi\r\n--xyz--\r\n"
    resp = await client.post("/", data=body, headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    assert resp.status == 400 and "error" in await resp.json()


async def test_a_form_of_thousands_of_fields_is_refused_before_it_is_parsed(bridge):
    client = await bridge({})
    resp = await client.post("/", data=b"&".join([b"a=1"] * 5000) + b"&Message=hi",
                             headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert resp.status == 400 and "form fields" in (await resp.json())["error"]


async def test_a_python_literal_message_too_costly_to_parse_is_a_400(bridge):
    client = await bridge({})
    literal = "[" + ",".join(["{'role':'user','content':'a'}"] * 2000) + "]"  # 8,000 tokens, valid Python
    resp = await client.post("/", data={"Message": literal})
    assert resp.status == 400 and "send JSON" in (await resp.json())["error"]
    as_json = json.dumps([{"role": "user", "content": "a"}] * 2000)  # a history as long, as JSON, is fine
    resp = await client.post("/", data={"Message": as_json})
    assert resp.status == 200


async def test_a_caller_hanging_up_mid_stream_is_logged_as_499(bridge, fake_upstream, log_stream):
    release = asyncio.Event()
    fake_upstream.pause_midway(release)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": USER, "stream": True})
    assert b"first half" in await resp.content.readuntil(b"\n\n")
    resp.close()  # the caller hangs up
    await asyncio.wait_for(fake_upstream.disconnected.wait(), 5)  # the upstream call was closed at once
    line = await log_stream.wait_for_line(lambda entry: entry.get("event") == "request")
    assert line["status"] == 499 and line["client_cancel"] is True


async def test_health_and_readiness(bridge):
    client = await bridge({})
    resp = await client.get("/healthz")
    assert (resp.status, await resp.json()) == (200, {"status": "ok"})
    resp = await client.get("/readyz")
    assert resp.status == 200 and (await resp.json())["upstreams"] == ["echo"]


async def test_a_caller_gone_while_its_answer_is_written_is_logged_as_499(log_stream):
    """stream_reply notes a write to a gone caller (ConnectionError) and returns its response: 499, not 200."""
    from aiohttp import web
    from aiohttp.test_utils import TestClient

    from bridge.config import read_settings
    from bridge.inbound.context import log_of
    from bridge.process.app import create_app
    from tests.support.app import BridgeTestServer

    async def gone_mid_write(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        log_of(request).client_cancel = True  # what stream_reply records on ConnectionError
        return response

    app = create_app(read_settings({}), log_stream=log_stream)
    app.router.add_get("/probe", gone_mid_write)
    async with TestClient(BridgeTestServer(app, host="127.0.0.1")) as client:
        await (await client.get("/probe")).read()
    line = await log_stream.wait_for_line(lambda entry: entry.get("route") == "/probe")
    assert line["status"] == 499 and line["client_cancel"] is True
