"""The canonical event stream: what every upstream driver yields and every renderer consumes.

A stream is a sequence of `TextDelta`, `ToolCallDelta`, `Usage`, `Finish` and `Metadata`
events. It ends normally, or with an `UpstreamError` raised in place of the next event: a
failure is an event the consumer cannot miss. A driver may yield single events or a
`Batch` (a list) of the events one network read delivered; the core passes batches on,
so a renderer writes each read to the caller with one write.

Events are small slotted classes: one is built per upstream chunk, so they stay cheap.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class TextDelta:
    """New text to append to the answer."""

    text: str


@dataclass(slots=True)
class ToolCallDelta:
    """A fragment of a tool call, keyed by `index`; `id` and `name` come with the first one."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(slots=True)
class Usage:
    """Token counts; `estimated` is True when the bridge counted them, not the upstream."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool = False

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def as_dict(self) -> dict[str, int]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens,
        }


@dataclass(slots=True)
class Finish:
    """The answer is complete: `stop`, `length`, `tool_calls` or `content_filter`."""

    reason: str


@dataclass(slots=True)
class Metadata:
    """A platform metadata object passed through untouched (Agora's custom_metadata chunk)."""

    payload: dict[str, Any]


Event = TextDelta | ToolCallDelta | Usage | Finish | Metadata
Batch = list[Event]  # the events of one upstream read, delivered together


class UpstreamError(Exception):
    """The upstream failed. `kind` is a stable name used in logs, metrics and error bodies.

    Kinds: upstream_auth, upstream_bad_request, upstream_rate_limited, upstream_http,
    upstream_connect, upstream_timeout, upstream_protocol, upstream_error, upstream_config
    (a spec cannot build its request: a placeholder without a value, a failed converter).
    The message never contains a secret: drivers pass provider texts through `redact` first.
    """

    def __init__(
        self,
        kind: str,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        """True for failures worth one more try: connection, 5xx, 429."""
        if self.kind == "upstream_http":
            return self.status is not None and self.status >= 500
        return self.kind in ("upstream_connect", "upstream_rate_limited")

    @property
    def http_status(self) -> int:
        """The status the bridge answers with when this happens before the first byte."""
        return {"upstream_rate_limited": 429, "upstream_bad_request": 400, "upstream_timeout": 504}.get(
            self.kind, 502
        )

    @classmethod
    def from_status(cls, status: int, detail: str, retry_after: float | None = None) -> UpstreamError:
        """Classify an upstream HTTP error status."""
        if status in (401, 403):
            return cls("upstream_auth", f"upstream refused our credentials (HTTP {status})", status=status)
        if status == 429:
            return cls("upstream_rate_limited", f"upstream rate limit (HTTP 429){detail}", status=status,
                       retry_after=retry_after)
        if status in (400, 422):
            return cls("upstream_bad_request", f"upstream rejected the request (HTTP {status}){detail}",
                       status=status)
        return cls("upstream_http", f"upstream answered HTTP {status}{detail}", status=status)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only), or None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None
