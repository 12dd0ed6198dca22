"""ConversationRelay, Twilio's and Telnyx's (the same protocol): `GET /conversation-relay`.

The platform connects to the `url` of `<Connect><ConversationRelay>` and sends JSON messages
(tests/fixtures/platforms/sockets/ records them with their sources):

- `setup` first: the call's ids (`sessionId`, `callSid`, `from`, `to`, ...; Telnyx adds
  `callControlId`, which tells the two apart) and `customParameters` (bounded, offered to
  specs as `${extend.NAME}`). GREETING, when set, is said at once and starts the history.
- `prompt`: what the caller said. With `last: false` it is a partial transcript: the bridge
  waits for the final one (`last: true`) and answers that, as `text` tokens ending with
  exactly one `last: true`. Partial pieces are joined with the final one unless the final one
  already repeats them.
- `interrupt`: the caller spoke over the answer. The answer is cancelled (and its upstream
  call with it) and the assistant's turn in the history becomes `utteranceUntilInterrupt`,
  what the caller heard; a new prompt while an answer streams cancels it too.
- `dtmf`: a keypad digit reaches the model as the user message `[keypad: 12#]` (digits pressed
  one after another join one message). The model is asked after KEYPAD_SETTLE seconds without
  another digit, or at once after `#`.
- `error`: the platform's complaint about a message the bridge sent; logged.

With CALL_TOOLS the model may end the call: its closing words are said (the model's own, else
the tool's `closing_words`, else HANGUP_WORDS), and once they have had time to be heard
(`Turn.speech_left`) the bridge sends `{"type": "end", "handoffData": "..."}`, whose JSON
string the platform passes on to `<Connect action>`: `{"reason": "hangup"}`,
`{"reason": "transfer", "number": "+1..."}` or, at the drain's cut, `{"reason": "shutdown"}`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from bridge import jsonutil
from bridge.inbound.call_control import CallAction
from bridge.inbound.sockets.fields import MAX_KEPT_ANSWER_CHARS, MAX_UTTERANCE_CHARS, identifiers, parameters, text
from bridge.inbound.sockets.session import Session
from bridge.inbound.sockets.turn import Turn
from bridge.log import short
from bridge.pipeline import separator
from bridge.request import Message

SETUP_IDS = ("sessionId", "callSid", "accountSid", "parentCallSid", "callControlId", "callSessionId", "callLegId",
             "from", "to", "forwardedFrom", "direction", "callType")
KEYPAD_SETTLE = 1.0  # seconds after a digit before the model is asked (more may follow); `#` asks at once
MAX_DIGITS = 32


def text_message(token: str, last: bool) -> dict[str, Any]:
    return {"type": "text", "token": token, "last": last}


def end_message(reason: str, number: str = "") -> dict[str, Any]:
    data = {"reason": reason, "number": number} if number else {"reason": reason}
    return {"type": "end", "handoffData": jsonutil.dumps_str(data)}


class RelayOutput:
    """A turn's answer as `text` tokens; the call ended with `end` after the closing words."""

    __slots__ = ("session",)

    def __init__(self, session: Session) -> None:
        self.session = session

    async def speak(self, text: str) -> None:
        await self.session.send(text_message(text, False))

    async def finish(self, turn: Turn, action: CallAction | None) -> None:
        session = self.session
        turn.complete = True
        if action is None:
            await session.send(text_message("", True))
            return
        words = "" if turn.said else action.words or (session.agent.settings.answer.hangup_words
                                                      if action.kind == "hangup" else "")
        session.end(action.kind)
        turn.chars += len(words)
        await session.send(text_message(words, True))
        await asyncio.sleep(turn.speech_left())  # the platform may cut speech still playing when `end` arrives
        await session.send(end_message(action.kind, action.number))
        session.ended()

    async def cancelled(self, turn: Turn) -> None:
        """A talk cycle that began ends with `last: true`, so the next answer starts its own."""
        if turn.first_sent is not None and not turn.complete:
            await self.session.send(text_message("", True))


