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
    path = _path(spec_name, http, ctx, path_where)
    base = str(yarl.URL(base_url))
    url = base.rstrip("/") + path if path else base
    params = [(f.name, to_text(value)) for f, value in _values(spec_name, http.params, ctx)]
    headers = {f.name: _header_value(spec_name, f.name, to_text(value))
               for f, value in _values(spec_name, http.headers, ctx)}
    body = _body(spec_name, http, ctx, headers) if http.method != "GET" else None
    if signer is not None:
        _sign(spec_name, signer, ctx, http.method, url, body, headers)
    return Outgoing(http.method, url, params, headers, body)


def _path(spec_name: str, http: HttpSpec, ctx: Context, where: str) -> str:
    try:
        path = http.path.render(ctx)
    except MissingVariable as exc:
        raise _missing(spec_name, where, exc.name) from None
    path = quote(path, safe=_PATH_SAFE)  # the spec's own literal text; placeholder values are escaped already
    if any(unquote(segment) in (".", "..") for segment in path.split("/")):
        # A provider's task id is the provider's fault; anything else comes from the request.
        kind = ErrorKind.UPSTREAM_PROTOCOL if where.endswith("query_path") else ErrorKind.UPSTREAM_BAD_REQUEST
        raise UpstreamError(kind, f"spec {spec_name}: {where}: a value would make a '.' or '..' path segment")
    return str(path)


def _body(spec_name: str, http: HttpSpec, ctx: Context, headers: dict[str, str]) -> bytes:
    values = _values(spec_name, http.data, ctx)
    plain = [(f.name, value) for f, value in values if not f.merge]
    merged = [(f, value) for f, value in values if f.merge]
    if not any(k.lower() == "content-type" for k in headers):
        headers["Content-Type"] = CONTENT_TYPES[http.body]
    if http.body == "form":
        return _form(plain, [value for _, value in merged])
    body = _nest(spec_name, plain)
    for f, value in merged:
        _merge(spec_name, f, body, value)
    return jsonutil.dumps(body)


def _sign(spec_name: str, signer: Signer, ctx: Context, method: str, url: str, body: bytes | None,
          headers: dict[str, str]) -> None:
    try:
        signer.sign(ctx, method, urlsplit(url).path or "/", body or b"", headers)
    except MissingVariable as exc:
        raise _missing(spec_name, "signer", exc.name) from None
    for name, value in headers.items():
        _header_value(spec_name, name, value)


def _values(spec_name: str, fields: list[FieldSpec], ctx: Context) -> list[tuple[FieldSpec, Any]]:
    """Every field that has a value, with it; a merge field's value is checked to be an object."""
    out = []
    for f in fields:
        value = _value(spec_name, f, ctx)
        if value is MISSING:
            continue
        if f.merge and not isinstance(value, dict):
            raise UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: {f.where}: merge needs an object, "
                                f"not {type(value).__name__}")
        out.append((f, value))
    return out


def _value(spec_name: str, f: FieldSpec, ctx: Context) -> Any:
    if f.unless is not None and ctx.get(f.unless) is not MISSING:
        return MISSING
    try:
        value = f.template.render(ctx)
        if f.converter is not None:
            value = apply_safely(f.converter, value, ctx)
        return MISSING if value is None and f.optional else value  # an optional field a converter mapped to null
    except MissingVariable as exc:
        if f.optional:
            return MISSING
        raise _missing(spec_name, f.where, exc.name) from None
    except ConvertError as exc:
        raise UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: {f.where}: {exc}") from None


def _nest(spec_name: str, values: list[tuple[str, Any]]) -> dict[str, Any]:
    """Body fields with dotted names (`input.messages`) become nested objects."""
    body: dict[str, Any] = {}
    for name, value in values:
        *parents, leaf = name.split(".")
        _node(spec_name, body, parents, name)[leaf] = value
    return body


def _node(spec_name: str, body: dict[str, Any], parents: list[str], name: str) -> dict[str, Any]:
    node = body
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: data field {name!r} "
                                f"nests under {key!r}, which is not an object")
    return node


def _merge(spec_name: str, f: FieldSpec, body: dict[str, Any], value: dict[str, Any]) -> None:
    """A merge field's entries, under `name` ("" is the top level); what the spec's own fields set wins."""
    node = _node(spec_name, body, f.name.split(".") if f.name else [], f.name)
    for key, item in value.items():
        node.setdefault(key, item)


def _form(values: list[tuple[str, Any]], merged: list[dict[str, Any]]) -> bytes:
    """A urlencoded form; objects and lists are sent as JSON text; merged entries after, unless set."""
    pairs = [(name, to_text(value)) for name, value in values]
    names = {name for name, _ in pairs}
    for extra in merged:
        pairs += [(k, to_text(v)) for k, v in extra.items() if k not in names]
        names.update(extra)
    return urlencode(pairs).encode()


def _header_value(spec_name: str, name: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: header {name} would contain a line break")
    return value


def _missing(spec_name: str, where: str, variable: str) -> UpstreamError:
    hint = f" (set the environment variable {variable[4:]})" if variable.startswith("env.") else ""
    return UpstreamError(ErrorKind.UPSTREAM_CONFIG, f"spec {spec_name}: {where}: no value for ${{{variable}}}{hint}")
