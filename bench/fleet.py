"""Fleet-scale figures for one process: CPU per stream and per chunk, and a 10,000-stream hold.

    python bench/fleet.py cpu     # ~2 minutes: CPU per stream (bursts) and per chunk (paced)
    python bench/fleet.py hold    # ~1 minute: N concurrent held streams through one process
    python bench/fleet.py burst   # ~10 s: 5,000 callers connecting at the same instant
    python bench/fleet.py accept  # ~15 s: 1,000 new callers while 1,000 streams run

`cpu` loads three servers in turn, round after round, against one fake upstream
(bench/fake_upstream.py), and reports medians over the rounds:

- *direct*: the fake upstream itself, the floor any server in front of it adds to;
- *passthrough*: a bare aiohttp passthrough (bench/passthrough.py), what any Python proxy of
  this shape costs;
- *bridge*: `python app.py`, with auth on and the INFO access line written to a file.

Bursts: 20 content chunks written back to back, concurrency 20 (CPU per stream). Paced: the
same answer with PACED_MS between chunks, so each chunk is its own network read (CPU per
chunk = CPU per stream / chunks).

`hold` opens N connections to a fresh `python app.py` (fake upstream: 50 chunks, 100 ms
apart), runs one stream on each, all at once, and reports errors and the peak RSS above the
idle process, per stream. One stream holds two descriptors in the bridge (the caller's
connection and the upstream's), so N is capped by the open-file limit (RLIMIT_NOFILE); the
cap is printed when it applies.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

from loadgen import ResponseError, Target, connect, run_hold, run_level
from procs import ROOT, Proc, fake_upstream, free_port, start_service, use_uvloop, wait_listening
from run import chat_target

# The hold asks more of this machine than it has: 10,000 answers of 10 chunks a second is
# 100,000 chunks a second from the fake upstream alone, which on 2 cores it cannot write in
# real time (measured directly: a 5 s answer takes about 8 s). Answers therefore stretch, and
# the deadlines meant for a slow provider (connect 3 s, first token 10 s) are lifted so the
# run measures holding streams, not the machine's lag.
LIFTED_DEADLINES = {"UPSTREAM_CONNECT_TIMEOUT": "60", "UPSTREAM_TTFT_TIMEOUT": "60"}
RESERVED_FDS = 64  # the bridge's own descriptors besides the streams' (listener, loop, log, ...)


def plain_target(port: int) -> Target:
    """The request as a caller sends it straight to the upstream or the passthrough (no bridge token)."""
    body = json.dumps({"model": "bench-model", "stream": True,
                       "messages": [{"role": "user", "content": "hi"}]}).encode()
    return Target.post("127.0.0.1", port, "/v1/chat/completions", body, "application/json", sse=True)


def start_passthrough(port: int, upstream_port: int) -> Proc:
    proc = Proc("passthrough", [sys.executable, str(ROOT / "bench" / "passthrough.py"), "--port", str(port),
                                "--upstream", f"http://127.0.0.1:{upstream_port}/v1"])
    proc.wait_for_lines("passthrough on", 1)
    wait_listening(port)
    return proc


async def cpu_ms_per_stream(target: Target, server: Proc, concurrency: int, duration: float) -> float:
    await run_level(target, concurrency, 0.3, 0.0)  # warm the connections and the server
    before = server.cpu_seconds()
    result = await run_level(target, concurrency, duration, 0.0)
    if result.errors or not result.completed:
        raise RuntimeError(f"{server.name}: {result.errors} errors ({result.error_sample})")
    return (server.cpu_seconds() - before) * 1000 / result.completed


async def cpu_rounds(chunks: int, delay_ms: float, args: argparse.Namespace) -> dict[str, list[float]]:
    """CPU ms per stream of each server, one figure per round."""
    up = free_port()
    fake = fake_upstream(up, chunks, delay_ms)
    figures: dict[str, list[float]] = {"direct": [], "passthrough": [], "bridge": []}
    try:
        pt_port, bridge_port = free_port(), free_port()
        passthrough = start_passthrough(pt_port, up)
        bridge = start_service(0, bridge_port, up)
        try:
            for _ in range(args.rounds):
                figures["direct"].append(await cpu_ms_per_stream(plain_target(up), fake, 20, args.duration))
                figures["passthrough"].append(
                    await cpu_ms_per_stream(plain_target(pt_port), passthrough, 20, args.duration))
                figures["bridge"].append(await cpu_ms_per_stream(chat_target(bridge_port), bridge, 20, args.duration))
                print(f"  {delay_ms:g} ms gaps: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in figures.items()),
                      file=sys.stderr, flush=True)
        finally:
            passthrough.stop()
            bridge.stop()
    finally:
        fake.stop()
    return figures


async def cpu(args: argparse.Namespace) -> dict[str, Any]:
    burst = await cpu_rounds(20, 0, args)
    paced = await cpu_rounds(20, args.paced_ms, args)
    return {"burst": burst, "paced": paced, "paced_ms": args.paced_ms, "rounds": args.rounds}


def render_cpu(data: dict[str, Any]) -> str:
    burst = {k: statistics.median(v) for k, v in data["burst"].items()}
    paced = {k: statistics.median(v) for k, v in data["paced"].items()}
    lines = [f"CPU at concurrency 20, medians of {data['rounds']} alternating rounds; 20 content chunks per answer",
             "",
             "| server | burst: CPU ms/stream | × direct | paced ({:g} ms gaps): CPU µs/chunk | × direct |".format(
                 data["paced_ms"]),
             "|---|---|---|---|---|"]
    for name in ("direct", "passthrough", "bridge"):
        lines.append(f"| {name} | {burst[name]:.3f} | {burst[name] / burst['direct']:.2f} | "
                     f"{paced[name] * 1000 / 20:.1f} | {paced[name] / paced['direct']:.2f} |")
    return "\n".join(lines)


def stream_capacity() -> int:
    """How many streams one process can hold here: two descriptors each."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    return (soft - RESERVED_FDS) // 2