class ConversationRelay:
    """One session's ConversationRelay state: a partial prompt, keypad digits."""

    name = "conversation_relay"
    __slots__ = ("digits", "keypad", "partial", "partial_latest")

    def __init__(self) -> None:
        self.partial = ""  # partial prompts so far, joined
        self.partial_latest = ""
        self.digits = ""
        self.keypad: Message | None = None  # the history's keypad message that digits still join

    async def opened(self, session: Session) -> None:
        """ConversationRelay speaks first: the bridge waits for `setup`."""

    async def handle(self, session: Session, message: dict[str, Any]) -> None:
        kind = message.get("type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            session.ignore("unknown type", kind)
        elif kind != "setup" and not session.ready:
            session.ignore("before setup", kind)
        elif session.ending is None or kind == "error":  # once the bridge ends the call, the caller goes unheard
            await handler(self, session, message)

    async def goodbye(self, session: Session, words: str) -> None:
        if words:
            await session.send(text_message(words, True))
        await session.send(end_message("shutdown"))
        session.ended()

    async def _setup(self, session: Session, message: dict[str, Any]) -> None:
        if session.ready:
            session.ignore("setup again", "setup")
            return
        ids = identifiers(message, SETUP_IDS)
        session.set_up("telnyx" if "callControlId" in ids else "twilio", ids,
                       parameters(message.get("customParameters")))
        greeting = session.agent.settings.answer.greeting
        if greeting:
            await session.send(text_message(greeting, True))
            _history(session).append({"role": "assistant", "content": greeting})

    async def _prompt(self, session: Session, message: dict[str, Any]) -> None:
        words = text(message.get("voicePrompt"))
        if message.get("last") is False:
            self.partial = (self.partial + separator(self.partial, words) + words)[-MAX_UTTERANCE_CHARS:]
            self.partial_latest = words
            return
        words = self._whole(words)
        if not words.strip():
            session.ignore("empty prompt", "prompt")
            return
        self.keypad = None
        await session.preempt("interrupted")
        history = _history(session)
        history.append({"role": "user", "content": words})
        await session.start_turn(list(history), RelayOutput(session))

    def _whole(self, final: str) -> str:
        """The utterance: the final transcript, after the partial pieces unless it repeats them."""
        partial, latest = self.partial, self.partial_latest
        self.partial = self.partial_latest = ""
        if not partial or final.startswith(latest):
            return final
        return (partial + separator(partial, final) + final)[-MAX_UTTERANCE_CHARS:]

    async def _interrupt(self, session: Session, message: dict[str, Any]) -> None:
        heard = text(message.get("utteranceUntilInterrupt"), MAX_KEPT_ANSWER_CHARS)
        session.count_interrupt()
        await session.stop_turn("interrupted")
        history = _history(session)
        if history and history[-1].get("role") == "assistant":
            if heard:
                history[-1] = {"role": "assistant", "content": heard}
            else:
                history.pop()
        elif heard:
            history.append({"role": "assistant", "content": heard})

    async def _dtmf(self, session: Session, message: dict[str, Any]) -> None:
        digit = text(message.get("digit"), 4)
        if not digit:
            session.ignore("no digit", "dtmf")
            return
        await session.preempt("interrupted")
        history = _history(session)
        if self.keypad is not None and history and history[-1] is self.keypad:
            history.pop()  # the digits pressed so far: this one joins them
        else:
            self.digits = ""
        self.digits = (self.digits + digit)[-MAX_DIGITS:]
        self.keypad = {"role": "user", "content": f"[keypad: {self.digits}]"}
        history.append(self.keypad)
        await session.start_turn(list(history), RelayOutput(session), delay=0.0 if digit == "#" else KEYPAD_SETTLE)

    async def _error(self, session: Session, message: dict[str, Any]) -> None:
        session.logger.warning("socket_platform_error", platform=session.platform,
                               description=short(text(message.get("description"), 500)), **session.ids)


def _history(session: Session) -> list[Message]:
    assert session.history is not None  # ConversationRelay keeps the conversation in the session
    return session.history


Handler = Callable[[ConversationRelay, Session, dict[str, Any]], Awaitable[None]]
_HANDLERS: dict[str, Handler] = {
    "setup": ConversationRelay._setup,
    "prompt": ConversationRelay._prompt,
    "interrupt": ConversationRelay._interrupt,
    "dtmf": ConversationRelay._dtmf,
    "error": ConversationRelay._error,
}
