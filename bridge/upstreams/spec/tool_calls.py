"""Tool calls in provider answers, as canonical `ToolCallDelta`s.

Two ways a spec reads them (bridge/upstreams/spec/extract.py):

- `tool_calls`: OpenAI-shaped calls, a list or one object (DashScope, Ollama, MiniMax, Gemini's
  `functionCall` parts), whole or in fragments; `arguments` (Gemini: `args`) as text or as an object;
- `tool_call.index`, `tool_call.id`, `tool_call.name`, `tool_call.arguments`: one fragment's
  parts read from separate places (Anthropic's `content_block_start` and `input_json_delta`).

How the fragments of one call are told apart is the call's `tool_call_key`: `index` (the
provider's index, else the call's position in the payload), `name` (the function's name; a
fragment without one continues the call before it), or `whole` (every call read is complete and
new: Gemini, Ollama and Coze send whole calls, and two calls to the same function stay two).

Calls are numbered 0, 1, 2 in the order they first appear, so a caller sees OpenAI's
numbering whatever the provider counted (Anthropic counts text blocks too). A call the
provider gave no id gets `call_<request id>_<n>` on its first fragment: the same id whether
the caller streams or not, and never the same in two requests.
"""

from __future__ import annotations

from typing import Any

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import ToolCallDelta


def _text(arguments: Any) -> str:
    """Arguments as JSON text (Ollama and Gemini send an object)."""
    if arguments is None or isinstance(arguments, str):
        return arguments or ""
    return jsonutil.dumps_str(arguments)


FRAGMENT = ("tool_call.index", "tool_call.id", "tool_call.name", "tool_call.arguments")
KEYS = ("index", "name", "whole")


class ToolCallReader:
    """The tool calls of one answer."""

    __slots__ = ("_last", "_ordinals", "id_prefix", "key")

    def __init__(self, key: str = "index", id_prefix: str = "") -> None:
        self.key = key
        self.id_prefix = id_prefix
        self._ordinals: dict[Any, int] = {}
        self._last: Any = None

    @property
    def seen(self) -> bool:
        return bool(self._ordinals)

    def calls(self, calls: Any) -> list[ToolCallDelta]:
        """Deltas of a `tool_calls` output."""
        items = calls if isinstance(calls, list) else [calls]
        out = []
        for position, call in enumerate(items):
            if not isinstance(call, dict):
                raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream tool call is not an object")
            function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else call
            arguments = function.get("arguments", function.get("args"))
            out.append(self._delta(call.get("index"), position, call.get("id"), function.get("name"), arguments))
        return out

    def fragment(self, values: dict[str, Any]) -> list[ToolCallDelta]:
        """The delta of `tool_call.*` outputs, when the payload has any."""
        if not any(name in values for name in FRAGMENT):
            return []
        return [self._delta(values.get("tool_call.index"), 0, values.get("tool_call.id"),
                            values.get("tool_call.name"), values.get("tool_call.arguments"))]

    def _key(self, index: Any, position: int, name: Any) -> Any:
        if self.key == "whole":
            return ("whole", len(self._ordinals))
        if self.key == "name":
            return name if name else self._last if self._last is not None else "#0"
        return index if isinstance(index, int) and not isinstance(index, bool) else f"#{position}"

    def _delta(self, index: Any, position: int, call_id: Any, name: Any, arguments: Any) -> ToolCallDelta:
        if not all(v is None or isinstance(v, str) for v in (call_id, name)):
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream tool call id or name is not text")
        key = self._last = self._key(index, position, name)
        ordinal = self._ordinals.get(key)
        if ordinal is None:
            ordinal = self._ordinals[key] = len(self._ordinals)
            call_id = call_id or f"call_{self.id_prefix}{ordinal}"
        return ToolCallDelta(index=ordinal, id=call_id or None, name=name or None, arguments=_text(arguments))
