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
still holds and caps each tool's timeout; a hang-up cancels running tools.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from typing import Any

from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Batch, Filler, Finish, TextDelta, ToolCallDelta, Usage
from bridge.log import RequestLog
from bridge.metrics import Metrics
from bridge.request import ChatRequest
from bridge.tools import ToolBox, ToolResult

Answer = Callable[[ChatRequest, RequestLog], AsyncGenerator[Batch, None]]


@dataclass(slots=True)
class Round:
    """What one upstream answer asked for."""

    caller_tools: frozenset[str]  # the names of the caller's own tools: theirs, whatever the bridge has
    text: list[str] = field(default_factory=list)
    bridge_calls: dict[int, dict[str, str]] = field(default_factory=dict)  # index -> id, name, arguments
    caller_calls: set[int] = field(default_factory=set)
    finish: Finish | None = None

    def route(self, delta: ToolCallDelta, box: ToolBox) -> bool:
        """Record a fragment; True when it belongs to a bridge tool (held back from the caller)."""
        name = delta.name or ""
        if delta.index in self.bridge_calls:
            call = self.bridge_calls[delta.index]
        elif delta.index in self.caller_calls or name in self.caller_tools or not box.owns(name):
            self.caller_calls.add(delta.index)
            return False
        else:
            call = self.bridge_calls[delta.index] = {"id": "", "name": "", "arguments": ""}
        call["id"] = call["id"] or delta.id or f"call_bridge_{delta.index}"
        call["name"] += delta.name or ""
        call["arguments"] += delta.arguments
        return True


class ToolRounds:
    """Runs one request's rounds against the model, through `answer` (the core's upstream call)."""

    def __init__(self, box: ToolBox, metrics: Metrics) -> None:
        self.box = box
        self.metrics = metrics

    async def run(self, request: ChatRequest, log: RequestLog, answer: Answer,
                  cut: asyncio.Event, deadline: float) -> AsyncGenerator[Batch, None]:
        caller_tools = self._offer(request)
        usage = Usage(0, 0)
        filler_said = False
        for number in range(self.box.max_rounds + 1):
            current = Round(caller_tools)
            async for batch in answer(request, log):
                out = self._sift(batch, current, usage)
                if out:
                    yield out
            log.usage, log.usage_estimated = usage.as_dict(), usage.estimated or None  # every round so far
            if not current.bridge_calls or current.caller_calls:
                yield [current.finish or Finish("stop"), usage]
                return
            if number == self.box.max_rounds:
                break
            if not filler_said and self.box.filler and request.stream:
                filler_said = True
                yield [Filler(self.box.filler)]
            results = await self._run_tools(current, log, number + 1, cut, deadline)
            request = self._next(request, current, results)
        raise UpstreamError(ErrorKind.TOOL_ROUNDS, f"the model still wanted tools after {self.box.max_rounds} rounds")

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
                usage.prompt_tokens += event.prompt_tokens
                usage.completion_tokens += event.completion_tokens
                usage.estimated = usage.estimated or event.estimated
            else:
                out.append(event)
        return out

    async def _run_tools(self, current: Round, log: RequestLog, number: int, cut: asyncio.Event,
                         deadline: float) -> list[ToolResult]:
        """Every bridge call of the round, concurrently; a server cut ends them (`shutdown`)."""
        loop = asyncio.get_running_loop()
        left = deadline - loop.time()
        calls = [self.box.call(c["name"], c["arguments"], timeout=left) for c in current.bridge_calls.values()]
        tools = asyncio.ensure_future(asyncio.gather(*calls))
        stop = asyncio.ensure_future(cut.wait())
        try:
            await asyncio.wait((tools, stop), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            if not tools.done():
                tools.cancel()
                await asyncio.wait((tools,))
        if tools.cancelled():
            raise UpstreamError(ErrorKind.SHUTDOWN, "the server shut down while tools were running")
        results: list[ToolResult] = tools.result()
        for result in results:
            self.metrics.tool_duration.labels(result.name).observe(result.duration_ms / 1000)
            if result.outcome != "ok":
                self.metrics.tool_errors.labels(result.name, result.outcome).inc()
        log.tools = [*(log.tools or []), *({"name": r.name, "ms": round(r.duration_ms, 1), "outcome": r.outcome,
                                              "round": number} for r in results)]
        return results

    @staticmethod
    def _next(request: ChatRequest, current: Round, results: list[ToolResult]) -> ChatRequest:
        """The request for the next round: the history with the round's calls and their results."""
        calls = [{"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                 for c in current.bridge_calls.values()]
        turn: dict[str, Any] = {"role": "assistant", "content": "".join(current.text) or None, "tool_calls": calls}
        answers = [{"role": "tool", "tool_call_id": call["id"], "content": result.content}
                   for call, result in zip(calls, results, strict=True)]
        return ChatRequest([*request.messages, turn, *answers], model=request.model, route=request.route,
                           stream=request.stream, include_usage=request.include_usage, params=request.params,
                           meta=request.meta)
