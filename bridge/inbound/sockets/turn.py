"""One turn of a socket session: the caller's words in, the model's answer out as the
platform's messages, through the one pipeline.

The answer is `agent.pipeline.answer(...)` (speech filter, filler, bridge tools, retries,
fallbacks, the failure phrase), each batch sent as one message. A turn is cancelled by
whoever starts the next one (a new prompt, a newer Retell `response_id`), by the caller's
interrupt, by the socket closing and by the drain's cut: cancelling closes the pipeline's
generator, which cancels the upstream call at once, and nothing more is sent for it.

Its outcome goes on its log line: `done`, `interrupted` (the caller spoke over it or hung
up), `superseded` (Retell asked for a newer response) or `failed` (the failure phrase, or an
answer cut short by an error).
"""

from __future__ import annotations

import asyncio
from contextlib import aclosing
from typing import Any, Protocol

from bridge.events import Batch, Filler, TextDelta, ToolCallDelta
from bridge.inbound.call_control import CallAction, chosen_action, tool_definitions
from bridge.inbound.sockets.fields import MAX_KEPT_ANSWER_CHARS
from bridge.log import RequestLog
from bridge.pipeline import Policy
from bridge.pipeline.agents import Agent
from bridge.render.errors import SOCKET
from bridge.request import ChatRequest

POLICY = Policy(SOCKET, filler=True, voice=True)  # streamed and spoken: fillers, and a failure phrase always
SPEECH_CHARS_PER_SECOND = 15.0  # how fast a platform's text-to-speech says an answer, for the hang-up's wait
MAX_SPEECH_WAIT = 10.0  # seconds a hang-up waits at most for its closing words to be said


class Output(Protocol):
    """How a turn's answer goes out on one platform."""

    async def speak(self, text: str) -> None:
        """Send a piece of the answer."""

    async def finish(self, turn: Turn, action: CallAction | None) -> None:
        """End the answer (and, with `action`, the call)."""

    async def cancelled(self, turn: Turn) -> None:
        """The answer was cancelled part-way (whatever the platform needs to know of it)."""


class Calls:
    """The caller-side tool calls of an answer (CALL_TOOLS), bounded like the pipeline's own."""

    __slots__ = ("calls", "max_calls", "max_chars")

    def __init__(self, max_calls: int, max_chars: int) -> None:
        self.calls: dict[int, dict[str, Any]] = {}
        self.max_calls = max_calls
        self.max_chars = max_chars

    def add(self, delta: ToolCallDelta) -> None:
        call = self.calls.get(delta.index)
        if call is None:
            if len(self.calls) >= self.max_calls:
                return
            call = self.calls[delta.index] = {"function": {"name": "", "arguments": ""}}
        function = call["function"]
        function["name"] = (function["name"] + (delta.name or ""))[:64]
        if len(function["arguments"]) + len(delta.arguments) <= self.max_chars:
            function["arguments"] += delta.arguments

    def listed(self) -> list[dict[str, Any]]:
        return [self.calls[i] for i in sorted(self.calls)]


class Turn:
    """One answer in progress: what it said, what it called, how it ended."""

    __slots__ = ("calls", "chars", "complete", "first_sent", "kept", "kept_chars", "log", "loop", "number", "outcome",
                 "output", "started")

    def __init__(self, number: int, log: RequestLog, output: Output, calls: Calls) -> None:
        self.number = number
        self.log = log
        self.output = output
        self.calls = calls
        self.loop = asyncio.get_running_loop()  # once: on 3.11 each look-up is a getpid() syscall
        self.started = self.loop.time()
        self.outcome = "done"
        self.kept: list[str] = []  # the answer's own words (no filler), for the history
        self.kept_chars = 0
        self.chars = 0  # everything sent, fillers included: the speech still to be heard
        self.first_sent: float | None = None
        self.complete = False  # the platform was told the answer is complete (`last: true`, `content_complete`)

    @property
    def said(self) -> bool:
        """Whether the model's own words reached the caller (a filler does not count)."""
        return bool(self.kept)

    @property
    def text(self) -> str:
        return "".join(self.kept)

    def take(self, batch: Batch) -> str:
        """What to send of a batch now; its words are kept for the history, its call-tool calls noted."""
        pieces: list[str] = []
        for event in batch:
            if type(event) is TextDelta:
                pieces.append(event.text)
                self._keep(event.text)
            elif type(event) is Filler:
                pieces.append(event.text)
            elif type(event) is ToolCallDelta:
                self.calls.add(event)
        return pieces[0] if len(pieces) == 1 else "".join(pieces)

    def _keep(self, text: str) -> None:
        room = MAX_KEPT_ANSWER_CHARS - self.kept_chars
        if room > 0 and text:
            self.kept.append(text[:room])
            self.kept_chars += min(len(text), room)

    async def say(self, text: str) -> None:
        """Send a piece of the answer, noting how much there is to say (for a hang-up's wait)."""
        if self.first_sent is None:
            self.first_sent = self.loop.time()
        self.chars += len(text)
        await self.output.speak(text)

    def speech_left(self) -> float:
        """Seconds until what this turn sent has been said, at SPEECH_CHARS_PER_SECOND (capped)."""
        now = self.loop.time()
        begun = self.first_sent if self.first_sent is not None else now
        return min(max(0.0, begun + self.chars / SPEECH_CHARS_PER_SECOND - now), MAX_SPEECH_WAIT)

    def elapsed_ms(self) -> float:
        return round((self.loop.time() - self.started) * 1000, 1)


async def answer(agent: Agent, chat: ChatRequest, turn: Turn) -> None:
    """Stream the pipeline's answer, then finish the turn (with its call action, if any).

    A failure is recorded on the turn's log line (SOCKET table); when nothing had been said,
    the failure phrase is said instead. Cancellation propagates: the upstream is closed and
    nothing more is sent.
    """
    pipeline = agent.pipeline
    action: CallAction | None = None
    try:
        batches = pipeline.answer(chat, turn.log, POLICY)
        async with aclosing(batches):
            async for batch in batches:
                text = turn.take(batch)
                if text:
                    await turn.say(text)
        action = _action(agent, turn)
    except Exception as exc:  # an upstream failure the phrase did not cover, the overload refusal, a bug
        SOCKET.failure(exc, turn.log)
        turn.outcome = "failed"
        phrase = pipeline.failure_text(POLICY)
        if phrase and turn.first_sent is None:
            await turn.say(phrase)
    if turn.log.failure_phrase:
        turn.outcome = "failed"
    await turn.output.finish(turn, action)


def _action(agent: Agent, turn: Turn) -> CallAction | None:
    """The call action the answer asked for; its name goes on the turn's log line."""
    calls = turn.calls.listed()
    if not calls:
        return None
    action = chosen_action(calls, agent.settings.answer)
    turn.log.call_control = action.kind if action is not None else "unsupported"
    return action


def chat_for(agent: Agent, messages: list[dict[str, Any]], route: str, meta: dict[str, Any]) -> ChatRequest:
    """The canonical request for one turn (CALL_TOOLS offered when set)."""
    chat = ChatRequest(messages, model=agent.model, route=route, meta=meta)
    settings = agent.settings.answer
    if settings.call_tools:
        chat.params["tools"] = tool_definitions(settings)
    return chat
