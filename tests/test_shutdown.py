"""Graceful shutdown: the server runs as a real process; SIGTERM mid-stream lets the stream finish."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
from pathlib import Path

import aiohttp

from tests.conftest import FakeUpstream

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_log(stream: asyncio.StreamReader, event: str) -> dict[str, object]:
    """Read the server's JSON log lines until one with `event` appears."""
    while True:
        line = await stream.readline()
        assert line, f"server exited before logging {event!r}"
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("event") == event:
            return entry  # type: ignore[no-any-return]


async def wait_until_listening(port: int) -> None:
    """Process start-up: the socket is bound shortly after the 'started' log line."""
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        return
    raise AssertionError("server never listened")


async def test_sigterm_mid_stream_lets_the_stream_finish(fake_upstream: FakeUpstream) -> None:
    release = asyncio.Event()

    fake_upstream.pause_midway(release)
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1", "OPENAI_BASE_URL": fake_upstream.url + "/v1",
           "DRAIN_TIMEOUT": "10", "LOG_LEVEL": "INFO"}
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "app.py"), cwd=ROOT, env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(wait_for_log(proc.stdout, "started"), 10)
        await wait_until_listening(port)
        async with aiohttp.ClientSession() as session:
            body = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
            async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body) as resp:
                first = await resp.content.readuntil(b"\n\n")
                assert b"first half" in first
                proc.send_signal(signal.SIGTERM)
                await asyncio.wait_for(wait_for_log(proc.stdout, "draining"), 5)
                release.set()  # the upstream finishes only after shutdown has begun
                rest = (await resp.content.read()).decode()
        assert "second half" in rest
        assert rest.rstrip().endswith("data: [DONE]")
        assert await asyncio.wait_for(proc.wait(), 10) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
