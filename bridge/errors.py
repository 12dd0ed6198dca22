"""Why an answer failed: one closed set of error kinds, and the one exception that carries them.

Every failure the bridge reports is a `BridgeError` with a `kind`: a refused caller (bad
body, wrong token, overloaded), an upstream failure (`UpstreamError`, raised in place of the
next event), a cut at the end of the drain. The kind is a stable name used in log lines,
metrics and error bodies. How a protocol answers each kind (status, body, spoken phrase,
in-stream event) is decided once per protocol, in bridge/render/errors.py.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

EXCERPT = 300  # characters of a provider's own message kept in ours
MESSAGE_LIMIT = 600  # characters of an error message, once secrets are masked


class ErrorKind(StrEnum):
    """Every failure the bridge names; the values are what logs, metrics and bodies show."""

    # the upstream's side
    UPSTREAM_AUTH = "upstream_auth"  # our upstream credentials were refused (401/403)
    UPSTREAM_BAD_REQUEST = "upstream_bad_request"  # the upstream refused the request (400/422)
    UPSTREAM_RATE_LIMITED = "upstream_rate_limited"  # 429
    UPSTREAM_HTTP = "upstream_http"  # any other HTTP error status
    UPSTREAM_CONNECT = "upstream_connect"  # could not connect, or the connection broke
    UPSTREAM_TIMEOUT = "upstream_timeout"  # a deadline passed
    UPSTREAM_PROTOCOL = "upstream_protocol"  # the answer is not the protocol it should be
    UPSTREAM_ERROR = "upstream_error"  # the upstream reported an error inside its answer
    UPSTREAM_CONFIG = "upstream_config"  # a spec cannot build its request
    SHUTDOWN = "shutdown"  # the server cut the answer at the end of its drain
    TOOL_ROUNDS = "tool_rounds"  # the model still wanted the bridge's tools after BRIDGE_TOOLS' max_rounds
    # the caller's side, and ours
    AUTH = "auth"  # the caller's token is wrong or missing
    FORBIDDEN = "forbidden"  # the caller's proof of origin is wrong (a platform's request signature)
    NOT_FOUND = "not_found"  # no such agent (or resource) here
    BAD_REQUEST = "bad_request"  # the caller's body is invalid
    UNSUPPORTED_MEDIA = "unsupported_media_type"  # the body is not of a type the route reads
    BODY_TIMEOUT = "body_timeout"  # the caller did not send its body in time
    OVERLOADED = "overloaded"  # MAX_CONCURRENCY reached
    INTERNAL = "internal"  # a bug

    @property
    def retryable(self) -> bool:
        """Worth one more try on the same upstream (5xx is decided by `UpstreamError`)."""
        return self in (ErrorKind.UPSTREAM_CONNECT, ErrorKind.UPSTREAM_RATE_LIMITED)

    @property
    def final(self) -> bool:
        """No other upstream can help: the request itself is at fault, or the server is stopping."""
        return self in (ErrorKind.UPSTREAM_BAD_REQUEST, ErrorKind.SHUTDOWN)


class BridgeError(Exception):
    """A failure with its kind. `param` names the caller's offending field (bad requests);
    `retry_after` (seconds) is passed on to the caller when set; `code`, when set, is the error
    body's code in place of the protocol's code for the kind (OpenAI's `previous_response_not_found`)."""

    def __init__(self, kind: ErrorKind, message: str, *, param: str | None = None,
                 retry_after: float | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.param = param
        self.retry_after = retry_after
        self.code = code


def overloaded() -> BridgeError:
    """MAX_CONCURRENCY answers are in flight: the caller should retry shortly."""
    return BridgeError(ErrorKind.OVERLOADED, "Too many requests in flight; retry shortly.", retry_after=1)


class UpstreamError(BridgeError):
    """The upstream failed. The message never contains a secret once `redact` has run.

    `status` is the upstream's own HTTP status, when it answered one.
    """

    def __init__(
        self,
        kind: ErrorKind,
        message: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(kind, message, retry_after=retry_after)
        self.status = status

    def redact(self, redact: Callable[[str], str]) -> UpstreamError:
        """Mask secrets in the message, then cap it, everywhere it is kept (`str(exc)` included).

        Drivers put a provider's text in whole; only here, after masking, is it cut, so a
        key straddling the cut is still recognised.
        """
        message = redact(self.message)
        self.message = message if len(message) <= MESSAGE_LIMIT else message[:MESSAGE_LIMIT] + "..."
        self.args = (self.message,)
        return self

    @property
    def retryable(self) -> bool:
        """True for failures worth one more try: connection, 5xx, 429."""
        if self.kind is ErrorKind.UPSTREAM_HTTP:
            return self.status is not None and self.status >= 500
        return self.kind.retryable

    @classmethod
    def from_status(cls, status: int, detail: str = "", retry_after: float | None = None) -> UpstreamError:
        """Classify an upstream HTTP error status; `detail` is the provider's (redacted) message."""
        suffix = f": {detail}" if detail else ""
        if status in (401, 403):
            return cls(ErrorKind.UPSTREAM_AUTH, f"upstream refused our credentials (HTTP {status}){suffix}",
                       status=status)
        if status == 429:
            return cls(ErrorKind.UPSTREAM_RATE_LIMITED, f"upstream rate limit (HTTP 429){suffix}", status=status,
                       retry_after=retry_after)
        if status in (400, 422):
            return cls(ErrorKind.UPSTREAM_BAD_REQUEST, f"upstream rejected the request (HTTP {status}){suffix}",
                       status=status)
        return cls(ErrorKind.UPSTREAM_HTTP, f"upstream answered HTTP {status}{suffix}", status=status)


def excerpt(text: str, redact: Callable[[str], str], limit: int = EXCERPT) -> str:
    """A provider's text as we repeat it: secrets masked first, then cut (never the other way)."""
    text = redact(" ".join(text.split()))
    return text if len(text) <= limit else text[:limit] + "..."


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta-seconds form only), or None."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 86400 else None
