"""A spec compiled for speed: templates, paths, conditions and converters built once.

`compile_spec` takes a document that already passed the JSON Schema and applies the checks a
schema cannot express (unknown converters, signers and variables, bad paths and regexes,
fields in the wrong kind of call). Every problem is a SpecError with the field's JSON path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from bridge.upstreams.spec.conditions import Condition, compile_conditions
from bridge.upstreams.spec.converters import Converter, compile_converter
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.paths import Path, PathError, compile_path, show_path
from bridge.upstreams.spec.signers import Signer, compile_signer
from bridge.upstreams.spec.templates import Template, compile_template, variable_problem

Where = list[str | int]
STREAM_ONLY = ("framing", "done", "done_event", "chunk_match", "chunk_filter", "delta_mode")
ASYNC_ONLY = ("query_path", "query_method", "query_params", "query_data", "query_headers", "query_resp",
              "poll_interval", "poll_timeout", "status_map")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One header, query parameter or body field."""

    name: str
    template: Template
    converter: Converter | None
    optional: bool
    where: str
    unless: str | None = None  # a variable: when it has a value, the field is left out

    @property
    def templates(self) -> list[Template]:
        return [self.template, *(self.converter.templates if self.converter else ())]


@dataclass(frozen=True, slots=True)
class RespField:
    """One output read from a payload: a path, an optional converter and `when` conditions."""

    name: str
    path: Path
    converter: Converter | None
    when: list[Condition]
    where: str


@dataclass(frozen=True, slots=True)
class FilterRule:
    """Drop a chunk (or only some of its outputs) when all conditions hold."""

    conditions: list[Condition]
    fields: frozenset[str] | None


@dataclass(frozen=True, slots=True)
class HttpSpec:
    """The shape of one HTTP request: the call itself, or an async call's status query."""

    method: str
    path: Template
    body: str
    headers: list[FieldSpec]
    params: list[FieldSpec]
    data: list[FieldSpec]

    def fields(self) -> list[FieldSpec]:
        return [*self.headers, *self.params, *self.data]


@dataclass(frozen=True, slots=True)
class CallSpec:
    """A call: how to ask, and how to read the answer."""

    name: str
    apitype: str
    request: HttpSpec
    resp: list[RespField]
    framing: str = "sse"
    done: str | None = None
    done_event: str | None = None
    chunk_match: re.Pattern[str] | None = None
    chunk_filter: list[FilterRule] = field(default_factory=list)
    delta_mode: str = "incremental"
    query: HttpSpec | None = None
    query_resp: list[RespField] = field(default_factory=list)
    poll_interval: float = 1.0
    poll_timeout: float = 60.0
    status_map: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Spec:
    """A whole provider spec."""

    name: str
    file: str
    base_url: str | None
    api_key_env: str | None
    signer: Signer | None
    calls: dict[str, CallSpec]
    description: str = ""


def compile_spec(doc: dict[str, Any], file: str) -> Spec:
    """Compile a schema-valid document; raises SpecError."""
    signer = compile_signer(doc["signer"], ["signer"]) if "signer" in doc else None
    calls = {name: _call(name, raw, ["calls", name]) for name, raw in doc["calls"].items()}
    return Spec(name=doc["name"], file=file, base_url=doc.get("base_url"), api_key_env=doc.get("api_key_env"),
                signer=signer, calls=calls, description=doc.get("description", ""))


def _call(name: str, raw: dict[str, Any], where: Where) -> CallSpec:
    apitype = raw["apitype"]
    for key in STREAM_ONLY if apitype != "stream" else ():
        if key in raw:
            raise SpecError([*where, key], f"only for apitype 'stream' (this call is {apitype!r})")
    for key in ASYNC_ONLY if apitype != "async" else ():
        if key in raw:
            raise SpecError([*where, key], f"only for apitype 'async' (this call is {apitype!r})")
    local = ("task_id",)
    request = _http(raw.get("method", "POST"), raw["path"], raw.get("body", "json"), raw.get("headers", []),
                    raw.get("params", []), raw.get("data", []), where, ("path", "headers", "params", "data"), ())
    resp = compile_resp(raw["resp"], [*where, "resp"])
    names = {r.name for r in resp}
    call = CallSpec(name=name, apitype=apitype, request=request, resp=resp)
    if apitype == "stream":
        _require(names & {"content", "tool_calls"}, where, "resp", "a stream call needs a 'content' output")
        if raw.get("delta_mode") == "cumulative" and "tool_calls" in names:
            raise SpecError([*where, "delta_mode"], "cumulative mode supports text only, not tool_calls")
        return replace(call, framing=raw["framing"], done=raw.get("done"), done_event=raw.get("done_event"),
                        chunk_match=_regex(raw.get("chunk_match"), [*where, "chunk_match"]),
                        chunk_filter=[_rule(r, [*where, "chunk_filter", i])
                                      for i, r in enumerate(raw.get("chunk_filter", []))],
                        delta_mode=raw.get("delta_mode", "incremental"))
    if apitype == "sync":
        _require(names & {"content", "tool_calls"}, where, "resp", "a sync call needs a 'content' output")
        return call
    _require(names & {"task_id"}, where, "resp", "an async call's resp needs a 'task_id' output")
    query = _http(raw.get("query_method", "GET"), raw["query_path"], raw.get("body", "json"),
                  raw.get("query_headers", []), raw.get("query_params", []), raw.get("query_data", []), where,
                  ("query_path", "query_headers", "query_params", "query_data"), local)
    query_resp = compile_resp(raw["query_resp"], [*where, "query_resp"])
    qnames = {r.name for r in query_resp}
    if "status_map" in raw:
        _require(qnames & {"status"}, where, "query_resp", "needs a 'status' output")
    elif "status" in qnames:  # without both, the task is done once `content` has a value
        raise SpecError([*where, "status_map"], "required with a 'status' output (without both, the task "
                        "is done once 'content' has a value)")
    _require(qnames & {"content"}, where, "query_resp", "needs a 'content' output")
    status_map: dict[str, str] = {}
    for outcome in ("running", "succeeded", "failed") if "status_map" in raw else ():
        for i, value in enumerate(raw["status_map"][outcome]):
            if value in status_map:
                raise SpecError([*where, "status_map", outcome, i], f"status {value!r} is listed twice")
            status_map[value] = outcome
    return replace(call, query=query, query_resp=query_resp, status_map=status_map,
                    poll_interval=float(raw.get("poll_interval", 1.0)),
                    poll_timeout=float(raw.get("poll_timeout", 60.0)))


