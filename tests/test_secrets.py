"""No token, API key or Authorization header ever reaches a log line or a response."""

from __future__ import annotations

import json

from aiohttp import web

from bridge.redaction import Redactor
from tests.support.upstream import FakeUpstream, sse

KEY = "sk-live-upstream-9f8e7d6c5b4a3210"
TOKENS = ("caller-token-one-111", "caller-token-two-222")
METRICS_TOKEN = "metrics-token-333333"


async def test_representative_requests_leak_nothing(bridge, fake_upstream: FakeUpstream, log_stream) -> None:
    answers = iter(["ok", "echo-key", "401", "mid-stream-echo"])

    async def varied(request: web.Request) -> web.StreamResponse:
        mode = next(answers, "ok")
        if mode == "echo-key":  # a provider that quotes our key back in its error text
            return web.json_response({"error": {"message": f"bad key {KEY} (Bearer {KEY})"}}, status=500)
        if mode == "401":
            return web.json_response({"error": {"message": f"Incorrect API key provided: {KEY[:8]}..."}},
                                     status=401)
        if mode == "mid-stream-echo":
            chunk = {"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": None}]}
            return web.Response(body=sse([chunk, {"error": {"message": f"key {KEY} revoked"}}], done=False),
                                content_type="text/event-stream")
        return await fake_upstream.stream_openai(request)

    fake_upstream.handler = varied
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "OPENAI_API_KEY": KEY,
                           "BRIDGE_TOKENS": ",".join(TOKENS), "METRICS_TOKEN": METRICS_TOKEN,
                           "FALLBACK_TEXT": "", "LOG_LEVEL": "DEBUG"})
    bodies: list[str] = []

    async def record(resp: web.StreamResponse) -> None:
        bodies.append(json.dumps(dict(resp.headers)) + await resp.text())  # type: ignore[attr-defined]

    chat = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    await record(await client.post("/", data={"Message": "hi", "Token": TOKENS[0]}))
    await record(await client.post("/", data={"Message": "hi", "Token": TOKENS[1]}))  # upstream echoes the key
    await record(await client.post("/", data={"Message": "hi", "Token": TOKENS[0] + "x"}))
    for auth in (f"Bearer {TOKENS[1]}", f"Bearer {TOKENS[0]}", f"Bearer {TOKENS[1]}zz", f"Basic {TOKENS[0]}"):
        await record(await client.post("/v1/chat/completions", json=chat, headers={"Authorization": auth}))
    await record(await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}))
    await record(await client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}x"}))

    logs = log_stream.getvalue()
    everything = logs + "".join(bodies)
    assert "upstream_auth" in logs and "upstream_http" in logs  # the faults really happened
    for secret in (KEY, KEY[:8] + "...", *TOKENS, METRICS_TOKEN):
        assert secret not in everything, secret
    assert "Bearer" not in logs and "authorization" not in logs.lower()
    # the upstream did receive the key: redaction is on the way out only
    assert fake_upstream.requests[0].headers["Authorization"] == f"Bearer {KEY}"


def test_redactor_masks_configured_secrets_and_credential_shapes() -> None:
    redact = Redactor(["my-configured-secret"])
    text = redact("x my-configured-secret y Bearer abcdefghijklmnop z sk-abcdefghijklmnopqrst")
    assert "my-configured-secret" not in text and "abcdefghijklmnop" not in text
    assert "sk-abcdefghijklmnopqrst" not in text
    assert redact("plain words stay") == "plain words stay"


def test_credential_shapes_of_any_case_are_masked() -> None:
    redact = Redactor()
    for scheme in ("Bearer", "BEARER", "bearer", "Basic", "BASIC"):
        assert "abcdefgh12345678" not in redact(f"auth: {scheme} abcdefgh12345678")


def test_an_upstream_error_is_masked_everywhere_it_is_kept() -> None:
    from bridge.errors import ErrorKind, UpstreamError

    exc = UpstreamError(ErrorKind.UPSTREAM_HTTP, "upstream said: key my-configured-secret is bad")
    exc.redact(Redactor(["my-configured-secret"]))
    assert "my-configured-secret" not in exc.message
    assert "my-configured-secret" not in str(exc) and "my-configured-secret" not in repr(exc.args)
