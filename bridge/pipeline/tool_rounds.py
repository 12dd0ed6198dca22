"""Tool rounds: when the model calls the bridge's own tools, run them and ask the model again.

With BRIDGE_TOOLS the bridge's tools are offered beside the caller's own on every route.
One round is one upstream answer. Its text streams to the caller as it comes; its calls to
bridge tools are held back (the caller never sees them), run concurrently, each under its
timeout, and added to the history with their results for the next round, at most
`max_rounds` times. The caller's own tool calls (IMS `hangup`, Vapi `endCall`, ...) reach
the caller exactly as without bridge tools; a round that has any ends the answer there
(its bridge calls are not run: the model asks again once the caller answered its own).

A caller's tool with the name of a bridge tool wins: the model is offered the caller's, and
its calls go to the caller. When the model still wants bridge tools after `max_rounds`, the
answer fails as an upstream failure does (`tool_rounds`: the failure phrase where the route
has one, else an error), and the log line's usage is the sum over the rounds.

The first time tools run, the file's `filler` is said (streaming routes only: a `Filler`).
Tool time does not count against the upstream's first-token deadline; the overall deadline
still holds and caps each tool's timeout; a hang-up cancels running tools, and the drain's
cut ends them with a `shutdown` failure like any other cut answer.

Bounds: at most MAX_TOOL_CALLS bridge calls run in one round (the rest are answered with an
error the model reads, not run), and a call's arguments are kept up to
MAX_TOOL_ARGUMENT_CHARS (a longer one is answered with an error, never accumulated). The
rounds' texts, and the tools' filler between them, are joined as speech (stages.separator).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from contextlib import aclosing
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Batch, Filler, Finish, Note, TextDelta, ToolCallDelta, Usage
from bridge.log import RequestLog
from bridge.metrics import Metrics
from bridge.pipeline.stages import glue
from bridge.request import ChatRequest
from bridge.tools import ToolBox, ToolResult
from bridge.tools.results import BAD_ARGUMENTS

ModelCall = Callable[[ChatRequest, RequestLog], AsyncGenerator[Batch, None]]  # one round's upstream answer
SHUTDOWN_MESSAGE = "the server shut down while tools were running"
MAX_DROPPED = 4096  # indexes of dropped calls remembered (their fragments are held back too)


@dataclass(frozen=True, slots=True)
class Limits:
    """How much of the model's tool calls one round keeps (MAX_TOOL_CALLS, MAX_TOOL_ARGUMENT_CHARS)."""

    calls: int
    argument_chars: int


@dataclass(slots=True)
class _BridgeCall:
    """A call to a bridge tool as the model streams it: its arguments kept as pieces."""

    id: str
    name: str = ""
    pieces: list[str] = field(default_factory=list)
    size: int = 0

    @property
    def arguments(self) -> str:
        return "".join(self.pieces)


