"""Reads provider payloads through a spec's `resp` mapping and turns them into canonical events.

One `AnswerReader` lives for one answer: it applies `chunk_filter`, reads the outputs
(content, tool_calls, usage.*, finish_reason, error, ...), diffs cumulative text into
increments, puts the finish reason in OpenAI's words, remembers it and the latest usage
counts, and raises `UpstreamError("upstream_error")` when a payload carries an error or an
`error` finish reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Event, Finish, Reasoning, TextDelta, Usage
from bridge.upstreams.spec.conditions import all_match
from bridge.upstreams.spec.converters import ConvertError, apply_safely
from bridge.upstreams.spec.finish import BUILT_IN, failed, openai_reason
from bridge.upstreams.spec.model import FilterRule, RespField
from bridge.upstreams.spec.paths import get_path
from bridge.upstreams.spec.templates import Context, to_text
from bridge.upstreams.spec.tool_calls import ToolCallReader

COUNTS = ("usage.prompt_tokens", "usage.completion_tokens", "usage.total_tokens")
# usage extras -> where OpenAI's usage object carries them
DETAILS = {"usage.cached_tokens": ("prompt_tokens_details", "cached_tokens"),
           "usage.reasoning_tokens": ("completion_tokens_details", "reasoning_tokens")}
LISTED = frozenset({"content", "reasoning", "tool_calls"})  # an `each` output keeps every value found


def read_outputs(resp: list[RespField], payload: Any, event: str | None, ctx: Context,
                 skip: frozenset[str] = frozenset()) -> dict[str, Any]:
    """Every output the payload has (missing paths are simply absent); first non-null wins."""
    values: dict[str, Any] = {}
    for resp_field in resp:
        name = resp_field.name
        if name in values or name in skip:
            continue
        value = _each(resp_field, payload, event, ctx) if resp_field.each is not None \
            else _read(resp_field, payload, event, ctx)
        if value is not None:
            values[name] = value
    return values


def _read(resp_field: RespField, subject: Any, event: str | None, ctx: Context) -> Any:
    if resp_field.when and not all_match(resp_field.when, subject, event):
        return None
    value = get_path(subject, resp_field.path)
    if value is None or resp_field.converter is None:
        return value
    try:
        return apply_safely(resp_field.converter, value, ctx)
    except ConvertError as exc:
        raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream payload: {resp_field.where}: {exc}") from None


def _each(resp_field: RespField, payload: Any, event: str | None, ctx: Context) -> Any:
    """An output read from every element at `each` (`when` and `value` relative to the element).

    Text, reasoning and tool calls keep every value found, in order; other outputs the first.
    """
    assert resp_field.each is not None
    items = get_path(payload, resp_field.each)
    if not isinstance(items, list):
        return None
    found: list[Any] = []
    for item in items:
        value = _read(resp_field, item, event, ctx)
        if value is None:
            continue
        if resp_field.name not in LISTED:
            return value
        found.extend(value) if isinstance(value, list) else found.append(value)
    return found or None


def raise_for_error(values: dict[str, Any], during: str = "") -> None:
    """An `error` or `error_code` output means the provider reported a failure.

    With an `error_status` output (the HTTP status the provider gives that error, such as
    529 for Anthropic's `overloaded_error` event) it is classified as that status would be,
    so an overload is retried and a refused key is `upstream_auth`. The provider's whole
    message goes in: the driver masks secrets in it, then caps it.
    """
    if "error" not in values and "error_code" not in values:
        return
    status = error_status(values)
    if status is not None:
        raise UpstreamError.from_status(status, describe_error(values))
    raise UpstreamError(ErrorKind.UPSTREAM_ERROR, f"upstream reported an error{during}: {describe_error(values)}")


def error_status(values: dict[str, Any]) -> int | None:
    """The HTTP status an `error_status` output names, when it is an error status."""
    status = _count(values.get("error_status"))
    return status if status is not None and 400 <= status < 600 else None


def describe_error(values: dict[str, Any]) -> str:
    """`<error_code>: <error>` from a payload's outputs; an error object gives its `message` or `msg`."""
    parts = [to_text(values["error_code"])] if values.get("error_code") not in (None, "") else []
    error = values.get("error")
    if isinstance(error, dict):
        error = error.get("message") or error.get("msg") or jsonutil.text(error)
    if error not in (None, ""):
        parts.append(to_text(error))
    return ": ".join(parts)


def body_error(payload: dict[str, Any]) -> dict[str, Any]:
    """The error outputs of a body no `resp` output describes: its `error`, `message` or `msg`."""
    return {"error": payload.get("error") or payload.get("message") or payload.get("msg")}


@dataclass(slots=True)
class Counts:
    """The latest usage counts an answer reported, and the extras OpenAI's usage object carries."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, values: dict[str, Any]) -> None:
        for name in (*COUNTS, *DETAILS):
            count = _count(values.get(name))
            if count is not None:
                self.counts[name] = count

    def usage(self, prompt_estimate: Callable[[], int] | None) -> Usage | None:
        """The counts as OpenAI's usage; a missing count is what the total leaves of the other one.

        A total alone (MiniMax) is split with our prompt estimate, and marked estimated.
        """
        prompt = self.counts.get("usage.prompt_tokens")
        completion = self.counts.get("usage.completion_tokens")
        total = self.counts.get("usage.total_tokens")
        if prompt is None and completion is None:
            if total is None:
                return None
            prompt = min(prompt_estimate() if prompt_estimate else 0, total)
            return Usage(prompt, total - prompt, estimated=True, details=self._details())
        if prompt is None:
            prompt = _rest(total, completion)
        if completion is None:
            completion = _rest(total, prompt)
        return Usage(prompt, completion, details=self._details())

    def _details(self) -> dict[str, Any]:
        details: dict[str, Any] = {}
        for name, (group, key) in DETAILS.items():
            if name in self.counts:
                details.setdefault(group, {})[key] = self.counts[name]
        return details


class AnswerReader:
    """Turns one answer's payloads into events."""

    def __init__(self, resp: list[RespField], ctx: Context, *, filters: list[FilterRule] | None = None,
                 cumulative: bool = False, prompt_estimate: Callable[[], int] | None = None,
                 finish_reasons: dict[str, str] | None = None, tool_call_key: str = "index") -> None:
        self.resp = resp
        self.ctx = ctx
        self.filters = filters or []
        self.cumulative = cumulative
        self.prompt_estimate = prompt_estimate
        self.finish_reasons = finish_reasons or BUILT_IN
        self.text = ""  # the answer so far, in cumulative mode
        self.started = False
        self.payloads = 0
        self.finish: str | None = None
        self.counts = Counts()
        self.tools = ToolCallReader(tool_call_key, ctx.request_uuid()[:12] + "_")

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
        if values.get("content") is not None:
            self._text(values["content"], out)
        reasoning = values.get("reasoning")
        if reasoning is not None:
            text = content_string(reasoning)
            if text:
                out.append(Reasoning(text))
        if values.get("tool_calls") is not None:
            out.extend(self.tools.calls(values["tool_calls"]))
        out.extend(self.tools.fragment(values))
        self.counts.add(values)
        reason = values.get("finish_reason")
        if reason is not None and reason != "":
            self._finish(reason)
        return out

    def _text(self, content: Any, out: list[Event]) -> None:
        text = content_string(content)
        if self.cumulative:
            text = self._increment(text)
        if text:
            self.started = True
            out.append(TextDelta(text))

    def _finish(self, raw: Any) -> None:
        reason = openai_reason(raw, self.finish_reasons)
        if reason == "error":
            raise failed(raw)
        self.finish = reason

    def tail(self) -> list[Event]:
        """Finish (when the provider gave a reason) and Usage (when it gave counts), at the end.

        An answer that called tools finished with `tool_calls`, as OpenAI reports it, whatever
        the provider said (Ollama and DashScope say `stop`).
        """
        if self.finish == "tool_calls" and not self.tools.seen:
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream said it called a tool, but the spec read no "
                                "tool call (add a tool_calls output)")
        finish = "tool_calls" if self.tools.seen and self.finish in (None, "stop") else self.finish
        out: list[Event] = [Finish(finish)] if finish else []
        usage = self.counts.usage(self.prompt_estimate)
        if usage is not None:
            out.append(usage)
        return out

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
    if isinstance(content, (int, float)) and not isinstance(content, bool):
        return to_text(content)
    parts = [_part_text(p) for p in content] if isinstance(content, list) else [content]
    if all(isinstance(p, str) or p is None for p in parts):
        return "".join(p for p in parts if p)
    raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream content is not text ({type(content).__name__})")


def _part_text(part: Any) -> Any:
    if isinstance(part, dict):
        return part.get("text", part.get("body"))
    return part


def _rest(total: int | None, other: int | None) -> int:
    """What a total leaves of one count (0 without a total)."""
    return max(total - (other or 0), 0) if total is not None else 0


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
