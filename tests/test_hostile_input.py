"""Fuzzing the live server: generated bodies on every POST route never get a 500 or a malformed answer.

The real app runs on a loopback port in a background thread, served by the bridge's own
runner; hypothesis drives it with plain blocking HTTP requests, so each example is a real
request on the wire. The generators are in tests/support/fuzzing.py; bench/fuzz.py runs 10,000.
"""

from __future__ import annotations

import asyncio
import http.client
import io
import json
import threading
from collections.abc import Iterator

import pytest
from aiohttp import web
from hypothesis import HealthCheck, given, settings

from bridge.compat import QuietRunner as BridgeRunner
from bridge.config import read_settings
from bridge.process.app import create_app
from tests.support.fuzzing import TOKEN, Request, answer_problem, requests


class LiveServer:
    """The app on 127.0.0.1 in a thread with its own event loop."""

    def __init__(self, env: dict[str, str]) -> None:
        self.loop = asyncio.new_event_loop()
        self.app = create_app(read_settings(env), log_stream=io.StringIO())
        self.runner = BridgeRunner(self.app, handler_cancellation=True)
        self.port = 0
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _start(self) -> None:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        return self.request("POST", path, body, headers)

    def get(self, path: str) -> tuple[int, dict[str, str], bytes]:
        return self.request("GET", path, None, {})

    def request(self, method: str, path: str, body: bytes | None,
                headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()


@pytest.fixture(scope="module")
def live() -> Iterator[LiveServer]:
    with LiveServer({"BRIDGE_TOKENS": TOKEN, "MAX_BODY_BYTES": "65536", "LOG_LEVEL": "ERROR"}) as server:
        yield server


def check_answer(status: int, headers: dict[str, str], body: bytes) -> None:
    """Never a 500; always a JSON body or a well-formed SSE stream."""
    problem = answer_problem(status, headers, body)
    assert problem is None, problem


HYPO = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                       HealthCheck.too_slow])


@HYPO
@given(request=requests)
def test_generated_bodies_on_every_post_route(live: LiveServer, request: Request) -> None:
    """Deep nesting, wrong types, invalid UTF-8, NUL, odd content types, multipart with bad part headers."""
    check_answer(*live.post(*request))


def test_the_server_is_healthy_after_the_fuzzing(live: LiveServer) -> None:
    status, _, body = live.get("/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, _, body = live.post("/", b"Message=hi&Token=" + TOKEN.encode(),
                                {"Content-Type": "application/x-www-form-urlencoded"})
    assert (status, json.loads(body)) == (200, {"Text": "You said: hi"})


def test_invalid_utf8_and_multipart_edge_cases(live: LiveServer) -> None:
    token = b"--xyz\r\nContent-Disposition: form-data; name=\"Token\"\r\n\r\n" + TOKEN.encode() + b"\r\n"
    cases = [  # percent-escaped bad bytes decode to U+FFFD, as browsers do: a valid (odd) message
        (b"Message=%FF%FE&Token=" + TOKEN.encode(), "application/x-www-form-urlencoded", {200}),
        (b"Token=" + TOKEN.encode() + b"&Message=\xff\xfe", "application/x-www-form-urlencoded", {400}),
        (token + b"--xyz\r\nContent-Disposition: form-data; name=\"Message\"\r\n\r\n\xff\xfe\r\n--xyz--\r\n",
         "multipart/form-data; boundary=xyz", {400}),
        (token + b"--xyz\r\nContent-Disposition: form-data; name=\"Message\"; filename=\"a.txt\"\r\n\r\nhi\r\n"
         b"--xyz--\r\n", "multipart/form-data; boundary=xyz", {400}),
    ]
    for body, ctype, expected in cases:
        status, headers, payload = live.post("/", body, {"Content-Type": ctype})
        check_answer(status, headers, payload)
        assert status in expected, (body, status, payload)


def test_huge_and_deep_bodies(live: LiveServer) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    status, _, payload = live.post("/v1/chat/completions", b"x" * 200_000, headers)
    assert status == 413 and b"error" in payload
    deep = b'{"messages": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"
    check_answer(*live.post("/v1/chat/completions", deep, headers))
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    status, _, payload = live.post("/", b"Message=" + b"[" * 30_000, form)
    assert status in (400, 401)
