"""Prometheus metrics: requests, latency, time to first token, upstream errors, streams in flight."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Voice latency lives between tens of milliseconds and a few seconds.
_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0)


class Metrics:
    """One registry per application, so several apps in one process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("bridge_requests", "Requests answered, by route and status.",
                                ["route", "status"], registry=self.registry)
        self.latency = Histogram("bridge_request_duration_seconds", "Time from request to last byte.",
                                 ["route"], buckets=_BUCKETS, registry=self.registry)
        self.ttft = Histogram("bridge_ttft_seconds", "Time from request to the first token.",
                              ["route"], buckets=_BUCKETS, registry=self.registry)
        self.upstream_errors = Counter("bridge_upstream_errors", "Upstream failures, by upstream and kind.",
                                       ["upstream", "kind"], registry=self.registry)
        self.in_flight = Gauge("bridge_in_flight_streams", "Upstream requests in flight.",
                               registry=self.registry)
        self.fallbacks = Counter("bridge_spoken_fallbacks", "Answers replaced by FALLBACK_TEXT.",
                                 ["route"], registry=self.registry)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)