async def hold(args: argparse.Namespace) -> dict[str, Any]:
    capacity = stream_capacity()
    streams = min(args.streams, capacity)
    if streams < args.streams:
        print(f"  the open-file limit ({resource.getrlimit(resource.RLIMIT_NOFILE)[0]}) allows {capacity} streams "
              f"in one process; holding {streams}", file=sys.stderr)
    up = free_port()
    fake = fake_upstream(up, args.chunks, args.delay_ms)
    try:
        port = free_port()
        bridge = start_service(0, port, up, MAX_CONCURRENCY=str(streams), **LIFTED_DEADLINES)
        try:
            await run_level(chat_target(port), 20, 0.5, 0.0)  # warmed: every code path loaded once
            idle_mb = bridge.peak_rss_mb()[0]
            before = bridge.cpu_seconds()
            result = await run_hold(chat_target(port), streams, 1, ramp=args.ramp)
            cpu_s = bridge.cpu_seconds() - before
            peak_mb = bridge.peak_rss_mb()[0]
        finally:
            bridge.stop()
    finally:
        fake.stop()
    total = sorted(result.total)
    return {"streams": streams, "requested": args.streams, "chunks": args.chunks, "delay_ms": args.delay_ms,
            "completed": result.completed, "errors": result.errors, "peak_in_flight": result.peak_in_flight,
            "ramp_s": args.ramp, "error_sample": result.error_sample,
            "idle_mb": idle_mb, "peak_mb": peak_mb, "kb_per_stream": (peak_mb - idle_mb) * 1024 / streams,
            "total_p50_s": total[len(total) // 2] if total else None,
            "total_max_s": total[-1] if total else None, "cpu_s": cpu_s}


def render_hold(data: dict[str, Any]) -> str:
    ideal = data["chunks"] * data["delay_ms"] / 1000
    return "\n".join([
        f"hold: {data['streams']:,} concurrent streams, {data['chunks']} chunks {data['delay_ms']:g} ms apart "
        f"(an answer takes {ideal:g} s at the upstream), one process",
        "",
        "| streams | completed | errors | idle RSS | peak RSS | RSS per stream above idle | answer p50 | slowest |",
        "|---|---|---|---|---|---|---|---|",
        f"| {data['streams']:,} | {data['completed']:,} | {data['errors']} | {data['idle_mb']:.1f} MB | "
        f"{data['peak_mb']:.1f} MB | {data['kb_per_stream']:.1f} KB | {data['total_p50_s']:.2f} s | "
        f"{data['total_max_s']:.2f} s |",
    ])


async def burst(args: argparse.Namespace) -> dict[str, Any]:
    """N callers connect at the same instant, each asks once: does the listen queue take them all?"""
    up = free_port()
    fake = fake_upstream(up, 20, 0)
    result: dict[str, Any] = {"callers": args.callers, "errors": 0, "error_sample": ""}
    try:
        for label, workers in (("python app.py", 0), (f"gunicorn, {args.workers} workers", args.workers)):
            port = free_port()
            service = start_service(workers, port, up, MAX_CONCURRENCY=str(args.callers))
            try:
                target = chat_target(port)

                async def caller(target: Target = target) -> str | None:
                    try:
                        conn = await connect(target)
                        await conn.request()
                        conn.transport.close()  # type: ignore[union-attr]
                    except (OSError, ResponseError) as exc:
                        return f"{type(exc).__name__}: {exc}"
                    return None

                outcomes = await asyncio.gather(*(caller() for _ in range(args.callers)))
                failed = [o for o in outcomes if o]
                result[label] = {"errors": len(failed), "error_sample": failed[0] if failed else ""}
                print(f"  {label}: {len(failed)} of {args.callers} failed", file=sys.stderr, flush=True)
            finally:
                service.stop()
    finally:
        fake.stop()
    result["errors"] = sum(v["errors"] for v in result.values() if isinstance(v, dict))
    return result


def render_burst(data: dict[str, Any]) -> str:
    lines = [f"burst: {data['callers']:,} callers connect at the same instant and ask once", "",
             "| server | failed |", "|---|---|"]
    for label, row in data.items():
        if isinstance(row, dict):
            lines.append(f"| {label} | {row['errors']} |")
    return "\n".join(lines)


async def accept(args: argparse.Namespace) -> dict[str, Any]:
    """`--callers` new connections, each asking GET /healthz once, while `--streams` streams run
    (held by another process, so the two clients do not share a loop): how long until all are
    answered. Before this round uvloop accepted one connection per loop pass, and a busy server
    took seconds (bridge/compat.py GreedySite)."""
    up = free_port()
    fake = fake_upstream(up, args.chunks, args.delay_ms)
    result: dict[str, Any] = {"callers": args.callers, "streams": args.streams, "chunks": args.chunks,
                              "delay_ms": args.delay_ms}
    try:
        port = free_port()
        bridge = start_service(0, port, up, MAX_CONCURRENCY=str(args.streams * 2), **LIFTED_DEADLINES)
        try:
            holder = await asyncio.create_subprocess_exec(
                sys.executable, __file__, "hold-client", "--port", str(port), "--streams", str(args.streams),
                stdout=asyncio.subprocess.PIPE)
            await asyncio.sleep(args.after)  # the streams are running
            began = asyncio.get_running_loop().time()

            async def caller() -> float:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
                answer = await reader.read()
                writer.close()
                if b" 200 " not in answer.split(b"\r\n", 1)[0]:
                    raise RuntimeError(f"healthz answered {answer[:40]!r}")
                return asyncio.get_running_loop().time() - began

            times = sorted(await asyncio.gather(*(caller() for _ in range(args.callers))))
            held = json.loads((await holder.communicate())[0])
        finally:
            bridge.stop()
    finally:
        fake.stop()
    result.update(p50_s=times[len(times) // 2], p99_s=times[int(len(times) * 0.99)], max_s=times[-1], **held)
    return result


def render_accept(data: dict[str, Any]) -> str:
    return "\n".join([
        f"accept: {data['callers']:,} new callers (GET /healthz) while {data['streams']:,} streams run "
        f"({data['chunks']} chunks {data['delay_ms']:g} ms apart)", "",
        "| callers answered p50 | p99 | all | streams completed | stream errors |", "|---|---|---|---|---|",
        f"| {data['p50_s'] * 1000:.0f} ms | {data['p99_s'] * 1000:.0f} ms | {data['max_s'] * 1000:.0f} ms | "
        f"{data['completed']:,} | {data['errors']} |"])


async def hold_client(args: argparse.Namespace) -> None:
    """(for `accept`) Hold `--streams` streams against `--port` and print the result as JSON."""
    result = await run_hold(chat_target(args.port), args.streams, 1)
    print(json.dumps({"completed": result.completed, "errors": result.errors}))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    c = sub.add_parser("cpu", help="CPU per stream and per chunk: direct, passthrough, bridge")
    c.add_argument("--rounds", type=int, default=5, help="alternating rounds; medians reported (default 5)")
    c.add_argument("--duration", type=float, default=3.0, help="measured seconds per server per round")
    c.add_argument("--paced-ms", type=float, default=20.0, help="ms between chunks of the paced answers")
    h = sub.add_parser("hold", help="concurrent held streams through one process")
    h.add_argument("--streams", type=int, default=10_000)
    h.add_argument("--chunks", type=int, default=50)
    h.add_argument("--delay-ms", type=float, default=100.0)
    h.add_argument("--ramp", type=float, default=4.0,
                   help="seconds over which the streams start (shorter than an answer: all are held at once)")
    b = sub.add_parser("burst", help="simultaneous new connections: the listen backlog")
    b.add_argument("--callers", type=int, default=5000)
    b.add_argument("--workers", type=int, default=2)
    a = sub.add_parser("accept", help="new callers accepted while many streams run")
    a.add_argument("--callers", type=int, default=1000)
    a.add_argument("--streams", type=int, default=1000)
    a.add_argument("--chunks", type=int, default=50)
    a.add_argument("--delay-ms", type=float, default=100.0)
    a.add_argument("--after", type=float, default=2.5, help="seconds the streams run before the callers come")
    hc = sub.add_parser("hold-client")  # accept's other process
    hc.add_argument("--port", type=int, required=True)
    hc.add_argument("--streams", type=int, required=True)
    for p in (c, h, b, a):
        p.add_argument("--json", type=Path, help="also write the raw figures here")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    use_uvloop()
    if args.what == "hold-client":
        asyncio.run(hold_client(args))
        return 0
    if args.what == "cpu":
        data = asyncio.run(cpu(args))
        print(render_cpu(data))
        ok = statistics.median(data["burst"]["bridge"]) <= 1.6 * statistics.median(data["burst"]["direct"])
        print(f"\nbudget: bridge <= 1.6 x direct CPU per stream: {'met' if ok else 'NOT met'}")
    elif args.what == "accept":
        data = asyncio.run(accept(args))
        print(render_accept(data))
        ok = data["errors"] == 0 and data["max_s"] <= 1.0
    elif args.what == "burst":
        data = asyncio.run(burst(args))
        print(render_burst(data))
        ok = data["errors"] == 0
    else:
        data = asyncio.run(hold(args))
        print(render_hold(data))
        ok = data["errors"] == 0 and data["completed"] == data["streams"] and data["kb_per_stream"] <= 40
    if args.json:
        args.json.write_text(json.dumps(data, indent=1, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
