"""Fuzz the live service: 10,000 generated bodies over every POST route, counted by answer.

    python bench/fuzz.py                 # 10,000 bodies, about a minute on 2 cores
    python bench/fuzz.py --bodies 500

`python app.py` runs as its own process (echo upstream, auth on, a 64 KiB body cap), and
hypothesis generates the bodies of tests/support/fuzzing.py: deep nesting, wrong types, invalid
UTF-8, NUL, odd content types, multipart with bad part headers. Every answer must keep the
rule of tests/support/fuzzing.py (no 500, JSON or a well-formed stream); the script prints the
count per status, the rule breaks (0 expected), and whether /healthz still answers.
Exits non-zero on any break.
"""

from __future__ import annotations

import argparse
import collections
import http.client
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hypothesis import HealthCheck, given, settings
from procs import ROOT, Proc, free_port, service_env, wait_listening

from tests.support.fuzzing import RESPONSES_ROUTES, ROUTES, TOKEN, Request, answer_problem, requests


def post(port: int, request: Request) -> tuple[int, dict[str, str], bytes]:
    path, body, headers = request
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bodies", type=int, default=10_000)
    args = parser.parse_args()
    port = free_port()
    env = {**service_env(port, free_port(), UPSTREAM="echo", BRIDGE_TOKENS=TOKEN, MAX_BODY_BYTES="65536",
                          LOG_LEVEL="ERROR")}
    service = Proc("fuzz-app", [sys.executable, str(ROOT / "app.py")], env)
    statuses: collections.Counter[int] = collections.Counter()
    problems: list[str] = []
    started = time.monotonic()
    try:
        wait_listening(port)

        @settings(max_examples=args.bodies, deadline=None, database=None, derandomize=False,
                  suppress_health_check=list(HealthCheck))
        @given(request=requests)
        def fuzz(request: Request) -> None:
            status, headers, body = post(port, request)
            statuses[status] += 1
            problem = answer_problem(status, headers, body)
            if problem is not None:
                problems.append(f"{request[0]}: {problem}")

        fuzz()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/healthz")
        healthy = conn.getresponse().status == 200
    finally:
        service.stop()
    total = sum(statuses.values())
    print(f"{total} bodies in {time.monotonic() - started:.0f} s over {', '.join(ROUTES + RESPONSES_ROUTES)}")
    print("| status | answers |\n|---|---|")
    for status, count in sorted(statuses.items()):
        print(f"| {status} | {count} |")
    print(f"\nrule breaks (500s, malformed answers): {len(problems)}; /healthz afterwards: "
          f"{'200' if healthy else 'FAILED'}")
    for problem in problems[:20]:
        print("  ", problem)
    return 0 if healthy and not problems else 1


if __name__ == "__main__":
    sys.exit(main())
