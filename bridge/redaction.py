"""Keeps secrets out of logs and error bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
# Credentials by shape, in one pass: an Authorization value of any case ("Bearer ...", "BASIC ...")
# and key-like tokens ("sk-...", "ak_...").
_CREDENTIAL = re.compile(r"(?i:\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,})|\b(?:sk|ak|key|tok)[-_][A-Za-z0-9_-]{12,}\b")


def _mask(match: re.Match[str]) -> str:
    scheme = match.group(1)
    return f"{scheme} {MASK}" if scheme else MASK


PREFIX = 8  # a provider quoting the start of our key ("Incorrect API key provided: sk-live-...") is masked too


class Redactor:
    """Replaces every configured secret (or its start, quoted), and anything shaped like a credential."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self._prefixes: list[tuple[str, re.Pattern[str]]] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Mask these too (every agent's secrets, known once the agents are read)."""
        self.secrets = sorted({*self.secrets, *(s for s in secrets if s)}, key=len, reverse=True)
        self._prefixes = [(s[:PREFIX], re.compile(re.escape(s[:PREFIX]) + r"\S*"))
                          for s in self.secrets if len(s) >= 2 * PREFIX]

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for start, quoted in self._prefixes:
            if start in text:
                text = quoted.sub(MASK, text)
        return _CREDENTIAL.sub(_mask, text)
