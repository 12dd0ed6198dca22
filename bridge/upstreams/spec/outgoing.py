"""Renders a call's request for one chat turn: URL, query, headers and the exact body bytes.

The host always comes from configuration (the spec's base_url or UPSTREAM_BASE_URL); request
input can only fill escaped path segments, query values, headers and body fields. The URL is
built already percent-encoded and sent as is, so the path a signer signs is the path sent, and
a `.` or `..` segment (which a client or server would resolve) is refused, never sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import yarl

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.upstreams.spec.converters import ConvertError, apply_safely
from bridge.upstreams.spec.model import FieldSpec, HttpSpec
from bridge.upstreams.spec.signers import Signer
from bridge.upstreams.spec.templates import MISSING, Context, MissingVariable, to_text

_PATH_SAFE = "/%:@!$&'()*+,;=~"  # escapes that are already there and RFC 3986 path characters stay
CONTENT_TYPES = {"json": "application/json", "form": "application/x-www-form-urlencoded"}


@dataclass(slots=True)
class Outgoing:
    """One HTTP request, ready to send."""

    method: str
    url: str
    params: list[tuple[str, str]]
    headers: dict[str, str]
    body: bytes | None


def render_request(spec_name: str, http: HttpSpec, ctx: Context, base_url: str, signer: Signer | None,
                   path_where: str) -> Outgoing:
    """Build the request; a missing value or failed conversion is an `upstream_config` error.

    `url` is percent-encoded: send it as `yarl.URL(url, encoded=True)`.
    """
    try:
        path = http.path.render(ctx)
    except MissingVariable as exc:
        raise _missing(spec_name, path_where, exc.name) from None
    path = quote(path, safe=_PATH_SAFE)  # the spec's own literal text; placeholder values are escaped already
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        # A provider's task id is the provider's fault; anything else comes from the request.
        kind = ErrorKind.UPSTREAM_PROTOCOL if path_where.endswith("query_path") else ErrorKind.UPSTREAM_BAD_REQUEST
        raise UpstreamError(kind, f"spec {spec_name}: {path_where}: a value would make a '.' or '..' path segment")
    base = str(yarl.URL(base_url))
    url = base.rstrip("/") + path if path else base
    params = [(name, to_text(value)) for name, value in _values(spec_name, http.params, ctx)]
    headers: dict[str, str] = {}
    for name, value in _values(spec_name, http.headers, ctx):
        headers[name] = _header_value(spec_name, name, to_text(value))
    body: bytes | None = None
    if http.method != "GET":
        values = _values(spec_name, http.data, ctx)
        body = _form(values) if http.body == "form" else jsonutil.dumps(_nest(spec_name, values))
        if not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = CONTENT_TYPES[http.body]
    if signer is not None:
        try:
            signer.sign(ctx, http.method, urlsplit(url).path or "/", body or b"", headers)
        except MissingVariable as exc:
            raise _missing(spec_name, "signer", exc.name) from None
        for name, value in headers.items():
            _header_value(spec_name, name, value)
    return Outgoing(http.method, url, params, headers, body)


def _values(spec_name: str, fields: list[FieldSpec], ctx: Context) -> list[tuple[str, Any]]:
    out = []
    for field in fields:
        if field.unless is not None and ctx.get(field.unless) is not MISSING:
            continue
        try:
            value = field.template.render(ctx)
            if field.converter is not None:
                value = apply_safely(field.converter, value, ctx)
        except MissingVariable as exc:
            if field.optional:
                continue
            raise _missing(spec_name, field.where, exc.name) from None
        except ConvertError as exc:
            raise UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: {field.where}: {exc}") from None
        out.append((field.name, value))
    return out


def _nest(spec_name: str, values: list[tuple[str, Any]]) -> dict[str, Any]:
    """Body fields with dotted names (`input.messages`) become nested objects."""
    body: dict[str, Any] = {}
    for name, value in values:
        if "." not in name:
            body[name] = value
            continue
        *parents, leaf = name.split(".")
        node = body
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: data field {name!r} "
                                    f"nests under {key!r}, which is not an object")
        node[leaf] = value
    return body


def _form(values: list[tuple[str, Any]]) -> bytes:
    """A urlencoded form; objects and lists are sent as JSON text."""
    return urlencode([(name, to_text(value)) for name, value in values]).encode()


def _header_value(spec_name: str, name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: header {name} would contain a line break")
    return value


def _missing(spec_name: str, where: str, variable: str) -> UpstreamError:
    hint = f" (set the environment variable {variable[4:]})" if variable.startswith("env.") else ""
    return UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: {where}: no value for ${{{variable}}}{hint}")