def _require(present: set[str], where: Where, key: str, message: str) -> None:
    if not present:
        raise SpecError([*where, key], message)


def _http(method: str, path: str, body: str, headers: list[Any], params: list[Any], data: list[Any],
          where: Where, keys: tuple[str, str, str, str], local: tuple[str, ...]) -> HttpSpec:
    if method == "GET" and data:
        raise SpecError([*where, keys[3]], "a GET request has no body; use params")
    path_template = compile_template(path, [*where, keys[0]], local, escape=_quote_segment)
    if any(name == "messages" for name, _ in path_template.variables):
        raise SpecError([*where, keys[0]], "${messages} cannot go in a URL path")
    header_fields = _fields(headers, [*where, keys[1]], local)
    for i, f in enumerate(header_fields):
        if not _HEADER_NAME.match(f.name):
            raise SpecError([*where, keys[1], i, "name"], f"not a valid HTTP header name: {f.name!r}")
    return HttpSpec(method=method, path=path_template, body=body, headers=header_fields,
                    params=_fields(params, [*where, keys[2]], local), data=_fields(data, [*where, keys[3]], local))


def _quote_segment(value: str) -> str:
    """A value placed in a URL path cannot add segments or a query (`render_request` refuses `..`)."""
    return quote(value, safe="")


def _fields(raw: list[dict[str, Any]], where: Where, local: tuple[str, ...]) -> list[FieldSpec]:
    out = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        at = [*where, i]
        if item["name"] in seen:
            raise SpecError([*at, "name"], f"field {item['name']!r} is given twice")
        seen.add(item["name"])
        converter = compile_converter(item["converter"], [*at, "converter"]) if "converter" in item else None
        unless = item.get("unless")
        if unless is not None:
            problem = variable_problem(unless, local)
            if problem:
                raise SpecError([*at, "unless"], problem.replace("${", "").replace("}", ""))
        out.append(FieldSpec(name=item["name"], template=compile_template(item["value"], [*at, "value"], local),
                             converter=converter, optional=item.get("optional", False), where=_show(at),
                             unless=unless))
    return out


def compile_resp(raw: list[dict[str, Any]], where: Where) -> list[RespField]:
    out = []
    for i, item in enumerate(raw):
        at = [*where, i]
        try:
            path = compile_path(item["value"])
        except PathError as exc:
            raise SpecError([*at, "value"], str(exc)) from None
        converter = compile_converter(item["converter"], [*at, "converter"]) if "converter" in item else None
        if converter is not None and converter.templates:
            raise SpecError([*at, "converter"], "response converters cannot use request templates")
        when = compile_conditions(item["when"], [*at, "when"]) if "when" in item else []
        out.append(RespField(item["name"], path, converter, when, _show(at)))
    return out


def _rule(raw: dict[str, Any], where: Where) -> FilterRule:
    fields = frozenset(raw["fields"]) if "fields" in raw else None
    if "all" in raw:
        conditions = compile_conditions(raw["all"], [*where, "all"])
    else:
        conditions = compile_conditions({k: v for k, v in raw.items() if k != "fields"}, where)
    return FilterRule(conditions, fields)


def _regex(text: str | None, where: Where) -> re.Pattern[str] | None:
    if text is None:
        return None
    try:
        pattern = re.compile(text)
    except re.error as exc:
        raise SpecError(where, f"bad regular expression: {exc}") from None
    if pattern.groups > 1:
        raise SpecError(where, "use at most one capturing group (the JSON payload)")
    return pattern


def _show(where: Where) -> str:
    return show_path(where)
