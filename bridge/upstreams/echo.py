"""An embedded upstream that needs no network or key: it repeats the last user message.

It is what a fresh install runs on, so the service can be tried and tested end to end.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator

from bridge.events import Batch, Finish, TextDelta, Usage, estimate_prompt_tokens, estimate_tokens
from bridge.request import ChatRequest

_PIECES = re.compile(r"\s*\S{1,6}|\s+")


def echo_answer(request: ChatRequest) -> str:
    """The deterministic answer: `You said: <last user text>`."""
    text = request.last_user_text().strip()
    return f"You said: {text}" if text else "I didn't catch that."


class EchoUpstream:
    """Streams the echo answer a few characters at a time, like a real model."""

    name = "echo"
    first_event_timeout: float | None = None

    async def stream(self, request: ChatRequest) -> AsyncGenerator[Batch, None]:
        answer = echo_answer(request)
        for piece in _PIECES.findall(answer):
            await asyncio.sleep(0)
            yield [TextDelta(piece)]
        yield [Finish("stop"), Usage(estimate_prompt_tokens(request.messages), estimate_tokens(answer), estimated=True)]

    async def aclose(self) -> None:
        return None