@dataclass(slots=True)
class Round:
    """What one upstream answer asked for."""

    caller_tools: frozenset[str]  # the names of the caller's own tools: theirs, whatever the bridge has
    limits: Limits
    text: list[str] = field(default_factory=list)
    bridge_calls: dict[int, _BridgeCall] = field(default_factory=dict)  # by the model's index
    caller_calls: set[int] = field(default_factory=set)
    oversized: set[int] = field(default_factory=set)  # calls whose arguments passed the cap
    dropped: set[int] = field(default_factory=set)  # bridge calls past MAX_TOOL_CALLS: their indexes, not kept
    finish: Finish | None = None

    @property
    def over(self) -> bool:
        """The answer ends with this round: no bridge call to run, or a call for the caller."""
        return not self.bridge_calls or bool(self.caller_calls)

    def route(self, delta: ToolCallDelta, box: ToolBox) -> bool:
        """Record a fragment; True when it belongs to a bridge tool (held back from the caller)."""
        call = self.bridge_calls.get(delta.index)
        if call is None:
            if delta.index in self.dropped:
                return True
            if not self._bridges(delta, box):
                self.caller_calls.add(delta.index)
                return False
            if len(self.bridge_calls) >= self.limits.calls:
                if len(self.dropped) < MAX_DROPPED:
                    self.dropped.add(delta.index)
                return True
            call = self.bridge_calls[delta.index] = _BridgeCall(delta.id or f"call_bridge_{delta.index}")
        self._append(call, delta)
        return True

    def _bridges(self, delta: ToolCallDelta, box: ToolBox) -> bool:
        """Whether a new call is for a bridge tool (the caller's tools win a name clash)."""
        name = delta.name or ""
        return delta.index not in self.caller_calls and name not in self.caller_tools and box.owns(name)

    def _append(self, call: _BridgeCall, delta: ToolCallDelta) -> None:
        call.name += delta.name or ""
        if delta.index in self.oversized:
            return
        call.size += len(delta.arguments)
        if call.size > self.limits.argument_chars:
            self.oversized.add(delta.index)
            call.pieces.clear()
        else:
            call.pieces.append(delta.arguments)


