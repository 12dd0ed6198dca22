"""LiveKit's and Pipecat's Responses clients against the bridge: do they work, and does a follow-up
reach the upstream with its whole history?

    .venv/bin/python bench/responses_clients.py           # the clients' venv is built once
    .venv/bin/python bench/responses_clients.py --venv /tmp/clients --clients livekit-websocket

1. Builds a venv of the clients' own (CLIENT_PINS, from the package index; their pins need
   not match the bridge's) in bench/results/clients-venv, unless it is there already.
2. Starts a recording fake OpenAI upstream (in this process) and the bridge (`python app.py`).
3. Runs bench/responses_drive.py in the clients' venv: each client says two turns ("My name
   is Ann.", then "What is my name?"). The fake answers each with the user messages it got,
   joined, so the second answer shows the history the upstream saw.
4. Prints a Markdown table (client, answers, second turn sent as `previous_response_id`,
   messages the upstream got on it, platform logged), as bench/README.md records it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from procs import ROOT, free_port, service_env

CLIENT_PINS = ("livekit-agents[openai]==1.8.9", "livekit-plugins-openai==1.8.9", "pipecat-ai[openai]==1.14.0")
DEFAULT_VENV = ROOT / "bench" / "results" / "clients-venv"
TOKEN = "bench-token"


def ensure_venv(venv: Path) -> Path:
    """The clients' venv's python, built (once) with CLIENT_PINS."""
    python = venv / "bin" / "python"
    marker = venv / "pins.txt"
    if python.exists() and marker.exists() and marker.read_text() == "\n".join(CLIENT_PINS):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *CLIENT_PINS], check=True)
    marker.write_text("\n".join(CLIENT_PINS))
    return python


class Upstream:
    """A fake OpenAI Chat Completions upstream that records every request's messages and answers
    with the user messages it got, joined."""

    def __init__(self) -> None:
        self.requests: list[list[dict[str, Any]]] = []

    async def completions(self, request: web.Request) -> web.StreamResponse:
        messages = (await request.json())["messages"]
        self.requests.append(messages)
        text = " | ".join(str(m["content"]) for m in messages if m["role"] == "user")
        base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": "bench"}
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": text},
                                        "finish_reason": None}]},
                  {**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                  {**base, "choices": [], "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}]
        body = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks) + b"data: [DONE]\n\n"
        return web.Response(body=body, content_type="text/event-stream")


async def run(python: Path, clients: str) -> list[dict[str, Any]]:
    upstream = Upstream()
    app = web.Application()
    app.router.add_post("/v1/chat/completions", upstream.completions)
    runner = web.AppRunner(app)
    await runner.setup()
    upstream_port, port = free_port(), free_port()
    await web.TCPSite(runner, "127.0.0.1", upstream_port).start()
    bridge = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), cwd=ROOT, env=service_env(port, upstream_port, SPEECH_FILTER="off"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: list[dict[str, Any]] = []
    try:
        assert bridge.stdout is not None
        async with asyncio.timeout(20):
            while b'"event":"started"' not in await bridge.stdout.readline():
                pass
        reader = asyncio.ensure_future(_read_lines(bridge.stdout, lines))
        drive = await asyncio.create_subprocess_exec(
            str(python), str(ROOT / "bench" / "responses_drive.py"), "--host", f"127.0.0.1:{port}", "--token",
            TOKEN, "--clients", clients, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env={**os.environ, "LOGURU_LEVEL": "WARNING"})
        out, _ = await asyncio.wait_for(drive.communicate(), 300)
    finally:
        bridge.terminate()
        await bridge.wait()
        await runner.cleanup()
    await reader
    results = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    turns = [line for line in lines if line.get("route") == "/v1/responses" and line.get("status") != 101]
    for i, result in enumerate(results):  # two turns each, in order
        result["upstream_messages"] = [len(m) for m in upstream.requests[2 * i:2 * i + 2]]
        result["platform"] = sorted({t.get("platform", "?") for t in turns[2 * i:2 * i + 2]})
    return results


async def _read_lines(stream: asyncio.StreamReader, lines: list[dict[str, Any]]) -> None:
    while line := await stream.readline():
        if line.startswith(b"{"):
            lines.append(json.loads(line))


def table(results: list[dict[str, Any]]) -> str:
    rows = ["| Client | Answers | 2nd turn as `previous_response_id` | Upstream messages (turn 1, 2) | Logged as |",
            "| --- | --- | --- | --- | --- |"]
    for r in results:
        if "error" in r:
            rows.append(f"| {r['client']} | error: {r['error'][:120]} | | | |")
            continue
        rows.append(f"| {r['client']} | {' / '.join(repr(t) for t in r['texts'])} | "
                    f"{'yes' if r['incremental'][-1] else 'no (whole context)'} | "
                    f"{', '.join(map(str, r['upstream_messages']))} | {', '.join(r['platform'])} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--clients", default="livekit-websocket,livekit-http,pipecat-websocket,pipecat-http")
    args = parser.parse_args()
    started = time.monotonic()
    python = ensure_venv(args.venv)
    results = asyncio.run(run(python, args.clients))
    print(table(results))
    print(f"\n({time.monotonic() - started:.1f} s; clients: {', '.join(CLIENT_PINS)})")
    if any("error" in r for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
