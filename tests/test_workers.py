"""The Procfile's multi-worker runtime: gunicorn + bridge.process.worker.BridgeWorker as a real process."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.support.app import sdk_client
from tests.support.processes import ROOT, SOMAXCONN, free_port
from tests.support.upstream import FakeUpstream, held_upstream

TOKEN = "workers-test-token"


def gunicorn_env(port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "UPSTREAM"))}
    return {**env, "PORT": str(port), "HOST": "127.0.0.1", "WEB_CONCURRENCY": "2", "BRIDGE_TOKENS": TOKEN,
            "LOG_LEVEL": "INFO", **extra}


async def start_gunicorn(env: dict[str, str]) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge", cwd=ROOT, env=env,  # the Procfile's web process
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


@asynccontextmanager
async def gunicorn(env: dict[str, str]) -> AsyncIterator[tuple[asyncio.subprocess.Process, list[str], list[bytes]]]:
    """Start gunicorn; yield once both workers have started their app.

    The master's log lines and the workers' JSON lines read so far are in the yielded lists.
    """
    proc = await start_gunicorn(env)
    lines: list[str] = []
    out: list[bytes] = []
    try:
        assert proc.stderr is not None and proc.stdout is not None
        async with asyncio.timeout(10):
            while not any("Listening at:" in line for line in lines):
                line = (await proc.stderr.readline()).decode()
                assert line, f"gunicorn exited before listening: {''.join(lines)}"
                lines.append(line)
            while sum(b'"event":"started"' in line for line in out) < 2:
                out.append(await proc.stdout.readline())
                assert out[-1], f"gunicorn exited before its workers started: {''.join(lines)}"
        yield proc, lines, out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def wait_for_log(stream: asyncio.StreamReader, event: str) -> dict[str, object]:
    """Read the workers' JSON log lines until one with `event` appears."""
    while True:
        line = await stream.readline()
        assert line, f"gunicorn exited before logging {event!r}"
        if line.startswith(b"{") and (entry := json.loads(line)).get("event") == event:
            return entry  # type: ignore[no-any-return]


async def stop(proc: asyncio.subprocess.Process, lines: list[str],
               early: list[bytes]) -> tuple[list[dict[str, object]], str]:
    """SIGTERM gunicorn and wait for it; return the workers' JSON log lines and gunicorn's log."""
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    except TimeoutError:
        proc.kill()
        out, err = await proc.communicate()
        raise AssertionError("".join(lines) + err.decode() + out.decode()) from None
    text = b"".join(early).decode() + out.decode()
    records = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    return records, "".join(lines) + err.decode()


async def test_two_workers_answer_both_endpoints_and_stop_cleanly_on_sigterm() -> None:
    port = free_port()
    async with gunicorn(gunicorn_env(port, UPSTREAM="echo")) as (proc, lines, early):
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as session:
            form = {"Token": TOKEN, "Message": '[{"role": "user", "content": "form hello"}]'}
            async with session.post(base + "/", data=form) as resp:
                assert resp.status == 200
                assert await resp.json() == {"Text": "You said: form hello"}
        client = sdk_client(base + "/v1", TOKEN)
        async with client:
            stream = await client.chat.completions.create(
                model="m", messages=[{"role": "user", "content": "stream hello"}], stream=True)
            text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
        assert text == "You said: stream hello"

        records, log = await stop(proc, lines, early)
    assert proc.returncode == 0, log
    assert log.count("Booting worker") == 2, log
    assert "Shutting down: Master" in log
    served = sorted((r["route"], r["status"]) for r in records if r.get("event") == "request")
    assert served == [("/", 200), ("/v1/chat/completions", 200)]


async def test_sigterm_mid_stream_lets_a_worker_finish_the_stream(fake_upstream: FakeUpstream) -> None:
    release = asyncio.Event()

    fake_upstream.pause_midway(release)
    port = free_port()
    env = gunicorn_env(port, OPENAI_BASE_URL=fake_upstream.url + "/v1", DRAIN_TIMEOUT="10")
    async with gunicorn(env) as (proc, lines, early):
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
        headers = {"Authorization": f"Bearer {TOKEN}"}
        async with aiohttp.ClientSession() as session:
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body,
                                    headers=headers) as resp:
                assert b"first half" in await resp.content.readuntil(b"\n\n")
                proc.send_signal(signal.SIGTERM)
                assert proc.stdout is not None
                async with asyncio.timeout(5):  # the worker holding the stream starts draining
                    while (await wait_for_log(proc.stdout, "draining")).get("in_flight") != 1:
                        pass
                release.set()  # the upstream finishes only after shutdown has begun
                rest = await resp.content.read()
        _, log = await stop(proc, lines, early)
    assert b"second half" in rest and rest.endswith(b"data: [DONE]\n\n")
    assert proc.returncode == 0, log


async def test_a_configuration_error_stops_start_up_with_a_clear_message() -> None:
    for setting, message in (("MAX_HISTORY=lots", "MAX_HISTORY: expected a whole number, got 'lots'"),
                             ("UPSTREAM=nope", "UPSTREAM: unknown upstream 'nope'")):
        name, value = setting.split("=")
        proc = await start_gunicorn(gunicorn_env(free_port(), **{name: value}))
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 2
        assert f"configuration error: {message}" in err.decode()
        assert "Booting worker" not in err.decode()  # stopped before forking any


