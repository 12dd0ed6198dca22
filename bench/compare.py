"""Two checkouts of the bridge side by side, in one run: CPU per stream and added time to first token.

    .venv/bin/python bench/compare.py --base /tmp/bridge-before    # ~2 minutes
    git worktree add /tmp/bridge-before <commit>                   # a checkout of the commit to compare with

One fake upstream (bench/fake_upstream.py, 20 chunks back to back) serves both checkouts'
`python app.py` and is measured directly too. Rounds alternate (direct, base, this checkout), so
drift on a shared machine falls on all three alike; medians are reported:

- CPU per stream at concurrency 20 (the service's CPU time / answers completed), and its ratio
  to the direct upstream's;
- time to first token at concurrency 1 (median over the round), and what the bridge adds to the
  direct upstream's.

Each checkout runs with its own code and the environment bench/procs.py gives every service
(auth on, INFO access lines). Both must be able to run from this checkout's .venv.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import cpu_ms_per_stream, plain_target
from loadgen import run_level
from procs import ROOT, Proc, fake_upstream, free_port, start_service, use_uvloop
from run import chat_target


async def ttft_ms(target_port: int, direct: bool) -> float:
    """Median time to first token at concurrency 1 over a short window."""
    target = plain_target(target_port) if direct else chat_target(target_port)
    result = await run_level(target, 1, 2.0, 0.3)
    return statistics.median(result.ttft) * 1000


async def compare(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    up = free_port()
    fake = fake_upstream(up, 20, 0)
    figures: dict[str, dict[str, list[float]]] = {k: {"cpu": [], "ttft": []} for k in ("direct", "base", "this")}
    services: dict[str, tuple[int, Proc]] = {}
    try:
        for name, root in (("base", args.base), ("this", ROOT)):
            port = free_port()
            services[name] = (port, start_service(0, port, up, root=root, UPSTREAM_PROBE="off"))
        for _ in range(args.rounds):
            figures["direct"]["cpu"].append(await cpu_ms_per_stream(plain_target(up), fake, 20, args.duration))
            figures["direct"]["ttft"].append(await ttft_ms(up, True))
            for name, (port, proc) in services.items():
                figures[name]["cpu"].append(await cpu_ms_per_stream(chat_target(port), proc, 20, args.duration))
                figures[name]["ttft"].append(await ttft_ms(port, False))
            print("  " + ", ".join(f"{k} {v['cpu'][-1]:.3f} ms/stream {v['ttft'][-1]:.2f} ms ttft"
                                   for k, v in figures.items()), file=sys.stderr, flush=True)
    finally:
        for _, proc in services.values():
            proc.stop()
        fake.stop()
    return figures


def render(figures: dict[str, dict[str, list[float]]], base: Path, rounds: int) -> str:
    med = {k: {m: statistics.median(v) for m, v in f.items()} for k, f in figures.items()}
    lines = [f"medians of {rounds} alternating rounds; base = {base}", "",
             "| server | CPU ms/stream (c=20) | × direct | TTFT ms (c=1) | added to direct |", "|---|---|---|---|---|"]
    for name in ("direct", "base", "this"):
        row = med[name]
        lines.append(f"| {name} | {row['cpu']:.3f} | {row['cpu'] / med['direct']['cpu']:.2f} | {row['ttft']:.2f} | "
                     f"{row['ttft'] - med['direct']['ttft']:+.2f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=Path, required=True, help="the other checkout (a git worktree)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0, help="measured seconds per server per round")
    args = parser.parse_args()
    if not (args.base / "app.py").is_file():
        parser.error(f"{args.base} is not a checkout of the bridge (no app.py)")
    use_uvloop()
    figures = asyncio.run(compare(args))
    print(render(figures, args.base, args.rounds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
