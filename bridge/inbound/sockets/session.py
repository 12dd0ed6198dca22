"""A socket session: one phone call's conversation, from the handshake to the close.

The platform opens a WebSocket per call and leaves the conversation to the server. A
`Session` keeps it for the life of the socket, in memory (the socket is pinned to this
process): the history (SYSTEM_PROMPT and MAX_HISTORY are applied by the pipeline on each
turn), the call's identifiers, and at most one turn in progress (bridge/inbound/sockets/
turn.py). The platform's own messages are read and answered by its protocol (relay.py,
retell.py); this module is what they share:

- one loop reads the socket: a message is parsed as JSON (at most MAX_MESSAGE_BYTES: a
  larger one closes the socket with 1009) and handed to the protocol; a malformed or
  unknown one is counted and ignored (the first few are logged);
- the platform must set the session up within SETUP_TIMEOUT (ConversationRelay's `setup`,
  any Retell message; SESSION_IDLE_TIMEOUT if shorter), and a session that hears nothing for
  SESSION_IDLE_TIMEOUT is closed;
- starting a turn cancels the one in progress; the socket closing cancels it too;
- after the bridge ended the call (a hang-up or transfer) the platform has END_GRACE to close;
- at the end of the drain (`shut_down`) the turn is cut, the caller hears HANGUP_WORDS, the
  platform gets its end message and the socket closes with 1001.

What the session did goes on the log line of its upgrade request (the access middleware's:
its latency is the session's duration): the platform, its ids, turns, interrupts, messages
ignored and why it ended. Each turn has a line of its own (`turn`).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from aiohttp import WSCloseCode, WSMsgType, web
from aiohttp.http_websocket import WebSocketError

from bridge import jsonutil
from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.sockets.fields import logged
from bridge.inbound.sockets.turn import Calls, Output, Turn, answer, chat_for
from bridge.log import RequestLog, short
from bridge.pipeline import capped_history
from bridge.pipeline.agents import Agent
from bridge.render.errors import SOCKET
from bridge.render.ids import session_id
from bridge.request import Message

MAX_MESSAGE_BYTES = 64 * 1024  # one message from the platform; larger closes the socket (1009)
SETUP_TIMEOUT = 10.0  # seconds from the handshake to the platform's first valid message
END_GRACE = 30.0  # seconds the platform has to close the socket after the bridge ended the call (or the idle timeout)
CLOSE_TIMEOUT = 1.0  # seconds the closing handshake may take
LOGGED_IGNORED = 3  # ignored messages logged per session (every one is counted)
CUT_MESSAGE = "the server shut down during the call"


class SocketProtocol(Protocol):
    """One platform's messages: what to send on open, how to answer each message, how to say goodbye."""

    name: str  # before set-up: the protocol ("conversation_relay", "retell")

    async def opened(self, session: Session) -> None:
        """The socket is open (Retell speaks first)."""

    async def handle(self, session: Session, message: dict[str, Any]) -> None:
        """Answer one message from the platform."""

    async def goodbye(self, session: Session, words: str) -> None:
        """Say `words` and end the call (the drain's cut)."""


