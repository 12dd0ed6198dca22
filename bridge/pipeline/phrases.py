"""Picking a phrase the bridge says itself (waiting, filler) in the language of the question."""

from __future__ import annotations

import random
from collections.abc import Sequence

from bridge.knowledge.text import has_cjk


def pick_phrase(phrases: Sequence[str], question: str) -> str:
    """A random phrase, in Chinese for a Chinese question when one is configured."""
    cjk = has_cjk(question)
    matching = [p for p in phrases if has_cjk(p) == cjk]
    return random.choice(matching or phrases)
