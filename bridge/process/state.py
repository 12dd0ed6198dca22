"""What the process keeps while it serves: the routes' services, the answers in flight, the drain."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bridge.config import Settings
from bridge.inbound.context import Services
from bridge.metrics import Metrics
from bridge.pipeline import InFlight
from bridge.pipeline.agents import Shared


@dataclass(slots=True)
class ProcessState:
    """Per process, built once at start-up."""

    settings: Settings  # the environment's
    services: Services  # what the routes use: the agents, the gate
    inflight: InFlight  # answers waiting on an upstream, the drain's cut
    shared: Shared  # what the agents share (connection pools, toolboxes, indexes)
    metrics: Metrics
    access_log: Any  # the bound logger of the access line (bridge.log.bound_logger)
    draining: bool = False  # SIGTERM arrived: /readyz answers 503
    closing: bool = False  # the listener is closed: requests on kept-alive connections get 503
    active: int = 0  # requests being handled
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set when `active` drops to 0
    watcher: asyncio.Task[None] | None = None  # reloads BRIDGE_AGENTS when the file changes
    probes: set[asyncio.Task[None]] = field(default_factory=set)  # start-up checks of the upstreams
    reloading: asyncio.Lock = field(default_factory=asyncio.Lock)  # reloads run one at a time


PROCESS = web.AppKey("process", ProcessState)
