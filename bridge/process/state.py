"""What request handlers share: settings, the bridge core, the answer stage, the token checker."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bridge.config import Settings
from bridge.inbound.auth import TokenChecker
from bridge.log import RequestLog
from bridge.pipeline.chain import Bridge
from bridge.pipeline.stages import Voice
from bridge.redaction import Redactor


@dataclass(slots=True)
class AppState:
    """Per-process state, built once at start-up."""

    settings: Settings
    bridge: Bridge
    voice: Voice
    tokens: TokenChecker
    redact: Redactor
    access_log: Any  # the bound logger of the access line (bridge.log.bound_logger)
    draining: bool = False  # SIGTERM arrived: /readyz answers 503
    closing: bool = False  # the listener is closed: requests on kept-alive connections get 503
    started: float = field(default_factory=time.time)
    active: int = 0  # requests being handled
    idle: asyncio.Event = field(default_factory=asyncio.Event)  # set when `active` drops to 0


STATE = web.AppKey("state", AppState)
LOG = web.RequestKey("log", RequestLog)


def log_of(request: web.Request) -> RequestLog:
    """The request's log record, filled by handlers and written once by the access middleware."""
    return request[LOG]
