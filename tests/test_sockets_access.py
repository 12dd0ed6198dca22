"""Who may open a socket: Twilio's X-Twilio-Signature, checked against Twilio's own RequestValidator
(the `twilio` package), bridge tokens in the socket URL, and per-agent Twilio accounts."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from twilio.request_validator import RequestValidator, get_signature_algorithm

from tests.support.app import BridgeFactory, LogStream, log_lines
from tests.support.socket_clients import RETELL, TWILIO, RelayClient, RetellClient

AUTH_TOKEN = "twilio-auth-token-0123456789abcdef"
BRIDGE_TOKEN = "bridge-token-0123456789"
PUBLIC = "https://voice.example.com"
HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode()}


async def handshake(client: TestClient, path: str, **headers: str) -> tuple[int, Any]:
    """The bridge's answer to a WebSocket handshake: its status, and its JSON body when refused."""
    resp = await client.get(path, headers={**HANDSHAKE, **headers})
    body = None if resp.status == 101 else await resp.json()
    resp.close()
    return resp.status, body


async def relay_session(client: TestClient, path: str, **headers: str) -> RelayClient:
    platform = RelayClient(await client.ws_connect(path, headers=headers), TWILIO)
    await platform.send("setup")
    return platform


def twilio_signature(url: str, token: str = AUTH_TOKEN) -> str:
    return RequestValidator(token).compute_signature(url, {})  # type: ignore[no-any-return]


# -- the signature -------------------------------------------------------------------------------


async def test_a_signed_handshake_is_served_and_a_wrong_one_refused(bridge: BridgeFactory,
                                                                    log_stream: LogStream) -> None:
    client = await bridge({"UPSTREAM": "echo", "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_URL": PUBLIC,
                           "BRIDGE_TOKENS": BRIDGE_TOKEN})
    path = "/conversation-relay?callReference=bar"
    signature = twilio_signature(f"wss://voice.example.com{path}")
    platform = await relay_session(client, path, **{"X-Twilio-Signature": signature})
    assert await platform.ask("hello") == "You said: hello"  # no bridge token needed: Twilio signed it
    for headers in ({}, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"},
                    {"X-Twilio-Signature": twilio_signature(f"wss://voice.example.com{path}", "another-account")},
                    {"X-Twilio-Signature": twilio_signature("wss://voice.example.com/conversation-relay")}):
        status, body = await handshake(client, path, **headers)
        assert status == 403 and "X-Twilio-Signature" in body["error"]
    refused = [r for r in log_lines(log_stream) if r.get("status") == 403]
    assert len(refused) == 4 and {r["error_kind"] for r in refused} == {"forbidden"}
    text = log_stream.getvalue()
    assert signature not in text and AUTH_TOKEN not in text


# What Twilio may have signed, and the path it then requests (as on the wire): the bridge must agree
# with Twilio's own validator on every one (the host is PUBLIC_URL's).
CASES = [
    ("wss://voice.example.com/conversation-relay", "/conversation-relay"),
    ("wss://voice.example.com/conversation-relay?token=abc&x=1", "/conversation-relay?token=abc&x=1"),
    ("wss://voice.example.com/conversation-relay?token=abc&x=1", "/conversation-relay?x=1&token=abc"),
    ("wss://voice.example.com:80/conversation-relay", "/conversation-relay"),  # the validator adds :80 for wss
    ("wss://voice.example.com:443/conversation-relay", "/conversation-relay"),
    ("wss://voice.example.com/conversation-relay?name=J%C3%BCrgen", "/conversation-relay?name=J%C3%BCrgen"),
    ("wss://voice.example.com/conversation-relay?q=a%20b", "/conversation-relay?q=a+b"),
    ("wss://other.example.com/conversation-relay", "/conversation-relay"),
    ("ws://voice.example.com/conversation-relay", "/conversation-relay"),
    ("wss://voice.example.com/agents/default/conversation-relay", "/agents/default/conversation-relay"),
]


@pytest.mark.parametrize("signed_url, path", CASES)
async def test_the_bridge_agrees_with_twilios_request_validator(bridge: BridgeFactory, signed_url: str,
                                                                path: str) -> None:
    client = await bridge({"UPSTREAM": "echo", "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_URL": PUBLIC})
    signature = twilio_signature(signed_url)
    expected = RequestValidator(AUTH_TOKEN).validate(f"wss://voice.example.com{path}", {}, signature)
    status, _ = await handshake(client, path, **{"X-Twilio-Signature": signature})
    assert status == (101 if expected else 403)


async def test_hmac_sha256_when_the_signature_settings_name_it(bridge: BridgeFactory) -> None:
    client = await bridge({"UPSTREAM": "echo", "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_URL": PUBLIC})
    url, settings = "wss://voice.example.com/conversation-relay", "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    algorithm = get_signature_algorithm(settings)
    signature = RequestValidator(AUTH_TOKEN).compute_signature(url, {}, algorithm)
    assert RequestValidator(AUTH_TOKEN).validate(url, {}, signature, algorithm)
    headers = {"X-Twilio-Signature": signature, "X-Twilio-Webhooks-Signature-Settings": settings}
    assert (await handshake(client, "/conversation-relay", **headers))[0] == 101
    assert (await handshake(client, "/conversation-relay", **{"X-Twilio-Signature": signature}))[0] == 403  # SHA-1
    unknown = {"X-Twilio-Signature": signature, "X-Twilio-Webhooks-Signature-Settings": "algorithm=HMAC_MD5"}
    assert (await handshake(client, "/conversation-relay", **unknown))[0] == 403


