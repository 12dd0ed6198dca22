"""The server as a real process (`python app.py`): start-up errors, the drain, the honest cut."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import sys
import time

import aiohttp
import pytest

from bridge.config import DEFAULT_FAILURE_TEXT
from tests.support.processes import ROOT, SOMAXCONN, server, stop_and_collect, wait_for_log
from tests.support.tool_servers import model_that_uses, tools_file, weather_tool
from tests.support.upstream import FakeUpstream, held_upstream


async def sigterm_cuts_a_stream_and_a_form(proc: asyncio.subprocess.Process, base: str, fake: FakeUpstream,
                                           heard: bytes, streamed: str, posted: str) -> None:
    """A stream (once `heard` arrived) and a form request, both held upstream, then SIGTERM with
    DRAIN_TIMEOUT=1: the stream ends with the `shutdown` event and [DONE], the form speaks its
    phrase, and the process exits within DRAIN_TIMEOUT + 1 s."""
    async with aiohttp.ClientSession() as session:
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": streamed}]}
        stream = await session.post(base + "/v1/chat/completions", json=body)
        assert heard in await stream.content.readuntil(b"\n\n")
        form = asyncio.ensure_future(session.post(base + "/", data={"Message": posted}))
        await fake.wait_for_requests(2)  # the upstream holds both
        proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        rest = (await stream.content.read()).decode()
        answer = await (await form).json()
        code = await asyncio.wait_for(proc.wait(), 5)
        exited = time.monotonic() - signalled
    events = [e.removeprefix("data: ") for e in rest.split("\n\n") if e]
    assert json.loads(events[-2])["error"]["code"] == "shutdown" and events[-1] == "[DONE]"
    assert answer == {"Text": DEFAULT_FAILURE_TEXT}
    assert code == 0 and exited < 1 + 1.0  # DRAIN_TIMEOUT + 1 s


async def test_sigterm_mid_stream_lets_the_stream_finish(fake_upstream: FakeUpstream) -> None:
    release = asyncio.Event()
    fake_upstream.pause_midway(release)
    async with server(OPENAI_BASE_URL=fake_upstream.url + "/v1", DRAIN_TIMEOUT="10") as (proc, base, seen):
        assert proc.stdout is not None
        async with aiohttp.ClientSession() as session:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(base + "/v1/chat/completions", json=body) as resp:
                assert b"first half" in await resp.content.readuntil(b"\n\n")
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(wait_for_log(proc.stdout, "draining", seen), 5)
                release.set()  # the upstream finishes only after shutdown has begun
                rest = (await resp.content.read()).decode()
        assert "second half" in rest and rest.rstrip().endswith("data: [DONE]")
        assert await asyncio.wait_for(proc.wait(), 10) == 0


async def test_what_the_drain_cannot_finish_is_cut_honestly(fake_upstream: FakeUpstream) -> None:
    held_upstream(fake_upstream)
    async with server(OPENAI_BASE_URL=fake_upstream.url + "/v1", DRAIN_TIMEOUT="1",
                      UPSTREAM_TTFT_TIMEOUT="30", UPSTREAM_IDLE_TIMEOUT="30") as (proc, base, seen):
        assert proc.stdout is not None
        await sigterm_cuts_a_stream_and_a_form(proc, base, fake_upstream, b"first half", "stream", "form")
    lines = [r for r in await stop_and_collect(proc, seen) if r.get("event") == "request"]
    assert sorted((r["route"], r["error_kind"], r["cut"]) for r in lines) == [
        ("/", "shutdown", True), ("/v1/chat/completions", "shutdown", True)]
    assert not any(r.get("client_cancel") for r in lines)


async def test_readiness_turns_503_while_the_listener_still_accepts() -> None:
    async with server(UPSTREAM="echo", DRAIN_DELAY="1", DRAIN_TIMEOUT="2") as (proc, base, seen):
        assert proc.stdout is not None
        async with aiohttp.ClientSession() as session:
            assert (await session.get(base + "/readyz")).status == 200
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(wait_for_log(proc.stdout, "draining", seen), 5)
            ready = await session.get(base + "/readyz")
            assert ready.status == 503 and (await ready.json())["status"] == "draining"
            answer = await session.post(base + "/", data={"Message": "still here"}, headers={"Connection": "close"})
            assert await answer.json() == {"Text": "You said: still here"}  # a new request is still served
        assert await asyncio.wait_for(proc.wait(), 5) == 0


async def run_to_exit(**env: str) -> tuple[int, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "UPSTREAM"))}
    full["UPSTREAM_PROBE"] = "off"  # the start-up probe is tested on its own (tests/test_startup_checks.py)
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "app.py"), cwd=ROOT,
                                                env={**full, "HOST": "127.0.0.1", **env},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode is not None
    return proc.returncode, err.decode()


async def test_a_port_in_use_is_one_clear_line_naming_the_address() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err = await run_to_exit(PORT=str(port))
    assert code == 1
    assert err.startswith(f"start-up error: could not listen on http://127.0.0.1:{port}")
    assert "Traceback" not in err


async def test_an_empty_port_is_a_configuration_error() -> None:
    code, err = await run_to_exit(PORT="")
    assert code == 2 and "configuration error: PORT: is set but empty" in err


async def listen_backlog(url: str) -> int:
    """The accept queue the kernel keeps for the listening socket (ss's Send-Q of a LISTEN socket)."""
    port = url.rsplit(":", 1)[1]
    ss = await asyncio.create_subprocess_exec("ss", "-Hltn", f"sport = :{port}", stdout=asyncio.subprocess.PIPE)
    out, _ = await ss.communicate()
    return int(out.split()[2])


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss to read the listen backlog")
async def test_the_listen_backlog_is_the_configured_one() -> None:
    async with server(UPSTREAM="echo") as (_, url, _):
        assert await listen_backlog(url) == min(2048, SOMAXCONN)  # the default: bursts of new calls
    async with server(UPSTREAM="echo", LISTEN_BACKLOG="1500") as (_, url, _):
        assert await listen_backlog(url) == min(1500, SOMAXCONN)


async def test_a_cut_while_a_bridge_tool_runs_ends_like_any_other_cut(fake_upstream: FakeUpstream, weather_server,
                                                                   tmp_path) -> None:
    """SIGTERM while a bridge tool runs (issue 20, item 6): at DRAIN_TIMEOUT the stream ends with the
    `shutdown` error event and [DONE], the form route speaks its phrase, the process exits in time.
    (A cancelled asyncio.gather reports cancelled() == False on 3.11: the answer used to just stop.)"""
    model_that_uses(fake_upstream, "get_weather", {"city": "Paris"})
    tools = tools_file(tmp_path, [weather_tool(weather_server.url("/slow"), timeout=30)], filler="Let me check.")
    async with server(OPENAI_BASE_URL=fake_upstream.url + "/v1", BRIDGE_TOOLS=tools, WEATHER_KEY="wk-1234567890",
                      DRAIN_TIMEOUT="1", UPSTREAM_TOTAL_TIMEOUT="60") as (proc, base, _):
        # the filler is heard: the tool runs now
        await sigterm_cuts_a_stream_and_a_form(proc, base, fake_upstream, b"Let me check.", "weather?", "weather?")