async def test_under_gunicorn_the_drain_cuts_honestly_and_exits_in_time(fake_upstream: FakeUpstream) -> None:
    held_upstream(fake_upstream)
    port = free_port()
    env = gunicorn_env(port, OPENAI_BASE_URL=fake_upstream.url + "/v1", DRAIN_TIMEOUT="1",
                       UPSTREAM_TTFT_TIMEOUT="30", UPSTREAM_IDLE_TIMEOUT="30")
    async with gunicorn(env) as (proc, lines, early):
        headers = {"Authorization": f"Bearer {TOKEN}"}
        body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "stream"}]}
        async with aiohttp.ClientSession() as session:
            stream = await session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=headers)
            assert b"first half" in await stream.content.readuntil(b"\n\n")
            proc.send_signal(signal.SIGTERM)
            signalled = asyncio.get_running_loop().time()
            rest = await stream.content.read()
        records, log = await stop(proc, lines, early)
        exited = asyncio.get_running_loop().time() - signalled
    assert b'"code":"shutdown"' in rest and rest.endswith(b"data: [DONE]\n\n")
    assert proc.returncode == 0 and exited < 1 + 1.5, log  # DRAIN_TIMEOUT + 1 s, and gunicorn's own exit
    cut = [r for r in records if r.get("event") == "request"]
    assert [(r["route"], r["error_kind"], r["cut"]) for r in cut] == [("/v1/chat/completions", "shutdown", True)]
    assert "Bad file descriptor" not in log and "Traceback" not in log


async def test_bad_worker_counts_stop_start_up() -> None:
    for value, message in (("abc", "WEB_CONCURRENCY: expected a whole number, got 'abc'"),
                           ("0", "WEB_CONCURRENCY: must be between 1 and 256, got '0'")):
        proc = await start_gunicorn(gunicorn_env(free_port(), WEB_CONCURRENCY=value))
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == 2 and f"configuration error: {message}" in err.decode()
        assert "Traceback" not in err.decode()


def counter_files(folder: Path) -> list[str]:
    """The per-worker counter files of prometheus_client's multiprocess mode (one per worker pid)."""
    return [name for name in os.listdir(folder) if name.startswith("counter_")]


async def test_one_scrape_shows_every_workers_counts(tmp_path: Path) -> None:
    """Prometheus multiprocess mode: whichever worker answers /metrics, the counts are all workers'."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    form = {"Token": TOKEN, "Message": "hello"}
    async with gunicorn(gunicorn_env(port, UPSTREAM="echo", PROMETHEUS_MULTIPROC_DIR=str(tmp_path))) as (proc, *_):
        sent = 0
        # A new connection per request: the kernel hands each to either worker. A worker's
        # counter file appears with its first answered request.
        while len(counter_files(tmp_path)) < 2:
            assert sent < 200, "one worker answered every request"
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                async with session.post(base + "/", data=form) as resp:
                    assert resp.status == 200
            sent += 1
        for _ in range(6):  # several scrapes, on new connections: either worker may answer each
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
                async with session.get(base + "/metrics") as resp:
                    text = await resp.text()
            assert f'bridge_requests_total{{agent="default",route="/",status="200"}} {float(sent)}' in text, text
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.communicate(), 10)


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs iproute2's ss to read the listen backlog")
async def test_gunicorn_listens_with_the_configured_backlog() -> None:
    port = free_port()
    async with gunicorn(gunicorn_env(port, UPSTREAM="echo", LISTEN_BACKLOG="1500")) as (proc, lines, early):
        ss = await asyncio.create_subprocess_exec("ss", "-Hltn", f"sport = :{port}", stdout=asyncio.subprocess.PIPE)
        out, _ = await ss.communicate()
        assert int(out.split()[2]) == min(1500, SOMAXCONN)  # what gunicorn set, kept by each worker
        await stop(proc, lines, early)


async def test_sighup_to_the_master_reloads_the_agents_in_every_worker_without_a_restart(tmp_path):
    """SIGHUP reaches each worker (gunicorn.conf.py passes it on); a broken file keeps the agents."""
    agents = tmp_path / "agents.json"
    agents.write_text(json.dumps({"agents": {"sales": {"BRIDGE_TOKENS": "sales-tok-1", "UPSTREAM_MODEL": "v1"}}}))
    port = free_port()
    async with gunicorn(gunicorn_env(port, BRIDGE_AGENTS=str(agents))) as (proc, lines, early):
        assert proc.stdout is not None
        agents.write_text('{"agents": {"sales": {"UPSTREAM_MODELL": "v2"}}}')
        proc.send_signal(signal.SIGHUP)
        for _ in range(2):
            failed = await wait_for_log(proc.stdout, "reload_failed")
            assert "UPSTREAM_MODELL" in str(failed["error"])
        agents.write_text(json.dumps({"agents": {"sales": {"BRIDGE_TOKENS": "sales-tok-1", "UPSTREAM_MODEL": "v2"}}}))
        proc.send_signal(signal.SIGHUP)
        for _ in range(2):
            await wait_for_log(proc.stdout, "reloaded")
        async with aiohttp.ClientSession() as session:
            for _ in range(4):  # whichever worker answers
                async with session.get(f"http://127.0.0.1:{port}/v1/models",
                                       headers={"Authorization": "Bearer sales-tok-1"}) as resp:
                    assert [m["id"] for m in (await resp.json())["data"]] == ["v2"]
        _, log = await stop(proc, lines, early)
        assert log.count("Booting worker") == 2  # reloaded in place: no worker was restarted
