"""For the tests that start the service as a real process (`python app.py`, gunicorn)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout: where app.py and the Procfile are
SOMAXCONN = int(Path("/proc/sys/net/core/somaxconn").read_text())  # the kernel's cap on any listen backlog


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for_log(stream: asyncio.StreamReader, event: str, seen: list[dict[str, object]]) -> dict[str, object]:
    """Read the server's JSON log lines (into `seen`) until one with `event` appears."""
    while True:
        line = await stream.readline()
        assert line, f"server exited before logging {event!r}"
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        seen.append(entry)
        if entry.get("event") == event:
            return entry  # type: ignore[no-any-return]


@asynccontextmanager
async def server(**env: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str, list[dict[str, object]]]]:
    """`python app.py` on a free port; yields once it listens (the "started" line comes after bind)."""
    port = free_port()
    full = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "UPSTREAM"))}
    full["UPSTREAM_PROBE"] = "off"  # the start-up probe is tested on its own (tests/test_startup_checks.py)
    full.update({"PORT": str(port), "HOST": "127.0.0.1", "LOG_LEVEL": "INFO", **env})
    proc = await asyncio.create_subprocess_exec(sys.executable, str(ROOT / "app.py"), cwd=ROOT, env=full,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    seen: list[dict[str, object]] = []
    try:
        assert proc.stdout is not None
        await asyncio.wait_for(wait_for_log(proc.stdout, "started", seen), 10)
        yield proc, f"http://127.0.0.1:{port}", seen
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop_and_collect(proc: asyncio.subprocess.Process, seen: list[dict[str, object]]) -> list[dict[str, object]]:
    """Every log line until the process exits."""
    assert proc.stdout is not None
    rest = await asyncio.wait_for(proc.stdout.read(), 10)
    seen += [json.loads(line) for line in rest.splitlines() if line.startswith(b"{")]
    return seen
