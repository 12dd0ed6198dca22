"""Does a deployment of 50 agents cost more per request than one agent? Measured side by side.

    .venv/bin/python bench/agents.py      # ~1 minute

One fake upstream serves two `python app.py`: one with the environment's single agent, one with
BRIDGE_AGENTS naming 50 agents (each with its own token, prompt and model; the benchmark's token
chooses the 37th). Rounds alternate; medians of CPU per stream at concurrency 20 are reported,
and, in-process, the cost of choosing the agent for a token (bridge/inbound/auth.py Gate.choose:
a SHA-256 of the token and a dictionary look-up) with 1 and with 50 agents.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fleet import cpu_ms_per_stream
from procs import fake_upstream, free_port, start_service, use_uvloop
from run import TOKEN, chat_target

AGENTS = 50
CHOSEN = 37


def agents_file(upstream_port: int) -> str:
    agents = {f"agent-{i:02d}": {"BRIDGE_TOKENS": TOKEN if i == CHOSEN else f"token-of-agent-{i:02d}",
                                 "SYSTEM_PROMPT": f"You are agent {i}.", "UPSTREAM_MODEL": f"model-{i}",
                                 "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1"}
              for i in range(AGENTS)}
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
        json.dump({"agents": agents}, file)
    return file.name


def choose_us(agents: int) -> float:
    """Microseconds to choose the agent for a token among `agents` (Gate.choose)."""
    from bridge.config import read_settings
    from bridge.inbound.auth import Gate
    from bridge.metrics import Metrics
    from bridge.pipeline import InFlight
    from bridge.pipeline.agents import Shared, build_roster
    from bridge.redaction import Redactor

    env = {"BRIDGE_TOKENS": "env-token"}
    if agents > 1:
        env["BRIDGE_AGENTS"] = agents_file(9)
    metrics = Metrics()
    roster = build_roster(read_settings(env), Shared(metrics, Redactor(), InFlight(10, metrics)))
    gate = Gate(roster, roster.default)
    token = TOKEN if agents > 1 else "env-token"
    assert gate.choose(token) is not None
    runs = 20_000
    return min(timeit.repeat(lambda: gate.choose(token), number=runs, repeat=5)) / runs * 1e6


async def measure(rounds: int, duration: float) -> dict[str, list[float]]:
    up = free_port()
    fake = fake_upstream(up, 20, 0)
    figures: dict[str, list[float]] = {"1 agent": [], f"{AGENTS} agents": []}
    try:
        one_port, many_port = free_port(), free_port()
        one = start_service(0, one_port, up, UPSTREAM_PROBE="off")
        many = start_service(0, many_port, up, UPSTREAM_PROBE="off", BRIDGE_AGENTS=agents_file(up),
                             BRIDGE_TOKENS="env-token")
        try:
            for _ in range(rounds):
                figures["1 agent"].append(await cpu_ms_per_stream(chat_target(one_port), one, 20, duration))
                figures[f"{AGENTS} agents"].append(await cpu_ms_per_stream(chat_target(many_port), many, 20, duration))
                print("  " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in figures.items()), file=sys.stderr, flush=True)
        finally:
            one.stop()
            many.stop()
    finally:
        fake.stop()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=float, default=3.0)
    args = parser.parse_args()
    choose = {1: choose_us(1), AGENTS: choose_us(AGENTS)}
    use_uvloop()
    figures = asyncio.run(measure(args.rounds, args.duration))
    med = {k: statistics.median(v) for k, v in figures.items()}
    print(f"CPU per stream at concurrency 20, medians of {args.rounds} alternating rounds\n")
    print("| deployment | CPU ms/stream | × one agent | choosing the agent (Gate.choose) |\n|---|---|---|---|")
    for (name, value), agents in zip(med.items(), (1, AGENTS), strict=True):
        print(f"| {name} | {value:.3f} | {value / med['1 agent']:.2f} | {choose[agents]:.2f} µs |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