async def test_without_public_url_the_request_host_is_signed(bridge: BridgeFactory) -> None:
    client = await bridge({"UPSTREAM": "echo", "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    host = f"{client.host}:{client.port}"
    signature = twilio_signature(f"wss://{host}/conversation-relay")
    assert (await handshake(client, "/conversation-relay", **{"X-Twilio-Signature": signature}))[0] == 101
    wrong = twilio_signature("wss://voice.example.com/conversation-relay")
    assert (await handshake(client, "/conversation-relay", **{"X-Twilio-Signature": wrong}))[0] == 403
    bad_port = {"X-Twilio-Signature": signature, "Host": "voice.example.com:notaport"}
    assert (await handshake(client, "/conversation-relay", **bad_port))[0] == 403  # never a 500


async def test_signature_bytes_match_a_hand_computed_hmac(bridge: BridgeFactory) -> None:
    """The scheme itself, spelled out: base64(HMAC-SHA1(auth token, URL)), as the onboarding page says."""
    url = "wss://voice.example.com/conversation-relay"
    mac = hmac.new(AUTH_TOKEN.encode(), url.encode(), hashlib.sha1).digest()
    assert base64.b64encode(mac).decode() == twilio_signature(url)
    client = await bridge({"UPSTREAM": "echo", "TWILIO_AUTH_TOKEN": AUTH_TOKEN, "PUBLIC_URL": PUBLIC + "/"})
    assert (await handshake(client, "/conversation-relay", **{"X-Twilio-Signature": base64.b64encode(mac).decode()}))[
        0] == 101


# -- bridge tokens ---------------------------------------------------------------------------------


async def test_a_bridge_token_in_the_url(bridge: BridgeFactory, log_stream: LogStream) -> None:
    client = await bridge({"UPSTREAM": "echo", "BRIDGE_TOKENS": BRIDGE_TOKEN})
    for path in ("/conversation-relay", "/conversation-relay?token=wrong-token", "/retell/call_1",
                 "/retell/wrong-token/call_1"):
        status, body = await handshake(client, path)
        assert status == 401 and "token" in body["error"]
    platform = await relay_session(client, f"/conversation-relay?token={BRIDGE_TOKEN}")
    assert await platform.ask("hi") == "You said: hi"
    retell = RetellClient(await client.ws_connect(f"/retell/{BRIDGE_TOKEN}/call_1"), RETELL)
    config, begin = await retell.opening()
    assert config["response_type"] == "config" and begin["response_id"] == 0
    await platform.ws.close()
    await retell.ws.close()
    await log_stream.wait_for_line(lambda r: r.get("call_id") == "call_1" and r.get("status") == 101)
    assert BRIDGE_TOKEN not in log_stream.getvalue()
    routes = {r["route"] for r in log_lines(log_stream) if r.get("event") == "request"}
    assert "/retell/{token}/{call_id}" in routes


async def test_each_agent_has_its_own_twilio_account(bridge: BridgeFactory, tmp_path: Path) -> None:
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps({"agents": {
        "sales": {"TWILIO_AUTH_TOKEN": "sales-account-token-0123", "GREETING": "Sales, hello."},
        "support": {"BRIDGE_TOKENS": "support-token-0123456"},
    }}))
    client = await bridge({"UPSTREAM": "echo", "BRIDGE_AGENTS": str(agents), "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
                           "PUBLIC_URL": PUBLIC})
    path = "/agents/sales/conversation-relay"
    own = twilio_signature(f"wss://voice.example.com{path}", "sales-account-token-0123")
    platform = await relay_session(client, path, **{"X-Twilio-Signature": own})
    assert await platform.next() == {"type": "text", "token": "Sales, hello.", "last": True}  # the agent's GREETING
    others = twilio_signature(f"wss://voice.example.com{path}")  # the default agent's account
    assert (await handshake(client, path, **{"X-Twilio-Signature": others}))[0] == 403
    default = twilio_signature("wss://voice.example.com/conversation-relay")
    assert (await handshake(client, "/conversation-relay", **{"X-Twilio-Signature": default}))[0] == 101
    # an agent with no Twilio account of its own keeps the environment's; its token chooses it
    support = "/conversation-relay?token=support-token-0123456"
    assert (await handshake(client, support, **{"X-Twilio-Signature": default}))[0] == 403
    signed = twilio_signature(f"wss://voice.example.com{support}")
    assert (await handshake(client, support, **{"X-Twilio-Signature": signed}))[0] == 101
    assert (await handshake(client, "/agents/nobody/conversation-relay"))[0] == 404
    assert (await handshake(client, "/agents/nobody/retell/call_1"))[0] == 404


async def raw_handshake(port: int, headers: list[bytes]) -> bytes:
    """The status of a handshake sent byte for byte (aiohttp's client would not send these bytes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    lines = [b"GET /conversation-relay HTTP/1.1", *headers, *(f"{k}: {v}".encode() for k, v in HANDSHAKE.items())]
    writer.write(b"\r\n".join(lines) + b"\r\n\r\n")
    status = (await reader.readline()).split()[1]
    writer.close()
    return status


async def test_a_handshake_with_bytes_that_are_not_utf8_is_refused_not_a_server_error(bridge: BridgeFactory) -> None:
    """A signature or Host that is not UTF-8 reaches the check as surrogates: refused (403), never a 500."""
    client = await bridge({"UPSTREAM": "echo", "TWILIO_AUTH_TOKEN": AUTH_TOKEN})
    assert client.port is not None
    assert await raw_handshake(client.port, [b"Host: localhost", b"X-Twilio-Signature: \xff\xfe"]) == b"403"
    assert await raw_handshake(client.port, [b"Host: h\xffst", b"X-Twilio-Signature: abc"]) == b"403"
