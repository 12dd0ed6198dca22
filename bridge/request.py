"""The canonical request: what every inbound protocol produces and every upstream consumes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

Message = dict[str, Any]


@dataclass(slots=True)
class ChatRequest:
    """One chat turn, independent of the protocol it arrived in.

    `messages` are OpenAI-shaped (role, content, and for tools name / tool_calls / tool_call_id).
    `params` are standard generation parameters passed to the upstream (temperature, tools, ...).
    `meta` is platform metadata (instance id, turn id, ...): logged, never sent upstream.
    `streamed`: the caller takes the answer as it comes (the upstream is always streamed).
    `prepared`: the agent's history policy has been applied (bridge/pipeline: `prepare`).
    """

    messages: list[Message]
    model: str
    route: str
    streamed: bool = True
    include_usage: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    prepared: bool = False

    def last_user_text(self) -> str:
        """The text of the last user message ('' if none): the prompt for simple upstreams."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return content_text(message.get("content"))
        return ""

    def system_text(self) -> str:
        """All system messages joined, for providers that take the system prompt apart."""
        return "\n".join(content_text(m.get("content")) for m in self.messages if m.get("role") == "system")


def content_text(content: Any) -> str:
    """Plain text of a message content: a string, or the text parts of a content-part list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p["text"] for p in content
                       if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str))
    return ""

