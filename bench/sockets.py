"""The socket platforms at fleet scale: CPU per turn beside the HTTP route's CPU per request, memory
per idle session, and 1,000 concurrent sessions in one process taking turns.

    python bench/sockets.py                 # ~2 minutes on 2 cores
    python bench/sockets.py --sessions 1000 --turns 3 --json /tmp/sockets.json

One fake upstream (bench/fake_upstream.py) and one `python app.py` (auth on, the INFO lines
written to a file) serve every phase, so the figures compare like with like:

- *cpu*: round after round, the bridge's CPU per answer, measured from /proc, at concurrency
  20 on each path in turn: `POST /v1/chat/completions` streaming (the load generator of
  bench/fleet.py) and a ConversationRelay turn (20 sessions, each asking again as soon as its
  answer's `last: true` arrives). Both answers are the same 20 chunks from the same upstream;
  medians over the rounds.
- *idle*: N sessions opened and set up (each hears GREETING, so the bridge holds it), then the
  bridge's resident memory (VmRSS) above what it was before, per session.
- *turns*: every one of the N sessions takes T turns, at once (each after a random pause of
  up to a second), against an upstream that paces its chunks; every answer must be the
  upstream's whole text ending in exactly one `last: true`: errors are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import LIFTED_DEADLINES, cpu_ms_per_stream
from procs import Proc, fake_upstream, free_port, start_service, use_uvloop
from run import TOKEN, chat_target

SETUP = {"type": "setup", "sessionId": "VX-bench", "callSid": "CA-bench", "from": "+18005550100",
         "to": "+18005550101", "direction": "inbound", "customParameters": {}}
PROMPT = {"type": "prompt", "voicePrompt": "Hi, what can you do for me today?", "lang": "en-US", "last": True}
WORDS = ("Hello", " there", ",", " how", " can", " I", " help", " you", " today", "?")


def expected(chunks: int) -> str:
    """What the fake upstream says (bench/fake_upstream.py's WORDS, one per chunk)."""
    return "".join(WORDS[i % len(WORDS)] for i in range(chunks))


class Relay:
    """One ConversationRelay session from the platform's side."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws

    async def turn(self) -> str:
        """Ask once; the words of the answer (RuntimeError unless it ends with one `last: true`)."""
        await self.ws.send_str(json.dumps(PROMPT))
        said: list[str] = []
        while True:
            msg = await self.ws.receive(60)
            if msg.type is not aiohttp.WSMsgType.TEXT:
                raise RuntimeError(f"socket ended mid-answer: {msg.type}")
            message = json.loads(msg.data)
            if message.get("type") != "text":
                raise RuntimeError(f"unexpected message {message}")
            said.append(message["token"])
            if message["last"]:
                return "".join(said)


async def open_sessions(http: aiohttp.ClientSession, port: int, count: int) -> list[Relay]:
    """`count` sessions set up (each has heard the greeting), opened in batches of 100."""
    url = f"ws://127.0.0.1:{port}/conversation-relay?token={TOKEN}"

    async def one() -> Relay:
        ws = await http.ws_connect(url, timeout=aiohttp.ClientWSTimeout(ws_close=5))
        await ws.send_str(json.dumps(SETUP))
        greeting = json.loads((await ws.receive(60)).data)
        assert greeting["type"] == "text" and greeting["last"] is True
        return Relay(ws)

    sessions: list[Relay] = []
    for start in range(0, count, 100):
        sessions += await asyncio.gather(*(one() for _ in range(min(100, count - start))))
    return sessions


async def cpu_ms_per_turn(sessions: list[Relay], server: Proc, duration: float, chunks: int) -> float:
    """Each session asks again as soon as its answer ended, for `duration` seconds: CPU ms per turn."""
    want = expected(chunks)
    for relay in sessions:  # warm
        assert await relay.turn() == want
    before, turns = server.cpu_seconds(), 0
    stop_at = time.perf_counter() + duration

    async def user(relay: Relay) -> None:
        nonlocal turns
        while time.perf_counter() < stop_at:
            if await relay.turn() != want:
                raise RuntimeError("wrong answer")
            turns += 1

    await asyncio.gather(*(user(r) for r in sessions))
    return (server.cpu_seconds() - before) * 1000 / turns


async def cpu(args: argparse.Namespace) -> dict[str, Any]:
    """CPU per answer on both paths of one bridge, alternating, against one burst upstream."""
    up = free_port()
    fake = fake_upstream(up, args.chunks, 0)
    figures: dict[str, list[float]] = {"http": [], "socket": []}
    try:
        port = free_port()
        bridge = start_service(0, port, up, GREETING="Hi.")
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                sessions = await open_sessions(http, port, 20)
                for _ in range(args.rounds):
                    figures["http"].append(await cpu_ms_per_stream(chat_target(port), bridge, 20, args.duration))
                    figures["socket"].append(await cpu_ms_per_turn(sessions, bridge, args.duration, args.chunks))
                    print(f"  http {figures['http'][-1]:.3f} ms/request, socket {figures['socket'][-1]:.3f} ms/turn",
                          file=sys.stderr, flush=True)
                for relay in sessions:
                    await relay.ws.close()
        finally:
            bridge.stop()
    finally:
        fake.stop()
    return figures


async def fleet(args: argparse.Namespace) -> dict[str, Any]:
    """Memory per idle session, then every session taking turns at once."""
    up = free_port()
    fake = fake_upstream(up, args.chunks, args.delay_ms)
    want = expected(args.chunks)
    try:
        port = free_port()
        bridge = start_service(0, port, up, GREETING="Hi.", MAX_CONCURRENCY=str(2 * args.sessions),
                               SESSION_IDLE_TIMEOUT="600", **LIFTED_DEADLINES)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as http:
                warm = await open_sessions(http, port, 20)  # every code path loaded once
                await asyncio.gather(*(r.turn() for r in warm))
                for relay in warm:
                    await relay.ws.close()
                await asyncio.sleep(1.0)  # the warm sessions' lines written and their objects freed
                before_mb = bridge.rss_mb()
                sessions = await open_sessions(http, port, args.sessions)
                idle_mb = bridge.rss_mb()
                cpu_before = bridge.cpu_seconds()
                started = time.perf_counter()
                outcomes = await asyncio.gather(*(take_turns(r, args.turns, want) for r in sessions))
                elapsed = time.perf_counter() - started
                cpu_s = bridge.cpu_seconds() - cpu_before
                peak_mb = bridge.peak_rss_mb()[0]
                for relay in sessions:
                    await relay.ws.close()
        finally:
            bridge.stop()
    finally:
        fake.stop()
    durations = sorted(d for outcome in outcomes for d in outcome[0])
    errors = [e for outcome in outcomes for e in outcome[1]]
    return {"sessions": args.sessions, "turns_each": args.turns, "chunks": args.chunks, "delay_ms": args.delay_ms,
            "turns": len(durations), "errors": len(errors), "error_sample": errors[0] if errors else "",
            "rss_before_mb": before_mb, "rss_idle_mb": idle_mb, "peak_mb": peak_mb,
            "kb_per_idle_session": (idle_mb - before_mb) * 1024 / args.sessions,
            "turn_p50_s": durations[len(durations) // 2] if durations else None,
            "turn_p99_s": durations[int(len(durations) * 0.99)] if durations else None,
            "elapsed_s": elapsed, "cpu_ms_per_turn": cpu_s * 1000 / max(len(durations), 1)}


async def take_turns(relay: Relay, turns: int, want: str) -> tuple[list[float], list[str]]:
    """`turns` turns, each after a random pause of up to a second; their durations and errors."""
    durations, errors = [], []
    for _ in range(turns):
        await asyncio.sleep(random.random())
        begun = time.perf_counter()
        try:
            said = await relay.turn()
        except (RuntimeError, aiohttp.ClientError, TimeoutError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            continue
        if said != want:
            errors.append(f"wrong answer: {said[:80]!r}")
            continue
        durations.append(time.perf_counter() - begun)
    return durations, errors


def render(cpu_figures: dict[str, list[float]], data: dict[str, Any], rounds: int) -> str:
    http, socket = statistics.median(cpu_figures["http"]), statistics.median(cpu_figures["socket"])
    return "\n".join([
        f"CPU per answer, one `python app.py`, concurrency 20, medians of {rounds} alternating rounds; "
        f"{data['chunks']} chunks per answer from the same upstream",
        "",
        "| path | CPU ms per answer | × HTTP |",
        "|---|---|---|",
        f"| `POST /v1/chat/completions` (stream) | {http:.3f} | 1.00 |",
        f"| ConversationRelay turn | {socket:.3f} | {socket / http:.2f} |",
        "",
        f"{data['sessions']:,} concurrent ConversationRelay sessions in one process, {data['turns_each']} turns each "
        f"(upstream: {data['chunks']} chunks {data['delay_ms']:g} ms apart)",
        "",
        "| sessions | turns | errors | RSS before | RSS with every session idle | per idle session | peak RSS "
        "| turn p50 | turn p99 | CPU ms per turn |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {data['sessions']:,} | {data['turns']:,} | {data['errors']} | {data['rss_before_mb']:.1f} MB | "
        f"{data['rss_idle_mb']:.1f} MB | {data['kb_per_idle_session']:.1f} KB | {data['peak_mb']:.1f} MB | "
        f"{data['turn_p50_s']:.2f} s | {data['turn_p99_s']:.2f} s | {data['cpu_ms_per_turn']:.3f} |",
    ])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5, help="alternating CPU rounds; medians reported")
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per path per round")
    parser.add_argument("--chunks", type=int, default=20, help="content chunks per answer")
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=3, help="turns each session takes in the fleet phase")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="ms between chunks in the fleet phase")
    parser.add_argument("--json", type=Path, help="also write the raw figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_uvloop()
    cpu_figures = asyncio.run(cpu(args))
    data = asyncio.run(fleet(args))
    print(render(cpu_figures, data, args.rounds))
    if data["errors"]:
        print(f"error sample: {data['error_sample']}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps({"cpu": cpu_figures, "fleet": data}, indent=1, default=str))
    ok = data["errors"] == 0 and data["turns"] == args.sessions * args.turns
    ok = ok and statistics.median(cpu_figures["socket"]) <= statistics.median(cpu_figures["http"])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
