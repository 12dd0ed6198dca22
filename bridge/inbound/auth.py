"""Token checks in constant time."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence


class TokenChecker:
    """Accepts any of the configured tokens; with none configured, auth is off."""

    def __init__(self, tokens: Sequence[str]) -> None:
        self._tokens = [t.encode() for t in tokens]

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def check(self, presented: str | None) -> bool:
        """True when `presented` equals a configured token (or auth is off).

        Every token is compared, so the time taken does not reveal which one came close.
        """
        if not self._tokens:
            return True
        candidate = (presented or "").encode("utf-8", "surrogateescape")
        ok = False
        for token in self._tokens:
            ok |= hmac.compare_digest(candidate, token)
        return ok and presented is not None

    def check_bearer(self, authorization: str | None) -> bool:
        """Check an `Authorization: Bearer <token>` header value."""
        if not self._tokens:
            return True
        scheme, _, token = (authorization or "").partition(" ")
        return self.check(token.strip() if scheme.lower() == "bearer" else None)

    def check_headers(self, headers: Mapping[str, str]) -> bool:
        """Check a caller's key wherever its platform puts it: `Authorization: Bearer`, else
        `x-api-key` (D-ID's custom LLM, Anthropic-style clients)."""
        if not self._tokens:
            return True
        if "Authorization" in headers or "x-api-key" not in headers:
            return self.check_bearer(headers.get("Authorization"))
        return self.check(headers["x-api-key"].strip())
