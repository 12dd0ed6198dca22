"""The HTTP plumbing every upstream driver shares.

One pooled client session per upstream, sized from MAX_CONCURRENCY; capped body reads; and
one mapping of transport failures to `UpstreamError` that names the upstream's address and
the operating system's reason, and keeps the original exception as the cause.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import aiohttp
import yarl

from bridge.errors import ErrorKind, UpstreamError

READ_BUFSIZE = 1 << 20  # one SSE line may carry a large tool-call argument


class HttpClient:
    """A lazily created aiohttp session (it needs the running loop) with the bridge's limits.

    One client may serve several drivers (every agent's upstreams with the same timeouts:
    `HttpClients`): each driver `retain`s it and closes it once; the session closes with the last.
    """

    def __init__(self, *, max_connections: int, connect_timeout: float, total_timeout: float) -> None:
        self.max_connections = max_connections
        self.timeout = aiohttp.ClientTimeout(total=total_timeout, connect=connect_timeout,
                                             sock_connect=connect_timeout)
        self._session: aiohttp.ClientSession | None = None
        self.users = 1

    def retain(self) -> HttpClient:
        self.users += 1
        return self

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0),
                timeout=self.timeout,
                read_bufsize=READ_BUFSIZE,
                cookie_jar=aiohttp.DummyCookieJar(),  # one caller's upstream cookies are not another's
            )
        return self._session

    async def aclose(self) -> None:
        """One user is done with it; the session closes when none is left."""
        self.users -= 1
        if self.users <= 0 and self._session is not None:
            await self._session.close()
            self._session = None


class HttpClients:
    """The process's upstream connection pools, one per (size, connect, total timeout): every
    agent's drivers with the same settings share one (bridge/pipeline/agents.py)."""

    def __init__(self) -> None:
        self._clients: dict[tuple[int, float, float], HttpClient] = {}

    def get(self, max_connections: int, connect_timeout: float, total_timeout: float) -> HttpClient:
        """The shared client for these settings, retained for one more driver."""
        key = (max_connections, connect_timeout, total_timeout)
        client = self._clients.get(key)
        if client is None or client.users <= 0:
            client = self._clients[key] = HttpClient(max_connections=max_connections,
                                                     connect_timeout=connect_timeout, total_timeout=total_timeout)
            return client
        return client.retain()


def address(url: str) -> str:
    """`host:port` of a configured URL, for messages (never its path or query, which may hold a key)."""
    try:
        parsed = yarl.URL(url)
    except ValueError:
        return "the upstream"
    return f"{parsed.host}:{parsed.port}" if parsed.host else "the upstream"


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """Up to `limit` bytes of the body, and whether there was more (the rest is never read)."""
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        part = await response.content.read(limit + 1 - size)
        if not part:
            return b"".join(parts), False
        parts.append(part)
        size += len(part)
    body = b"".join(parts)
    return body[:limit], True


@contextmanager
def transport_errors(where: str) -> Iterator[None]:
    """Network failures as UpstreamErrors naming `where` (host:port) and the cause; UpstreamError passes."""
    try:
        yield
    except UpstreamError:
        raise
    except (aiohttp.ClientError, OSError) as exc:  # TimeoutError is an OSError
        raise transport_error(exc, where) from exc


def transport_error(exc: aiohttp.ClientError | OSError, where: str) -> UpstreamError:
    """The UpstreamError for one transport exception."""
    if isinstance(exc, aiohttp.ConnectionTimeoutError):  # a TimeoutError, but retried like a refused connection
        return UpstreamError(ErrorKind.UPSTREAM_CONNECT, f"timed out connecting to {where}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamError(ErrorKind.UPSTREAM_CONNECT, f"could not connect to {where}: {_reason(exc)}")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamError(ErrorKind.UPSTREAM_CONNECT, f"the connection to {where} broke mid-answer: {_reason(exc)}")
    if isinstance(exc, TimeoutError):
        return UpstreamError(ErrorKind.UPSTREAM_TIMEOUT, f"request to {where} timed out")
    if isinstance(exc, aiohttp.InvalidURL):
        return UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"the URL for {where} is invalid")
    return UpstreamError(ErrorKind.UPSTREAM_CONNECT, f"the connection to {where} failed: {_reason(exc)}")


def _reason(exc: BaseException) -> str:
    """The most specific cause: the OS error behind a connector error, else the exception's own text."""
    os_error = getattr(exc, "os_error", None)
    cause = os_error if isinstance(os_error, OSError) else exc
    text = str(cause) or type(cause).__name__
    return text if isinstance(cause, OSError) and cause.strerror else f"{type(cause).__name__}: {text}"
