"""Retell's custom LLM: `GET /retell/{call_id}` (or `/retell/{token}/{call_id}`).

Retell connects to the pasted URL with the call id appended and exchanges JSON messages
(tests/fixtures/platforms/sockets/ records them with their sources):

- On open the bridge sends `config` (`auto_reconnect`, `call_details`) and the begin
  `response` (`response_id` 0) with GREETING, or empty content to wait for the caller.
- `response_required` / `reminder_required` carry a `response_id` and the whole `transcript`,
  which is the conversation's source of truth (`agent` is the assistant); the answer streams as
  `response` messages under that id and ends with one `content_complete: true`. A reminder
  (the caller has been silent) adds a system message asking for a short nudge.
- A newer `response_id` supersedes the answer in progress: its upstream call is cancelled and
  nothing more is sent for the old id once the new one starts. An id not newer than the last
  one answered is ignored (its content would be sent twice).
- `update_only` asks nothing of the model; `ping_pong` is answered with its timestamp;
  `call_details` names the call (ids logged, numbers masked; its dynamic variables bounded
  and offered to specs as `${extend.NAME}`).

With CALL_TOOLS the final response carries `end_call: true` (hang-up) or `transfer_number`
(transfer), with the closing words when the model said none. At the drain's cut the caller
hears HANGUP_WORDS in a final response with `end_call: true`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from bridge.inbound.call_control import CallAction
from bridge.inbound.sockets.fields import MAX_UTTERANCE_CHARS, identifiers, parameters, whole_number
from bridge.inbound.sockets.session import Session
from bridge.inbound.sockets.turn import Turn
from bridge.request import Message

CALL_IDS = ("call_id", "agent_id", "call_type", "direction", "from_number", "to_number")
ROLES = {"agent": "assistant", "user": "user"}
REMINDER = ("The caller has not said anything for a while. Say something short to check they are still "
            "there, or to move the conversation on.")


def response(response_id: int, content: str, complete: bool) -> dict[str, Any]:
    return {"response_type": "response", "response_id": response_id, "content": content,
            "content_complete": complete}


def conversation(transcript: list[Any], max_history: int) -> list[Message]:
    """The last `max_history` utterances of Retell's transcript as chat messages (others skipped)."""
    messages: list[Message] = []
    for utterance in reversed(transcript):
        if len(messages) == max_history:
            break
        if not isinstance(utterance, dict):
            continue
        role, content = ROLES.get(str(utterance.get("role"))), utterance.get("content")
        if role is not None and isinstance(content, str) and content:
            messages.append({"role": role, "content": content[:MAX_UTTERANCE_CHARS]})
    messages.reverse()
    return messages


class RetellOutput:
    """A turn's answer as `response` messages under its `response_id`."""

    __slots__ = ("response_id", "session")

    def __init__(self, session: Session, response_id: int) -> None:
        self.session = session
        self.response_id = response_id

    async def speak(self, text: str) -> None:
        await self.session.send(response(self.response_id, text, False))

    async def finish(self, turn: Turn, action: CallAction | None) -> None:
        session = self.session
        if action is None:
            await session.send(response(self.response_id, "", True))
            return
        words = "" if turn.said else action.words or (session.agent.settings.answer.hangup_words
                                                      if action.kind == "hangup" else "")
        final = response(self.response_id, words, True)
        if action.kind == "hangup":
            final["end_call"] = True
        else:
            final["transfer_number"] = action.number
        session.end(action.kind)
        await session.send(final)
        session.ended()

    async def cancelled(self, turn: Turn) -> None:
        """Superseded: Retell has moved on to a newer response_id; nothing more is sent for this one."""


class RetellLLM:
    """One session's Retell state: the newest `response_id` answered."""

    name = "retell"
    __slots__ = ("response_id",)

    def __init__(self) -> None:
        self.response_id = -1  # none yet (the begin message is response 0, sent unasked)

    async def opened(self, session: Session) -> None:
        session.history = None  # each request carries the whole transcript
        await session.send({"response_type": "config", "config": {"auto_reconnect": True, "call_details": True}})
        await session.send(response(0, session.agent.settings.answer.greeting or "", True))

    async def handle(self, session: Session, message: dict[str, Any]) -> None:
        kind = message.get("interaction_type")
        handler = _HANDLERS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            session.ignore("unknown interaction_type", kind)
            return
        if not session.ready:
            session.set_up(self.name, {}, {})
        await handler(self, session, message)

    async def goodbye(self, session: Session, words: str) -> None:
        final = response(max(self.response_id, 0), words, True)
        final["end_call"] = True
        await session.send(final)
        session.ended()

    async def _call_details(self, session: Session, message: dict[str, Any]) -> None:
        call = message.get("call")
        if not isinstance(call, dict):
            session.ignore("call_details without a call", "call_details")
            return
        session.set_up(self.name, identifiers(call, CALL_IDS), parameters(call.get("retell_llm_dynamic_variables")))

    async def _ping_pong(self, session: Session, message: dict[str, Any]) -> None:
        timestamp = whole_number(message.get("timestamp"))
        if timestamp is None:
            session.ignore("ping_pong without a timestamp", "ping_pong")
            return
        await session.send({"response_type": "ping_pong", "timestamp": timestamp})

    async def _update_only(self, session: Session, message: dict[str, Any]) -> None:
        """The transcript so far: nothing to answer (the next request carries it whole)."""

    async def _respond(self, session: Session, message: dict[str, Any]) -> None:
        response_id, transcript = whole_number(message.get("response_id")), message.get("transcript")
        if response_id is None or not isinstance(transcript, list):
            session.ignore("no response_id or transcript", message.get("interaction_type"))
            return
        if response_id <= self.response_id:  # an older request, or one already being answered
            session.ignore("stale response_id", message.get("interaction_type"))
            return
        self.response_id = response_id
        messages = conversation(transcript, session.agent.settings.answer.max_history)
        if message.get("interaction_type") == "reminder_required":
            messages.append({"role": "system", "content": REMINDER})
        await session.start_turn(messages, RetellOutput(session, response_id), replaces="superseded",
                                 ids={"response_id": response_id})


Handler = Callable[[RetellLLM, Session, dict[str, Any]], Awaitable[None]]
_HANDLERS: dict[str, Handler] = {
    "call_details": RetellLLM._call_details,
    "ping_pong": RetellLLM._ping_pong,
    "update_only": RetellLLM._update_only,
    "response_required": RetellLLM._respond,
    "reminder_required": RetellLLM._respond,
}
