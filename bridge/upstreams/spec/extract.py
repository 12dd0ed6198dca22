"""Reads provider payloads through a spec's `resp` mapping and turns them into canonical events.

One `AnswerReader` lives for one answer: it applies `chunk_filter`, reads the outputs
(content, tool_calls, usage.*, finish_reason, error, ...), diffs cumulative text into
increments, remembers the finish reason and the latest usage counts, and raises
`UpstreamError("upstream_error")` when a payload carries an error.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Event, Finish, Reasoning, TextDelta, Usage
from bridge.upstreams.spec.conditions import all_match
from bridge.upstreams.spec.converters import ConvertError, apply_safely
from bridge.upstreams.spec.model import FilterRule, RespField
from bridge.upstreams.spec.paths import get_path
from bridge.upstreams.spec.templates import Context, to_text
from bridge.upstreams.spec.tool_calls import ToolCallReader

_USAGE = ("usage.prompt_tokens", "usage.completion_tokens", "usage.total_tokens")


def read_outputs(resp: list[RespField], payload: Any, event: str | None, ctx: Context,
                 skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every output the payload has (missing paths are simply absent); first non-null wins."""
    values: dict[str, Any] = {}
    for field in resp:
        name = field.name
        if name in values or name in skip:
            continue
        if field.when and not all_match(field.when, payload, event):
            continue
        value = get_path(payload, field.path)
        if value is not None and field.converter is not None:
            try:
                value = apply_safely(field.converter, value, ctx)
            except ConvertError as exc:
                raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream payload: {field.where}: {exc}") from None
        if value is not None:
            values[name] = value
    return values


def raise_for_error(values: dict[str, Any], during: str = "") -> None:
    """An `error` or `error_code` output means the provider reported a failure.

    With an `error_status` output (the HTTP status the provider gives that error, such as
    529 for Anthropic's `overloaded_error` event) it is classified as that status would be,
    so an overload is retried and a refused key is `upstream_auth`. The provider's whole
    message goes in: the driver masks secrets in it, then caps it.
    """
    if "error" not in values and "error_code" not in values:
        return
    status = _count(values.get("error_status"))
    if status is not None and 400 <= status < 600:
        raise UpstreamError.from_status(status, describe_error(values))
    raise UpstreamError(ErrorKind.UPSTREAM_ERROR, f"upstream reported an error{during}: {describe_error(values)}")


def describe_error(values: dict[str, Any]) -> str:
    """`<error_code>: <error>` from a payload's outputs; an error object gives its `message` or `msg`."""
    parts = [to_text(values["error_code"])] if values.get("error_code") not in (None, "") else []
    error = values.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("msg") or jsonutil.dumps_str(error)
    if error not in (None, ""):
        parts.append(to_text(error))
    return ": ".join(parts)


def body_error(payload: dict[str, Any]) -> dict[str, Any]:
    """The error outputs of a body no `resp` output describes: its `error`, `message` or `msg`."""
    return {"error": payload.get("error") or payload.get("message") or payload.get("msg")}


class AnswerReader:
    """Turns one answer's payloads into events."""

    def __init__(self, resp: list[RespField], ctx: Context, *, filters: list[FilterRule] | None = None,
                 cumulative: bool = False, prompt_estimate: Callable[[], int] | None = None) -> None:
        self.resp = resp
        self.ctx = ctx
        self.filters = filters or []
        self.cumulative = cumulative
        self.prompt_estimate = prompt_estimate
        self.text = ""  # the answer so far, in cumulative mode
        self.started = False
        self.payloads = 0
        self.finish: str | None = None
        self.counts: dict[str, int] = {}
        self.tools = ToolCallReader()

    def feed(self, payload: Any, event: str | None = None) -> list[Event]:
        """Events for one payload ([] when it is filtered out or carries nothing)."""
        self.payloads += 1
        skip: set[str] = set()
        for rule in self.filters:
            if all_match(rule.conditions, payload, event):
                if rule.fields is None:
                    return []
                skip |= rule.fields
        values = read_outputs(self.resp, payload, event, self.ctx, frozenset(skip))
        raise_for_error(values, " mid-stream" if self.started else "")
        return self.events(values)

    def events(self, values: dict[str, Any]) -> list[Event]:
        out: list[Event] = []
        content = values.get("content")
        if content is not None:
            text = content_string(content)
            if self.cumulative:
                text = self._increment(text)
            if text:
                self.started = True
                out.append(TextDelta(text))
        reasoning = values.get("reasoning")
        if isinstance(reasoning, str) and reasoning:
            out.append(Reasoning(reasoning))
        calls = values.get("tool_calls")
        if calls is not None:
            out.extend(self.tools.calls(calls))
        out.extend(self.tools.fragment(values))
        for name in _USAGE:
            if name in values:
                count = _count(values[name])
                if count is not None:
                    self.counts[name] = count
        reason = values.get("finish_reason")
        if reason is not None and reason != "":
            self.finish = to_text(reason)
        return out

    def tail(self) -> list[Event]:
        """Finish (when the provider gave a reason) and Usage (when it gave counts), at the end.

        An answer that called tools finished with `tool_calls`, as OpenAI reports it, whatever
        the provider said (Ollama and DashScope say `stop`).
        """
        finish = "tool_calls" if self.tools.seen and self.finish in (None, "stop") else self.finish
        out: list[Event] = [Finish(finish)] if finish else []
        usage = self.usage()
        if usage is not None:
            out.append(usage)
        return out

    def usage(self) -> Usage | None:
        prompt = self.counts.get("usage.prompt_tokens")
        completion = self.counts.get("usage.completion_tokens")
        total = self.counts.get("usage.total_tokens")
        if prompt is None and completion is None and total is None:
            return None
        if total is not None:
            if prompt is None and completion is not None:
                prompt = max(total - completion, 0)
            elif completion is None and prompt is not None:
                completion = max(total - prompt, 0)
            elif prompt is None and completion is None:
                # Only a total (MiniMax): split it with our prompt estimate.
                prompt = min(self.prompt_estimate() if self.prompt_estimate else 0, total)
                return Usage(prompt, total - prompt, estimated=True)
        return Usage(prompt or 0, completion or 0)

    def _increment(self, full: str) -> str:
        previous = self.text
        self.text = full
        if full.startswith(previous):
            return full[len(previous):]
        common = 0
        for a, b in zip(previous, full, strict=False):  # the provider revised earlier text: send what is new
            if a != b:
                break
            common += 1
        return full[common:]


def content_string(content: Any) -> str:
    """Text of a content output: a string, or the text of a list of strings / `{text}` or `{body}` parts.

    Anything else (an object, a list of numbers) is not text to speak: a protocol error.
    """
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [p if isinstance(p, str) else p.get("text", p.get("body")) if isinstance(p, dict) else None
                 for p in content]
        if all(isinstance(p, str) or p is None for p in parts):
            return "".join(p for p in parts if p)
    elif isinstance(content, (int, float)) and not isinstance(content, bool):
        return to_text(content)
    raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream content is not text ({type(content).__name__})")


def _count(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None
