"""What request handlers share: settings, the bridge core, the token checker."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from bridge.auth import TokenChecker
from bridge.config import Settings
from bridge.core import Bridge
from bridge.redaction import Redactor


@dataclass(slots=True)
class AppState:
    """Per-process state, built once at start-up."""

    settings: Settings
    bridge: Bridge
    tokens: TokenChecker
    redact: Redactor
    draining: bool = False


STATE = web.AppKey("state", AppState)
LOG = web.RequestKey("log", dict)


def log_record(request: web.Request) -> dict[str, object]:
    """The request's log record, filled by handlers and written once by the log middleware."""
    return request[LOG]
