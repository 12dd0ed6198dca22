"""The benchmark's child processes (fake upstream, the service): start, wait, measure, stop.

CPU time and peak RSS are read from /proc (Linux), summed over the process and its
children, so a gunicorn master with its workers counts as one service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def use_uvloop() -> None:
    """Run the load generator on uvloop, as the service does (when it is installed)."""
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Proc:
    """A child process whose stdout and stderr go to a temporary file (read for start-up lines)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> None:
        self.name = name
        self.log = Path(tempfile.mkstemp(prefix=f"bench-{name}-", suffix=".log")[1])
        with self.log.open("wb") as out:
            self.popen = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def wait_for_lines(self, needle: str, count: int, timeout: float = 20.0) -> None:
        """Poll the log until `needle` appeared `count` times (start-up only: the log grows)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.popen.returncode}:\n{self.tail()}")
            if self.log.read_text(errors="replace").count(needle) >= count:
                return
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not log {needle!r} x{count} within {timeout:g}s:\n{self.tail()}")

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:]

    def pids(self) -> list[int]:
        """The process and its direct children (a gunicorn master's workers)."""
        try:
            children = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text().split()
        except OSError:
            children = []
        return [self.pid, *map(int, children)]

    def cpu_seconds(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / CLOCK_TICKS

    def peak_rss_mb(self) -> tuple[float, float]:
        """(sum over the processes, largest single process) of peak RSS (VmHWM), in MB."""
        peaks = []
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peaks.append(int(line.split()[1]) / 1024)
        return sum(peaks), max(peaks, default=0.0)

    def rss_mb(self) -> float:
        """Resident memory now (VmRSS), summed over the processes, in MB."""
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            total += sum(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
        return total / 1024

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM, then wait; SIGKILL if it will not go."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self.log.unlink(missing_ok=True)
        return self.popen.returncode


def fake_upstream(port: int, chunks: int, delay_ms: float) -> Proc:
    proc = Proc(f"fake-{delay_ms:g}ms", [sys.executable, str(ROOT / "bench" / "fake_upstream.py"), "--port",
                                          str(port), "--chunks", str(chunks), "--delay-ms", str(delay_ms)])
    proc.wait_for_lines("fake upstream on", 1)
    wait_listening(port)
    return proc


def wait_listening(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def service_env(port: int, upstream_port: int, **extra: str) -> dict[str, str]:
    """The service's environment: the caller's, minus any real upstream or token settings."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI_", "UPSTREAM", "BRIDGE_", "SYSTEM_PROMPT", "FALLBACK"))}
    return {**env, "HOST": "127.0.0.1", "PORT": str(port), "OPENAI_BASE_URL": f"http://127.0.0.1:{upstream_port}/v1",
            "OPENAI_API_KEY": "bench-upstream-key", "BRIDGE_TOKENS": "bench-token", "LOG_LEVEL": "INFO", **extra}


def start_service(workers: int, port: int, upstream_port: int, root: Path = ROOT, **extra: str) -> Proc:
    """`python app.py` for workers == 0, else gunicorn with that many workers; ready when all logged 'started'.

    `root`: the checkout to run (another one, e.g. a `git worktree` of an older commit, to compare).
    """
    if workers == 0:
        proc = Proc("app", [sys.executable, str(root / "app.py")], service_env(port, upstream_port, **extra), cwd=root)
        proc.wait_for_lines('"event":"started"', 1)
    else:
        env = service_env(port, upstream_port, WEB_CONCURRENCY=str(workers), **extra)
        proc = Proc(f"gunicorn-{workers}w", [sys.executable, "-m", "bridge"], env)  # the Procfile
        proc.wait_for_lines('"event":"started"', workers)
    wait_listening(port)
    return proc