class ToolRounds:
    """Runs one request's rounds against the model, through `model` (the upstream chain's answer)."""

    def __init__(self, box: ToolBox, metrics: Metrics, limits: Limits, cut: asyncio.Event) -> None:
        self.box = box
        self.metrics = metrics
        self.limits = limits
        self.cut = cut  # set when the drain runs out: running tools end with a `shutdown` failure

    async def run(self, request: ChatRequest, log: RequestLog, model: ModelCall, *, filler: bool,
                  deadline: float) -> AsyncGenerator[Batch, None]:
        """The rounds' batches; `filler`: the route may hear the tools' filler; `deadline`: loop time."""
        caller_tools = self._offer(request)
        usage = Usage(0, 0)
        spoken = _Spoken()
        for number in range(self.box.max_rounds + 1):
            current = Round(caller_tools, self.limits)
            async with aclosing(self._round(model(request, log), current, usage, spoken, log)) as batches:
                async for batch in batches:
                    yield batch
            if current.over:
                yield [current.finish or Finish("stop"), usage]
                return
            if number == self.box.max_rounds:
                break
            if filler and self.box.filler and not spoken.filler_said:
                yield spoken.filler(self.box.filler)
            results = await self._run_tools(current, log, number + 1, deadline)
            yield [Note("tool", {"name": r.name, "ms": round(r.duration_ms, 1), "outcome": r.outcome,
                                 "round": number + 1}) for r in results]
            request = self._next(request, current, results)
        raise UpstreamError(ErrorKind.TOOL_ROUNDS, f"the model still wanted tools after {self.box.max_rounds} rounds")

    async def _round(self, answer: AsyncGenerator[Batch, None], current: Round, usage: Usage, spoken: _Spoken,
                     log: RequestLog) -> AsyncGenerator[Batch, None]:
        """One upstream answer: what the caller gets of it, joined to what was said before."""
        spoken.new_piece()
        async with aclosing(answer) as batches:
            async for batch in batches:
                out = self._sift(batch, current, usage)
                if out:
                    yield spoken.joined(out)
        log.usage, log.usage_estimated = usage.as_dict(), usage.estimated or None  # every round so far

    def _offer(self, request: ChatRequest) -> frozenset[str]:
        """Add the bridge's tools beside the caller's; the caller's tool names (theirs on a clash)."""
        own = request.params.get("tools") or []
        taken = frozenset(name for t in own if isinstance(t, dict) and isinstance(t.get("function"), dict)
                          and isinstance(name := t["function"].get("name"), str))
        extra = [d for d in self.box.definitions() if d["function"]["name"] not in taken]
        if extra:
            request.params["tools"] = [*own, *extra]
        return taken

    def _sift(self, batch: Batch, current: Round, usage: Usage) -> Batch:
        """The events the caller gets: bridge tool calls held, finish and usage kept for the end."""
        out: Batch = []
        for event in batch:
            if type(event) is ToolCallDelta:
                if not current.route(event, self.box):
                    out.append(event)
            elif type(event) is TextDelta:
                current.text.append(event.text)
                out.append(event)
            elif type(event) is Finish:
                current.finish = event
            elif type(event) is Usage:
                usage.add(event)
            else:
                out.append(event)
        return out

    async def _run_tools(self, current: Round, log: RequestLog, number: int, deadline: float) -> list[ToolResult]:
        """Every bridge call of the round, concurrently; a server cut ends them (`shutdown`)."""
        left = deadline - asyncio.get_running_loop().time()
        tools = asyncio.ensure_future(asyncio.gather(*(self._call(i, c, current, left)
                                                       for i, c in current.bridge_calls.items())))
        stop = asyncio.ensure_future(self.cut.wait())
        try:
            done, _ = await asyncio.wait((tools, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not tools.done():  # the cut, or the caller hung up: the tools stop with the answer
                tools.cancel()
                await asyncio.wait((tools,))
        if tools not in done:
            raise UpstreamError(ErrorKind.SHUTDOWN, SHUTDOWN_MESSAGE)
        results: list[ToolResult] = tools.result()
        self._note(results, log, number, len(current.dropped))
        return results

    async def _call(self, index: int, call: _BridgeCall, current: Round, timeout: float) -> ToolResult:
        if index in current.oversized:
            return ToolResult(call.name, f"error: the arguments for {call.name[:64]} are longer than "
                              f"{self.limits.argument_chars} characters; the tool was not run", BAD_ARGUMENTS, 0.0)
        return await self.box.call(call.name, call.arguments, timeout=timeout)

    def _note(self, results: list[ToolResult], log: RequestLog, number: int, dropped: int) -> None:
        """The round's tools in the metrics and on the log line."""
        for result in results:
            label = self.box.label(result.name)
            self.metrics.tool_duration.labels(label).observe(result.duration_ms / 1000)
            if result.outcome != "ok":
                self.metrics.tool_errors.labels(label, result.outcome).inc()
        log.tools = [*(log.tools or []), *({"name": r.name[:64], "ms": round(r.duration_ms, 1), "outcome": r.outcome,
                                              "round": number} for r in results)]
        if dropped:
            log.tools_dropped = (log.tools_dropped or 0) + dropped

    @staticmethod
    def _next(request: ChatRequest, current: Round, results: list[ToolResult]) -> ChatRequest:
        """The request for the next round: the history with the round's calls and their results."""
        calls = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                 for c in current.bridge_calls.values()]
        turn: dict[str, Any] = {"role": "assistant", "content": "".join(current.text) or None, "tool_calls": calls}
        answers = [{"role": "tool", "tool_call_id": call["id"], "content": result.content}
                   for call, result in zip(calls, results, strict=True)]
        return replace(request, messages=[*request.messages, turn, *answers])


class _Spoken:
    """What the rounds said so far, so the next piece (a round's text, the tools' filler) is
    joined to it as speech: "Let me check." + "It's 42." -> "Let me check. It's 42."."""

    __slots__ = ("filler_said", "last", "starting")

    def __init__(self) -> None:
        self.last = ""  # the last text said
        self.starting = False  # the next text begins a new piece
        self.filler_said = False

    def new_piece(self) -> None:
        self.starting = bool(self.last)

    def joined(self, batch: Batch) -> Batch:
        if self.starting and any(type(e) is TextDelta for e in batch):
            glue(self.last, batch)
            self.starting = False
        for event in reversed(batch):
            if type(event) is TextDelta and event.text:
                self.last = event.text
                break
        return batch

    def filler(self, text: str) -> Batch:
        self.filler_said = True
        batch = glue(self.last, [Filler(text)])
        self.last, self.starting = text, True
        return batch
