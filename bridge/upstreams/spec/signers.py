"""Request signers a spec may name: `bearer`, and `ihcloud` (Baidu 灵医 / Lingyi).

A signer adds headers after the body is encoded, so it can sign the exact bytes sent.
Its secrets are templates (`${api_key}`, `${env.LINGYI_SK}`), checked at start-up.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence
from typing import Any, Protocol

import jsonschema

from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.templates import Context, MissingVariable, Template, compile_template

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class Signer(Protocol):
    """Adds authentication headers to one outgoing request."""

    templates: tuple[Template, ...]
    optional: bool

    def sign(self, ctx: Context, method: str, path: str, body: bytes, headers: dict[str, str]) -> None: ...


class BearerSigner:
    """`Authorization: Bearer <key>`; the key defaults to `${api_key}`."""

    def __init__(self, args: dict[str, Any], where: list[str | int]) -> None:
        self.key = compile_template(args.get("key", "${api_key}"), [*where, "key"])
        self.header: str = args.get("header", "Authorization")
        self.scheme: str = args.get("scheme", "Bearer")
        self.optional: bool = args.get("optional", False)
        self.templates = (self.key,)

    def sign(self, ctx: Context, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        try:
            key = self.key.render(ctx)
        except MissingVariable:
            if self.optional:
                return
            raise
        headers[self.header] = f"{self.scheme} {key}" if self.scheme else str(key)


class IhcloudSigner:
    """Lingyi's `X-IHU-Authorization-V2`: HMAC-SHA256 over method, path and the body's MD5."""

    optional = False

    def __init__(self, args: dict[str, Any], where: list[str | int]) -> None:
        self.ak = compile_template(args.get("ak", "${env.LINGYI_AK}"), [*where, "ak"])
        self.sk = compile_template(args.get("sk", "${env.LINGYI_SK}"), [*where, "sk"])
        self.expires: int = args.get("expires", 300)
        self.header: str = args.get("header", "X-IHU-Authorization-V2")
        self.templates = (self.ak, self.sk)

    def sign(self, ctx: Context, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        headers[self.header] = ihcloud_authorization(
            str(self.ak.render(ctx)), str(self.sk.render(ctx)), method, path, body, ctx.now, self.expires
        )


def ihcloud_authorization(ak: str, sk: str, method: str, path: str, body: bytes, now: float,
                          expires: int = 300) -> str:
    """The header value for one request (see ../shared/protocols.md, Baidu 灵医)."""
    t = time.gmtime(now)
    stamp = f"{t.tm_mday:02d} {_MONTHS[t.tm_mon - 1]} {t.tm_year} {t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} GMT"
    prefix = f"ihcloud/{ak}/{stamp}/{expires}"
    signing_key = hmac.new(sk.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    canonical = f"{method.upper()}\n{path}\ncontent-md5:{hashlib.md5(body).hexdigest()}"
    signature = hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return f"{prefix}/{signature}"


_HEADER = {"type": "string", "pattern": "^[A-Za-z0-9-]+$"}
_ARGS: dict[str, tuple[dict[str, Any], type]] = {
    "bearer": ({"properties": {"key": {"type": "string"}, "header": _HEADER, "scheme": {"type": "string"},
                               "optional": {"type": "boolean"}}}, BearerSigner),
    "ihcloud": ({"properties": {"ak": {"type": "string"}, "sk": {"type": "string"}, "header": _HEADER,
                                "expires": {"type": "integer", "minimum": 1, "maximum": 86400}}}, IhcloudSigner),
}
#: name -> (a validator of its arguments, built once; its class)
SIGNERS: dict[str, tuple[jsonschema.Draft202012Validator, type]] = {
    name: (jsonschema.Draft202012Validator({"type": "object", "additionalProperties": False, **schema}), cls)
    for name, (schema, cls) in _ARGS.items()
}


def compile_signer(raw: Any, where: Sequence[str | int]) -> Signer:
    """`"bearer"` or `{"name": "ihcloud", ...arguments}`."""
    args = {"name": raw} if isinstance(raw, str) else dict(raw)
    name = args.pop("name", None)
    at = list(where) if isinstance(raw, str) else [*where, "name"]
    if name not in SIGNERS:
        raise SpecError(at, f"unknown signer {name!r}; known: {', '.join(SIGNERS)}")
    validator, cls = SIGNERS[name]
    error = jsonschema.exceptions.best_match(validator.iter_errors(args))
    if error is not None:
        raise SpecError([*where, *error.absolute_path], f"signer {name!r}: {error.message}")
    signer: Signer = cls(args, list(where))
    return signer