class Session:
    """One call's conversation and its socket."""

    __slots__ = ("agent", "close_by", "deadline", "end_sent", "ending", "history", "ids", "ignored", "interrupts",
                 "log", "logger", "loop", "meta", "metrics", "platform", "protocol", "route", "task", "turn", "turns",
                 "ws")

    def __init__(self, ws: web.WebSocketResponse, agent: Agent, log: RequestLog, protocol: SocketProtocol,
                 route: str, logger: Any, ids: dict[str, str] | None = None) -> None:
        self.ws = ws
        self.agent = agent
        self.log = log  # the upgrade request's: the session's line
        self.protocol = protocol
        self.route = route
        self.logger = logger
        self.metrics = agent.pipeline.chain.metrics
        self.loop = asyncio.get_running_loop()
        # until set up: when the platform must have named the call (None once it has)
        self.deadline: float | None = self.loop.time() + min(SETUP_TIMEOUT, agent.settings.sockets.idle_timeout)
        self.platform = protocol.name
        self.ids: dict[str, Any] = {"session": session_id(), **logged(ids or {})}
        self.meta: dict[str, Any] = dict(ids or {})  # offered to specs as ${extend.NAME}
        self.history: list[Message] | None = []  # None: the platform sends the whole conversation each turn
        self.task: asyncio.Task[None] | None = None
        self.turn: Turn | None = None
        self.turns = self.interrupts = self.ignored = 0
        self.ending: str | None = None  # why the bridge is ending the call (hangup, transfer, shutdown)
        self.end_sent = False  # the platform's end message went out
        self.close_by: asyncio.TimerHandle | None = None  # once ending: the bridge closes if the platform has not

    # -- the socket ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Serve the session until the socket closes; its summary goes on the upgrade request's line."""
        try:
            await self.protocol.opened(self)
            await self._serve()
        except Exception as exc:  # a bug: this session ends (1011), logged; the process serves on
            SOCKET.failure(exc, self.log)
            self.log.end_reason = "internal_error"
            await self.close(WSCloseCode.INTERNAL_ERROR)
        finally:
            self._summarise()  # first: nothing below may be reached if the task is cancelled again
            await self.stop_turn("interrupted")  # the caller hung up mid-answer, or the socket broke
            await self.close(WSCloseCode.OK)

    async def _serve(self) -> None:
        while True:
            message = await self._receive()
            if message is None:
                return
            await self.protocol.handle(self, message)
            del message  # not kept while the session waits (a Retell transcript is up to 64 KiB of JSON)

    def _summarise(self) -> None:
        if self.close_by is not None:
            self.close_by.cancel()
        if self.deadline is None:
            self.metrics.sessions.labels(self.platform).dec()
        log = self.log
        log.platform, log.ids = self.platform, self.ids
        log.turns, log.interrupts, log.ignored = self.turns, self.interrupts, self.ignored or None
        log.end_reason = log.end_reason or self.ending or "closed"

    async def _receive(self) -> dict[str, Any] | None:
        """The next JSON object from the platform; None when the session is over."""
        while not self.ws.closed:
            try:
                msg = await self.ws.receive(self._wait())
            except TimeoutError:
                await self._timed_out()
                return None
            if msg.type is WSMsgType.TEXT:
                message = self._parse(msg.data)
                if message is not None:
                    return message
            elif msg.type is WSMsgType.BINARY:
                self.ignore("binary message")
            else:
                self._ended_by(msg.type, msg.data)
                return None
        return None

    def _wait(self) -> float:
        """Seconds the next message may take: until the set-up deadline, else SESSION_IDLE_TIMEOUT."""
        if self.deadline is not None:
            return max(self.deadline - self.loop.time(), 0.001)
        return self.agent.settings.sockets.idle_timeout

    async def _timed_out(self) -> None:
        if self.ending is not None:
            await self.close(WSCloseCode.OK)  # the bridge ended the call; the platform did not close
        elif self.deadline is not None:
            self.log.end_reason = "setup_timeout"
            await self.close(WSCloseCode.POLICY_VIOLATION, b"no setup")
        else:
            self.log.end_reason = "idle"
            await self.close(WSCloseCode.OK, b"idle")

    def _ended_by(self, kind: WSMsgType, data: Any) -> None:
        if kind is WSMsgType.ERROR:
            too_big = isinstance(data, WebSocketError) and data.code == WSCloseCode.MESSAGE_TOO_BIG
            self.log.end_reason = "message_too_big" if too_big else "protocol_error"

    def _parse(self, data: str | bytes) -> dict[str, Any] | None:
        try:
            message = jsonutil.loads(data)
        except ValueError:
            message = None
        if not isinstance(message, dict):
            self.ignore("not a JSON object")
            return None
        return message

    def ignore(self, reason: str, kind: Any = None) -> None:
        """Count a message the session does not act on; the first few are logged (never their content)."""
        self.ignored += 1
        if self.ignored <= LOGGED_IGNORED:
            self.logger.warning("socket_message_ignored", platform=self.platform, reason=reason,
                                type=short(kind, 40), **self.ids)

    async def send(self, payload: dict[str, Any]) -> None:
        """Send one message; a socket already gone is not an error (the session ends on its next read)."""
        if not self.ws.closed:
            try:
                await self.ws.send_frame(jsonutil.dumps(payload), WSMsgType.TEXT)
            except ConnectionError:
                pass

    async def close(self, code: int, reason: bytes = b"") -> None:
        if not self.ws.closed:
            try:
                await self.ws.close(code=code, message=reason)
            except ConnectionError:
                pass

    # -- what the platform tells the session -------------------------------------------------------

    def set_up(self, platform: str, ids: dict[str, str], meta: dict[str, Any]) -> None:
        """The platform named the call: from now on the idle timeout applies."""
        if self.deadline is not None:
            self.deadline = None
            self.metrics.sessions.labels(platform).inc()
        self.platform = platform
        self.ids.update(logged(ids))
        self.meta.update(ids, **meta)

    @property
    def ready(self) -> bool:
        return self.deadline is None

    def end(self, reason: str) -> None:
        """The bridge is ending the call (`hangup`, `transfer`): what the caller says now goes unanswered."""
        self.ending = reason

    def ended(self) -> None:
        """The platform's end message went out: it has END_GRACE (or the idle timeout) to close the socket."""
        self.end_sent = True
        grace = min(END_GRACE, self.agent.settings.sockets.idle_timeout)
        self.close_by = self.loop.call_later(grace, lambda: asyncio.ensure_future(self.close(WSCloseCode.OK)))

    def count_interrupt(self) -> None:
        self.interrupts += 1
        self.metrics.interrupts.labels(self.platform).inc()

    # -- turns -------------------------------------------------------------------------------------

    async def start_turn(self, messages: list[Message], output: Output, *, replaces: str = "interrupted",
                         ids: dict[str, Any] | None = None, delay: float = 0.0) -> None:
        """Answer `messages` (after `delay` seconds), cancelling the turn in progress as `replaces`.

        Once the bridge is ending the call, nothing more is answered."""
        if self.ending is not None:
            return
        await self.preempt(replaces)
        self.turns += 1
        settings = self.agent.settings.answer
        log = RequestLog(agent=self.agent.name, platform=self.platform,
                         ids={**self.ids, "turn": self.turns, **(ids or {})})
        turn = Turn(self.turns, log, output, Calls(settings.max_tool_calls, settings.max_tool_argument_chars))
        self.turn = turn
        self.task = asyncio.ensure_future(self._run(turn, messages, delay))

    async def preempt(self, outcome: str) -> None:
        """New input while the model answers: the answer is cancelled (as `outcome`) and counted as an
        interrupt. A protocol that adds to the history calls this first, so the cancelled answer's
        words come before the new input."""
        if await self.stop_turn(outcome):
            self.count_interrupt()

    async def stop_turn(self, outcome: str, error: BridgeError | None = None) -> bool:
        """Cancel the turn in progress (recorded as `outcome`); True when there was one."""
        task, turn = self.task, self.turn
        if task is None or task.done() or turn is None:
            return False
        turn.outcome = outcome
        if error is not None:
            SOCKET.record(error, turn.log)
        task.cancel()
        await asyncio.wait((task,))
        await turn.output.cancelled(turn)
        return True

    async def _run(self, turn: Turn, messages: list[Message], delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            await answer(self.agent, chat_for(self.agent, messages, self.route, self.meta), turn)
        except Exception as exc:  # a bug while the answer went out: this turn fails, the session goes on
            SOCKET.failure(exc, turn.log)
            turn.outcome = "failed"
        finally:
            self._finished(turn)

    def _finished(self, turn: Turn) -> None:
        """The turn's words join the history (trimmed to MAX_HISTORY); its line and metrics are written."""
        history, said = self.history, turn.text.strip()
        if history is not None and said:
            history.append({"role": "assistant", "content": said})
        self.trim_history()
        self.metrics.turns.labels(self.platform, turn.outcome).inc()
        self.logger.info("turn", outcome=turn.outcome, latency_ms=turn.elapsed_ms(), **turn.log.fields())

    def trim_history(self) -> None:
        if self.history is not None and len(self.history) > self.agent.settings.answer.max_history:
            self.history[:] = capped_history(self.history, self.agent.settings.answer.max_history, None)

    # -- the drain ---------------------------------------------------------------------------------

    async def shut_down(self) -> None:
        """The drain ran out: cut the turn, say goodbye, send the platform's end message, close with 1001."""
        if self.ws.closed:
            return
        cut = BridgeError(ErrorKind.SHUTDOWN, CUT_MESSAGE)
        SOCKET.record(cut, self.log)  # the access line: cut by the server
        self.log.end_reason = "shutdown"
        await self.stop_turn("failed", cut)
        if not self.end_sent:  # a hang-up still saying its closing words is ended now, without more words
            words = self.agent.settings.answer.hangup_words if self.ending is None else ""
            self.ending = self.ending or "shutdown"
            await self.protocol.goodbye(self, words)
        await self.close(WSCloseCode.GOING_AWAY, b"server shutting down")
