"""Log lines: the request's log record, and the JSON lines written to stdout.

One typed, slotted `RequestLog` per request (or per socket turn), written as one JSON line.

Each field is filled by the module that owns it (noted beside it) and read back by the
access middleware for the line and the metrics. Nothing from the request goes in raw:
`short` caps, flattens and neutralises values (a number above 2^63, a structure nested
deeper than the encoder goes) so a hostile value can never break the line itself.

And whatever a caller of the logger passes, every line is bounded in one place, the
`configure_logging` processor: a text is cut to SHORT characters (after redaction), a list
to LIST_ITEMS items with the full length beside it as `<field>_count`, an object to
DICT_KEYS keys and NESTING levels.
"""

from __future__ import annotations

import datetime
import logging
import sys
import threading
from collections.abc import MutableMapping
from dataclasses import dataclass
from itertools import islice
from typing import Any, TextIO

import structlog

from bridge import jsonutil
from bridge.errors import ErrorKind
from bridge.redaction import MASK, Redactor

SHORT = 200  # characters of a request-supplied value kept in the line
LIST_ITEMS = 20  # items of a list kept in the line (the length goes beside it as `<field>_count`)
DICT_KEYS = 32  # keys of an object kept in the line
NESTING = 4  # levels of lists and objects kept in the line; deeper ones are summarized
MASKED_DIGITS = 16  # at most this many `*` stand for the hidden middle of a phone number
_INT_LIMIT = 1 << 63


@dataclass(slots=True)
class RequestLog:
    """What one request did; None fields are left out of the line."""

    # inbound: the agent, the platform and its identifiers (bridge.inbound)
    agent: str | None = None
    platform: str | None = None
    ids: dict[str, Any] | None = None  # call, session, turn ids: each goes on the line under its own name
    user_data: str | None = None
    extend_data: str | None = None  # "missing" / "malformed" when IMS's ExtendData is unusable
    dropped: list[str] | None = None  # parameter names not sent upstream (never their values)
    # the pipeline: the upstream call and the tools (bridge.pipeline.chain, tool_rounds)
    upstream: str | None = None
    attempts: list[str] | None = None
    ttft_ms: float | None = None
    usage: dict[str, Any] | None = None
    usage_estimated: bool | None = None
    tools: list[dict[str, Any]] | None = None
    tools_dropped: int | None = None  # bridge tool calls past MAX_TOOL_CALLS in a round, not run
    # what the caller heard (bridge.pipeline.stages, the routes)
    failure_phrase: bool | None = None
    filler: bool | None = None
    unspeakable: bool | None = None  # the answer had nothing speakable once filtered
    orphan_think_close: bool | None = None  # a </think> with no <think>: reasoning was pre-filled
    call_control: str | None = None
    # routes of their own (bridge.inbound.agora_rag, agora_audio)
    rag_passages: int | None = None
    rag_ms: float | None = None
    rag_error: str | None = None
    audio_source: str | None = None
    audio_ms: int | None = None
    # a WebSocket session, on the line of its upgrade request (bridge.inbound.sockets)
    turns: int | None = None
    interrupts: int | None = None
    ignored: int | None = None  # messages that were malformed or of an unknown type
    end_reason: str | None = None
    # the outcome: written only by the protocol's error table (bridge.render.errors) and the
    # access middleware (bridge.process.access), never by a stage
    error_kind: ErrorKind | None = None
    error: str | None = None
    exception: str | None = None
    client_cancel: bool | None = None
    cut: bool | None = None  # the server cut it at the end of the drain

    def fail(self, kind: ErrorKind, message: str | None = None) -> None:
        """Record why the request failed."""
        self.error_kind = kind
        if message is not None:
            self.error = message

    def fields(self) -> dict[str, Any]:
        """The set fields, ready for the log line (platform ids flattened)."""
        out: dict[str, Any] = {}
        for name in self.__slots__:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "ids":
                out.update(value)
            else:
                out[name] = value
        return out


