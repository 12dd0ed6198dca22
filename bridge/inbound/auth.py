"""Who may call, and which agent answers: token checks in constant time.

A caller presents a token (`Authorization: Bearer`, `x-api-key`, the form's `Token`, a socket
URL's `token`). On the plain routes the token chooses the agent (`Gate.choose`); on an
agent's own path (`/agents/<name>/...`) it must be one that agent accepts (`Gate.allows`).
Choosing is a dictionary look-up by the token's SHA-256 digest, then a constant-time compare:
the same cost with one agent or fifty, and no timing that tells a near miss.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping, Sequence

from bridge.pipeline.agents import Agent


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
        return self.check(bearer(authorization)) if self._tokens else True


def bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value (None for another scheme)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def header_token(headers: Mapping[str, str]) -> str | None:
    """A caller's key wherever its platform puts it: `Authorization: Bearer`, else `x-api-key`
    (D-ID's custom LLM, Anthropic-style clients)."""
    if "Authorization" in headers or "x-api-key" not in headers:
        return bearer(headers.get("Authorization"))
    return headers["x-api-key"].strip()


class Gate:
    """Which agent a token reaches: its owner's, else the default agent when that needs none."""

    def __init__(self, agents: Iterable[Agent], default: Agent) -> None:
        self.default = default
        agents = list(agents)
        self._owners: dict[bytes, tuple[bytes, Agent]] = {}
        for agent in agents:
            for token in agent.own_tokens:
                raw = token.encode()
                self._owners[hashlib.sha256(raw).digest()] = (raw, agent)
        self._checkers = {id(a): TokenChecker(a.tokens) for a in [default, *agents]}
        self.enabled = bool(self._owners) or any(c.enabled for c in self._checkers.values())

    def choose(self, token: str | None) -> Agent | None:
        """The agent `token` chooses on a plain route; None when it reaches none (a 401)."""
        if token:
            raw = token.encode("utf-8", "surrogateescape")
            found = self._owners.get(hashlib.sha256(raw).digest())
            if found is not None and hmac.compare_digest(found[0], raw):
                return found[1]
        return None if self.default.tokens else self.default

    def allows(self, agent: Agent, token: str | None) -> bool:
        """Whether `token` may reach `agent` on its own path."""
        checker = self._checkers.get(id(agent)) or TokenChecker(agent.tokens)
        return checker.check(token)
