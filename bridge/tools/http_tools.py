"""Running an HTTP tool: the model's arguments become the body (or the query), nothing else.

The URL, method and headers come only from the operator's file. Redirects are not followed,
cookies are not kept, and the answer is read with a cap: past it, the connection is dropped
rather than drained.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import unquote_plus

import aiohttp
from yarl import URL

from bridge import jsonutil
from bridge.redaction import Redactor
from bridge.tools import results
from bridge.tools.loader import HttpToolSpec

_ERROR_BODY_BYTES = 4096
_MAX_READ_BUFFER = 1 << 16


class HttpRunner:
    """One aiohttp session for every HTTP tool; `run` answers (outcome, content) and never raises."""

    def __init__(self, redact: Redactor) -> None:
        self.redact = redact
        self._session: aiohttp.ClientSession | None = None

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
                trust_env=False,
                raise_for_status=False,
            )
        return self._session

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def run(self, spec: HttpToolSpec, args: dict[str, Any], timeout: float) -> tuple[str, str]:
        """Call the tool's endpoint; CancelledError propagates and drops the connection."""
        try:
            async with asyncio.timeout(timeout):
                return await self._request(spec, args)
        except TimeoutError:
            return results.TIMEOUT, f"error: the tool {spec.name} did not answer within {timeout:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return results.ERROR, f"error: the tool {spec.name} could not be reached ({type(exc).__name__})"

    async def _request(self, spec: HttpToolSpec, args: dict[str, Any]) -> tuple[str, str]:
        headers = dict(spec.headers)
        kwargs: dict[str, Any] = {"allow_redirects": False, "read_bufsize": _read_bufsize(spec.max_result_bytes)}
        url = URL(spec.url)
        if spec.method == "GET":
            url = _with_query(url, args)
        else:
            kwargs["data"] = jsonutil.dumps(args)
            if not any(k.lower() == "content-type" for k in headers):
                headers["Content-Type"] = "application/json"
        async with self.session().request(spec.method, url, headers=headers, **kwargs) as response:
            try:
                return await self._answer(spec, response)
            finally:
                if not response.content.at_eof():
                    response.close()  # never hand a half-read connection back to the pool

    async def _answer(self, spec: HttpToolSpec, response: aiohttp.ClientResponse) -> tuple[str, str]:
        status = response.status
        if status >= 300:
            body, _ = await read_capped(response.content, min(spec.max_result_bytes, _ERROR_BODY_BYTES))
            detail = results.excerpt(results.decode(body, response.charset), self.redact)
            note = " (redirects are not followed)" if status < 400 else ""
            detail = f": {detail}" if detail else ""
            return results.ERROR, f"error: the tool {spec.name} answered HTTP {status}{note}{detail}"
        body, truncated = await read_capped(response.content, spec.max_result_bytes)
        text = results.decode(body, response.charset)
        if not truncated and _is_json(response.content_type):
            try:
                text = jsonutil.dumps_str(jsonutil.loads(text))
            except ValueError:
                pass
        content, cut = results.capped(text, spec.max_result_bytes, self.redact, cut=truncated)
        return (results.TOO_LARGE if cut else results.OK), content


async def read_capped(stream: aiohttp.StreamReader, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes of the body, and whether there was more (one byte past it is read)."""
    buffer = bytearray()
    while len(buffer) <= cap:
        chunk = await stream.read(cap + 1 - len(buffer))
        if not chunk:
            break
        buffer += chunk
    return bytes(buffer[:cap]), len(buffer) > cap


def query_value(value: Any) -> list[str]:
    """How one top-level argument is written in a query string (a list repeats the key)."""
    if value is None:
        return []
    if isinstance(value, bool):
        return ["true" if value else "false"]
    if isinstance(value, str):
        return [value]
    if isinstance(value, int | float):
        return [jsonutil.dumps_str(value)]
    if isinstance(value, list) and all(not isinstance(v, dict | list) for v in value):
        return [v for item in value for v in query_value(item)]
    return [jsonutil.dumps_str(value)]


def _with_query(url: URL, args: dict[str, Any]) -> URL:
    """`url` plus the arguments as query parameters; a key the operator's URL sets is kept as is.

    Keys are compared the way servers may read them (`query_key`), so `Mode`, `api_key+` or
    `api.key` cannot slip a second value in beside the operator's `mode` or `api_key`.
    """
    fixed = {query_key(k) for k in url.query}
    pairs = [(k, v) for k, value in args.items() if query_key(k) not in fixed for v in query_value(value)]
    return url.extend_query(pairs) if pairs else url


def query_key(key: str) -> str:
    """A query key as any server might read it: decoded (`%xx`, `+` as a space, twice over),
    without case, and without what frameworks trim, turn into `_` or read as array brackets
    (PHP reads `api.key` and `api key` as `api_key`, `api_key[]` as `api_key`).
    """
    decoded = unquote_plus(unquote_plus(key))
    return "".join(c for c in decoded.casefold() if c.isalnum())


def _is_json(content_type: str) -> bool:
    return content_type == "application/json" or content_type.endswith("+json")


def _read_bufsize(cap: int) -> int:
    """Keep aiohttp's own read-ahead near the cap, so a huge answer is not pulled in behind it."""
    return max(1024, min(_MAX_READ_BUFFER, cap + 1))