def short(value: Any, limit: int = SHORT) -> Any:
    """A request-supplied value as it may appear in a log line: capped, flat, always encodable."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if -_INT_LIMIT < value < _INT_LIMIT else str(value)[:limit]
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else str(value)
    if isinstance(value, str):
        text = value
    else:
        try:
            text = jsonutil.dumps_str(value)
        except (TypeError, ValueError):  # nested deeper than the encoder goes, or a huge integer
            text = f"<{type(value).__name__} not shown>"
    return text if len(text) <= limit else text[:limit] + "..."


def mask_number(number: Any) -> str:
    """Keep a phone number's first 3 and last 4 characters: enough to trace, not to dial.

    Whatever was sent: the middle is at most MASKED_DIGITS stars however long the value,
    and a value that is not a string or an integer is named, never written out.
    """
    if isinstance(number, int) and not isinstance(number, bool) and -_INT_LIMIT < number < _INT_LIMIT:
        number = str(number)
    if not isinstance(number, str):
        return f"<{type(number).__name__} not shown>"
    if len(number) <= 7:
        return number
    return number[:3] + "*" * min(len(number) - 7, MASKED_DIGITS) + number[-4:]

# -- the JSON lines ------------------------------------------------------------------------

# Fields whose values the bridge makes itself, of fixed types and small (never request text): not
# scanned for secrets nor cut. Every other field is (`bounded`).
_OWN_KEYS = frozenset({
    "event", "level", "timestamp", "method", "status", "latency_ms", "agent", "platform", "upstream", "error_kind",
    "ttft_ms", "usage", "usage_estimated", "tools_dropped", "failure_phrase", "filler", "unspeakable",
    "orphan_think_close", "call_control", "rag_passages", "rag_ms", "audio_source", "audio_ms", "client_cancel", "cut",
    "outcome", "turns", "interrupts", "ignored", "end_reason",
})
_SECRET_KEYS = frozenset({"authorization", "token", "api_key", "apikey", "password", "secret", "x-api-key"})
AIOHTTP_LOGGERS = ("aiohttp.server", "aiohttp.web", "aiohttp.access", "aiohttp.internal", "aiohttp.client")


def configure_logging(level: str, redact: Redactor, stream: TextIO | None = None) -> None:
    """Route structlog to `stream` (default stdout) as JSON lines at `level`."""

    def mask(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
        return masked(event, redact)

    global _LINES
    sink = _Sink(stream or sys.stdout)
    _LINES = _Lines(logging.getLevelName(level), redact, sink)
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            mask,
            structlog.processors.JSONRenderer(serializer=_serialize),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=lambda *_: sink,
        cache_logger_on_first_use=False,
    )
    for name in AIOHTTP_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _WithoutRequestText) for f in logger.filters):
            logger.addFilter(_WithoutRequestText())


def masked(event: MutableMapping[str, Any], redact: Redactor) -> MutableMapping[str, Any]:
    """A line's fields as written: secrets masked, every value not the bridge's own bounded (long
    texts cut, lists capped with a `<field>_count` beside them, objects and nesting capped)."""
    counts = {}
    for key, value in event.items():
        if key in _OWN_KEYS:
            continue
        if key.lower() in _SECRET_KEYS:
            event[key] = MASK
            continue
        if (type(value) is list or type(value) is tuple) and len(value) > LIST_ITEMS:
            counts[f"{key}_count"] = len(value)
        event[key] = bounded(value, redact)
    event.update(counts)
    return event


class _Sink:
    """Where every line goes: one write and one flush per line, under one lock, so lines from
    several workers (one write each) and from threads never interleave."""

    __slots__ = ("_flush", "_lock", "_write")

    def __init__(self, stream: TextIO) -> None:
        self._write, self._flush = stream.write, stream.flush
        self._lock = threading.Lock()

    def msg(self, message: str) -> None:
        with self._lock:
            self._write(message + "\n")
            self._flush()

    debug = info = warning = error = critical = exception = msg


class _Lines:
    """The lines written per request, per turn and per socket message, without structlog's
    processor chain (half their cost) yet as it writes them: the same fields, masking, order
    and timestamp, and the same level filter."""

    __slots__ = ("level", "redact", "sink")

    def __init__(self, level: int, redact: Redactor, sink: _Sink) -> None:
        self.level = level
        self.redact = redact
        self.sink = sink

    def info(self, event: str, **fields: Any) -> None:
        if self.level <= logging.INFO:
            self._write("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        if self.level <= logging.WARNING:
            self._write("warning", event, fields)

    def _write(self, level: str, event: str, fields: dict[str, Any]) -> None:
        fields["event"] = event
        fields["level"] = level
        fields["timestamp"] = datetime.datetime.now(tz=datetime.UTC).isoformat().replace("+00:00", "Z")
        self.sink.msg(_serialize(masked(fields, self.redact)))


_LINES = _Lines(logging.CRITICAL, Redactor(), _Sink(sys.stdout))


def bounded(value: Any, redact: Redactor, depth: int = 0) -> Any:
    """A value as a log line may hold it: redacted, then cut (texts, lists, objects, nesting)."""
    kind = type(value)
    if kind is str:
        text = redact(value)
        return text if len(text) <= SHORT else text[:SHORT] + "..."
    if value is None or kind is bool or kind is int or kind is float:
        return short(value)
    if kind is list or kind is tuple or kind is dict:
        return _bounded_container(value, redact, depth)
    return bounded(str(value), redact, depth)


def _bounded_container(value: Any, redact: Redactor, depth: int) -> Any:
    if depth >= NESTING:
        return f"<{type(value).__name__} not shown>"
    if type(value) is dict:
        return {short(str(k), 64): bounded(v, redact, depth + 1) for k, v in islice(value.items(), DICT_KEYS)}
    items = [bounded(v, redact, depth + 1) for v in value[:LIST_ITEMS]]
    if depth and len(value) > LIST_ITEMS:
        items.append(f"... {len(value) - LIST_ITEMS} more")
    return items


def _serialize(obj: Any, **_: Any) -> str:
    try:
        return jsonutil.dumps_str(obj)
    except TypeError:  # a value the encoder refuses: keep the line, as text
        return jsonutil.dumps_str({k: v if isinstance(v, (str, bool, type(None))) else str(v)[:200]
                                   for k, v in obj.items()})


class _WithoutRequestText(logging.Filter):
    """Keeps aiohttp's log records to their fixed text: no arguments, no traceback quoting the request."""

    def filter(self, record: logging.LogRecord) -> bool:
        problem = f" ({record.exc_info[0].__name__})" if record.exc_info and record.exc_info[0] else ""
        record.msg = str(record.msg).replace("%s", "?").replace("%r", "?") + problem
        record.args = ()
        record.exc_info = None
        record.exc_text = None
        return True


def get_logger() -> Any:
    return structlog.get_logger("bridge")


def bound_logger() -> Any:
    """The logger of the lines written per request, per turn or per socket message, bound to the
    configuration now in force (`configure_logging`): `.info` / `.warning(event, **fields)`, as
    structlog's, at half the cost."""
    return _LINES
