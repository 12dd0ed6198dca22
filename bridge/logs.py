"""Structured JSON logs on stdout, one line per request, secrets masked on the way out."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from bridge import jsonutil
from bridge.redaction import MASK, Redactor

_SECRET_KEYS = frozenset({"authorization", "token", "api_key", "apikey", "password", "secret", "x-api-key"})


def configure_logging(level: str, redact: Redactor, stream: TextIO | None = None) -> None:
    """Route structlog to `stream` (default stdout) as JSON lines at `level`."""

    def mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        for key, value in event.items():
            if key.lower() in _SECRET_KEYS:
                event[key] = MASK
            elif isinstance(value, str):
                event[key] = redact(value)
            elif isinstance(value, list):
                event[key] = [redact(v) if isinstance(v, str) else v for v in value]
        return event

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask,
            structlog.processors.JSONRenderer(serializer=lambda obj, **_: jsonutil.dumps_str(obj)),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        # One write() per line (PrintLogger makes two): lines from several workers never interleave.
        logger_factory=structlog.WriteLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )


def get_logger() -> Any:
    return structlog.get_logger("bridge")
