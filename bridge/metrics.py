"""Prometheus metrics: requests, latency, time to first token, upstream errors, streams in flight,
WebSocket sessions and their turns.

The per-request series carry the agent that answered (`agent`: bounded by the agents configured).

Under gunicorn every worker writes its figures to PROMETHEUS_MULTIPROC_DIR (gunicorn.conf.py
sets one up) and a scrape of any worker shows them all, summed; a single process keeps them
in memory.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

# Voice latency lives between tens of milliseconds and a few seconds.
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)
_TOOL_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess_dir() -> str | None:
    """The shared metrics folder when running as one of several workers."""
    return os.environ.get(MULTIPROC_ENV) or None


class Metrics:
    """One registry per application, so several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        reg = self.registry
        self.requests = Counter("bridge_requests", "Requests answered, by route, status and agent.",
                                ["route", "status", "agent"], registry=reg)
        self.latency = Histogram("bridge_request_duration_seconds", "Time from request to last byte.",
                                 ["route", "agent"], buckets=_BUCKETS, registry=reg)
        self.ttft = Histogram("bridge_ttft_seconds", "Time from request to the first token.", ["route", "agent"],
                              buckets=_BUCKETS, registry=reg)
        self.upstream_errors = Counter("bridge_upstream_errors", "Upstream failures, by upstream and kind.",
                                       ["upstream", "kind"], registry=reg)
        self.in_flight = Gauge("bridge_in_flight_streams", "Upstream requests in flight.", registry=reg,
                               multiprocess_mode="livesum")
        self.fallbacks = Counter("bridge_spoken_fallbacks", "Answers replaced by the failure phrase (FALLBACK_TEXT).",
                                 ["route", "agent"], registry=reg)
        self.tool_duration = Histogram("bridge_tool_duration_seconds", "Time a bridge tool call took, by tool.",
                                       ["tool"], buckets=_TOOL_BUCKETS, registry=reg)
        self.tool_errors = Counter("bridge_tool_errors", "Bridge tool calls that failed, by tool and outcome.",
                                   ["tool", "outcome"], registry=reg)
        # WebSocket platforms (ConversationRelay, Retell): one session per call, many turns each
        self.sessions = Gauge("bridge_socket_sessions", "WebSocket sessions open, by platform.", ["platform"],
                              registry=reg, multiprocess_mode="livesum")
        self.turns = Counter("bridge_socket_turns", "Turns answered on WebSocket sessions, by platform and outcome "
                             "(done, interrupted, superseded, failed).", ["platform", "outcome"], registry=reg)
        self.interrupts = Counter("bridge_socket_interrupts", "Answers the caller talked over, by platform "
                                  "(ConversationRelay's interrupt; Retell: a newer response_id).", ["platform"],
                                  registry=reg)

        # The per-request series, looked up once per label set (a `labels()` call takes a lock
        # and builds a key: about 2% of the CPU per stream).
        self._answered: dict[tuple[str, int, str], tuple[Any, Any, Any]] = {}
        self._ttft: dict[tuple[str, str], Any] = {}

    def answered(self, route: str, status: int, seconds: float, fallback: bool, agent: str) -> None:
        """Count one answered request and its duration (and whether the failure phrase replaced it)."""
        series = self._answered.get((route, status, agent))
        if series is None:
            series = (self.requests.labels(route, str(status), agent), self.latency.labels(route, agent),
                      self.fallbacks.labels(route, agent))
            self._answered[(route, status, agent)] = series
        series[0].inc()
        series[1].observe(seconds)
        if fallback:
            series[2].inc()

    def first_token(self, route: str, seconds: float, agent: str) -> None:
        """Observe one answer's time to first token."""
        series = self._ttft.get((route, agent))
        if series is None:
            series = self._ttft[(route, agent)] = self.ttft.labels(route, agent)
        series.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """The Prometheus text exposition: every worker's figures when running under gunicorn."""
        folder = multiprocess_dir()
        if folder is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]  # untyped upstream
        return generate_latest(registry), CONTENT_TYPE_LATEST
