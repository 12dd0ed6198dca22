"""Tool calls in provider answers, as canonical `ToolCallDelta`s.

Two ways a spec reads them (bridge/upstreams/spec/extract.py):

- `tool_calls`: OpenAI-shaped calls, a list or one object (DashScope, Ollama, MiniMax), whole
  or in fragments keyed by `index`; `arguments` as text or as an object;
- `tool_call.index`, `tool_call.id`, `tool_call.name`, `tool_call.arguments`: one fragment's
  parts read from separate places (Anthropic's `content_block_start` and `input_json_delta`).

Provider indexes are renumbered 0, 1, 2 in the order calls first appear, so a caller sees
OpenAI's numbering whatever the provider counted (Anthropic counts text blocks too).
"""

from __future__ import annotations

from typing import Any

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import ToolCallDelta

FRAGMENT = ("tool_call.index", "tool_call.id", "tool_call.name", "tool_call.arguments")


class ToolCallReader:
    """The tool calls of one answer."""

    __slots__ = ("_ordinals",)

    def __init__(self) -> None:
        self._ordinals: dict[Any, int] = {}

    @property
    def seen(self) -> bool:
        return bool(self._ordinals)

    def _ordinal(self, key: Any) -> int:
        if key not in self._ordinals:
            self._ordinals[key] = len(self._ordinals)
        return self._ordinals[key]

    def calls(self, calls: Any) -> list[ToolCallDelta]:
        """Deltas of a `tool_calls` output."""
        items = calls if isinstance(calls, list) else [calls]
        out = []
        for position, call in enumerate(items):
            if not isinstance(call, dict):
                raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream tool call is not an object")
            function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
            index = call.get("index")
            key = index if isinstance(index, int) and not isinstance(index, bool) else f"#{position}"
            out.append(self._delta(key, call.get("id"), function.get("name"), function.get("arguments")))
        return out

    def fragment(self, values: dict[str, Any]) -> list[ToolCallDelta]:
        """The delta of `tool_call.*` outputs, when the payload has any."""
        if not any(name in values for name in FRAGMENT):
            return []
        index = values.get("tool_call.index", 0)
        return [self._delta(index, values.get("tool_call.id"), values.get("tool_call.name"),
                            values.get("tool_call.arguments"))]

    def _delta(self, key: Any, call_id: Any, name: Any, arguments: Any) -> ToolCallDelta:
        if arguments is not None and not isinstance(arguments, str):
            arguments = jsonutil.dumps_str(arguments)  # Ollama sends an object
        if not all(v is None or isinstance(v, str) for v in (call_id, name)):
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream tool call id or name is not text")
        return ToolCallDelta(index=self._ordinal(key), id=call_id or None, name=name or None,
                             arguments=arguments or "")
