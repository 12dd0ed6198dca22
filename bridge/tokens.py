"""Token estimates for upstreams that report no usage: good enough for logs and billing hints."""

from __future__ import annotations

from collections.abc import Iterable

from bridge.request import Message, content_text


def estimate_tokens(text: str) -> int:
    """About one token per CJK character and per four other characters."""
    if not text:
        return 0
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return wide + (len(text) - wide + 3) // 4


def estimate_prompt_tokens(messages: Iterable[Message]) -> int:
    """Estimate of a prompt's tokens, with OpenAI's few tokens of framing per message."""
    return sum(4 + estimate_tokens(content_text(m.get("content"))) for m in messages) + 2
