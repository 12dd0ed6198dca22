"""Keeps secrets out of logs and error bodies."""

from __future__ import annotations

import re
from collections.abc import Iterable

MASK = "[redacted]"
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}")
_KEYLIKE = re.compile(r"\b(sk|ak|key|tok)[-_][A-Za-z0-9_-]{12,}\b")


class Redactor:
    """Replaces every configured secret, and anything shaped like a credential, with a mask."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        if "earer" in text or "asic" in text:
            text = _BEARER.sub(lambda m: f"{m.group(1)} {MASK}", text)
        return _KEYLIKE.sub(MASK, text)
