"""Does a hostile caller stall everyone else? /healthz latency while callers post costly bodies.

    python bench/hostile.py              # about 2 minutes
    python bench/hostile.py --only tools # the tool-path attacks alone
    python bench/hostile.py --only speech  # a model answering 3 MB of markup in one chunk

`python app.py` runs as its own process (echo upstream). For 10 s each, two callers loop
posting the costliest body the form route accepts (a Python-literal Message at the parse
limits: MAX_LITERAL_CHARS characters and MAX_LITERAL_TOKENS structural tokens), then the
costliest JSON chat body (MAX_BODY_BYTES, 2,000 messages), while a third client asks /healthz every 10 ms.
It prints /healthz latency (p50, p99, max) beside an idle run, and the hostile callers'
rate. The budget is /healthz p99 <= 50 ms.

The tool-path attacks (bench/hostile_tools.py) run the service with a BRIDGE_TOOLS file and a
fake model that calls the hostile tool on every turn, while two callers loop small chat
requests: an MCP tool whose schema `$ref`s a URL that never answers; an HTTP tool whose
`pattern` backtracks ("^(a+)+$" against 30 a's and "!"); an MCP server listing 10,000 tools
in pages of 1,000, renamed and re-announced every 200 ms; and an MCP tool whose every result
is 50 MB.

The speech attack: a model whose every answer is one 3 MB chunk of markup (`<`, `[`, `![`,
`* `, `|`, emphasis, links), streamed to two callers in a loop: the speech filter takes it
in 8 KiB slices, the event loop free between them.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import statistics
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Event
from pathlib import Path
from queue import Empty

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_tools import BACKTRACKING, EVIL
from procs import ROOT, Proc, free_port, service_env, wait_listening

from bridge.inbound.pyliteral import MAX_LITERAL_CHARS, MAX_LITERAL_TOKENS, parse_structured

SMALL_CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "go"}], "stream": False}).encode()

SECONDS = 10.0
BUDGET_MS = 50.0


def costliest_literal() -> str:
    """A Python-literal history right at both parse limits (it is accepted, and costs the most)."""
    records = MAX_LITERAL_TOKENS // 6 - 1  # `{`, `:`, `,`, `:`, `}` and the comma between records
    room = MAX_LITERAL_CHARS // records - len("{'role': 'user', 'content': ''}, ")
    text = ("word " * room)[:room]
    literal = "[" + ", ".join(f"{{'role': 'user', 'content': '{text}'}}" for _ in range(records)) + "]"
    assert len(literal) <= MAX_LITERAL_CHARS and parse_structured(literal)  # accepted, not refused
    return literal


def costliest_json(limit: int) -> bytes:
    """A chat body just under MAX_BODY_BYTES: 2,000 messages, most of the bytes in their text."""
    history = [{"role": "user" if i % 2 else "assistant", "content": "word " * ((limit - 200_000) // 10_000)}
               for i in range(2000)]
    body = json.dumps({"model": "m", "stream": True, "temperature": "0.5", "turn_id": 7,
                       "messages": [{"role": "system", "content": "Be brief."}, *history,
                                    {"role": "user", "content": "hi"}]}).encode()
    assert len(body) <= limit
    return body


def hammer(port: int, path: str, body: bytes, content_type: str, stop: Event, counts: Queue[int]) -> None:
    """One hostile caller, in a process of its own (so the probe never waits on this script's GIL)."""
    while not stop.is_set():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        resp = conn.getresponse()
        resp.read()
        conn.close()
        counts.put(resp.status)


def probe(port: int, seconds: float) -> list[float]:
    """/healthz latencies (ms), one request every 10 ms on a kept-alive connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies: list[float] = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        started = time.perf_counter()
        conn.request("GET", "/healthz")
        conn.getresponse().read()
        latencies.append((time.perf_counter() - started) * 1000)
        time.sleep(0.01)
    conn.close()
    return latencies


def measure(port: int, body: bytes | None, path: str, content_type: str) -> tuple[list[float], list[int]]:
    stop: Event = multiprocessing.Event()
    queue: Queue[int] = multiprocessing.Queue()
    callers = [multiprocessing.Process(target=hammer, args=(port, path, body, content_type, stop, queue))
               for _ in range(2 if body else 0)]
    for caller in callers:
        caller.start()
    latencies = probe(port, SECONDS)
    stop.set()
    counts: list[int] = []
    while any(caller.is_alive() for caller in callers) or not queue.empty():
        try:
            counts.append(queue.get(timeout=0.1))
        except Empty:
            pass
    for caller in callers:
        caller.join()
    return latencies, counts


def row(name: str, latencies: list[float], counts: list[int]) -> str:
    q = statistics.quantiles(latencies, n=100)
    rate = f"{len(counts) / SECONDS:.0f}/s, statuses {sorted(set(counts))}" if counts else ""
    return f"| {name} | {q[49]:.2f} | {q[98]:.2f} | {max(latencies):.2f} | {rate} |"


Row = tuple[str, list[float], list[int]]


def body_attacks() -> list[Row]:
    port = free_port()
    service = Proc("hostile-app", [sys.executable, str(ROOT / "app.py")],
                   service_env(port, free_port(), UPSTREAM="echo", BRIDGE_TOKENS="", LOG_LEVEL="WARNING"))
    try:
        wait_listening(port)
        literal = urllib.parse.urlencode({"Message": costliest_literal()}).encode()
        return [("idle", *measure(port, None, "/", "")),
                ("2 callers: Python-literal Message at the limits", *measure(
                    port, literal, "/", "application/x-www-form-urlencoded")),
                ("2 callers: 4 MiB JSON chat body", *measure(
                    port, costliest_json(4 * 1024 * 1024), "/v1/chat/completions", "application/json"))]
    finally:
        service.stop()


def wait_ready(port: int, timeout: float = 30.0) -> None:
    """Until /readyz answers 200 (the MCP servers listed once, or the start-up wait over)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/readyz")
        status = conn.getresponse().status
        conn.close()
        if status == 200:
            return
        time.sleep(0.1)
    raise RuntimeError("the service never became ready")


@contextmanager
def tool_service(tool: str, arguments: str, tools: dict[str, object], mcp_mode: str | None) -> Iterator[int]:
    """The service with a BRIDGE_TOOLS file, a model that calls `tool`, and a hostile MCP server."""
    procs: list[Proc] = []
    script = str(ROOT / "bench" / "hostile_tools.py")
    try:
        model_port = free_port()
        procs.append(Proc("hostile-model", [sys.executable, script, "model", "--port", str(model_port),
                                            "--tool", tool, "--arguments", arguments]))
        wait_listening(model_port)
        if mcp_mode:
            mcp_port = free_port()
            procs.append(Proc("hostile-mcp", [sys.executable, script, "mcp", "--port", str(mcp_port),
                                              "--mode", mcp_mode]))
            wait_listening(mcp_port)
            tools = {**tools, "mcp_servers": [{"url": f"http://127.0.0.1:{mcp_port}/mcp", "timeout": 10}]}
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as file:
            json.dump(tools, file)
        port = free_port()
        procs.append(Proc("hostile-tools-app", [sys.executable, str(ROOT / "app.py")],
                          service_env(port, model_port, BRIDGE_TOOLS=file.name, BRIDGE_TOKENS="",
                                      LOG_LEVEL="WARNING")))
        wait_listening(port)
        wait_ready(port)
        yield port
    finally:
        for proc in reversed(procs):
            proc.stop()


def tool_attacks() -> list[Row]:
    pattern_tool = {"tools": [{"name": "check_code", "description": "Checks a code", "http": {
        "url": "http://127.0.0.1:9/never-called"}, "parameters": {
        "type": "object", "properties": {"code": {"type": "string", "pattern": BACKTRACKING}}}}]}
    attacks = [
        ("tools: MCP schema $ref to a URL that never answers", "fetch_schema", '{"q": "x"}', {}, "ref"),
        ("tools: backtracking pattern, 30 a's and '!'", "check_code", json.dumps({"code": EVIL}), pattern_tool, None),
        ("tools: 10,000-tool listing, re-announced every 200 ms", "g1_t0_0", "{}",
         {"limits": {"relist_interval": 1}}, "listing"),
        ("tools: 50 MB MCP results", "big_result", "{}", {}, "result"),
    ]
    rows: list[Row] = []
    for name, tool, arguments, tools, mode in attacks:
        with tool_service(tool, arguments, tools, mode) as port:
            rows.append((f"2 callers, {name}", *measure(port, SMALL_CHAT, "/v1/chat/completions", "application/json")))
    return rows


STREAMED_CHAT = json.dumps({"model": "m", "messages": [{"role": "user", "content": "go"}], "stream": True}).encode()


def speech_attack() -> list[Row]:
    procs: list[Proc] = []
    try:
        model_port = free_port()
        procs.append(Proc("hostile-huge", [sys.executable, str(ROOT / "bench" / "hostile_tools.py"), "huge",
                                           "--port", str(model_port), "--megabytes", "3"]))
        wait_listening(model_port)
        port = free_port()
        procs.append(Proc("hostile-speech-app", [sys.executable, str(ROOT / "app.py")],
                          service_env(port, model_port, BRIDGE_TOKENS="", LOG_LEVEL="WARNING",
                                      MAX_ANSWER_CHARS=str(4 << 20))))  # (the 1 MiB default refuses it early)
        wait_listening(port)
        return [("2 callers: one 3 MB chunk of markup per answer (speech filter)",
                 *measure(port, STREAMED_CHAT, "/v1/chat/completions", "application/json"))]
    finally:
        for proc in reversed(procs):
            proc.stop()


GROUPS = {"bodies": body_attacks, "tools": tool_attacks, "speech": speech_attack}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=sorted(GROUPS), help="run one group of attacks")
    only = parser.parse_args().only
    rows = [row for name, group in GROUPS.items() if only in (None, name) for row in group()]
    print("| load | /healthz p50 ms | p99 ms | max ms | hostile callers |\n|---|---|---|---|---|")
    for name, latencies, counts in rows:
        print(row(name, latencies, counts))
    worst = max(statistics.quantiles(latencies, n=100)[98] for _, latencies, _ in rows)
    print(f"\nbudget: /healthz p99 <= {BUDGET_MS:g} ms: {'met' if worst <= BUDGET_MS else 'MISSED'} ({worst:.2f} ms)")
    return 0 if worst <= BUDGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
