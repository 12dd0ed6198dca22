"""A spec compiled for speed: templates, paths, conditions and converters built once.

`compile_spec` takes a document that already passed the JSON Schema (the shape) and applies
the checks a schema cannot express (the meaning: unknown converters, signers and variables,
bad paths and regexes, fields in the wrong kind of call, system messages no field sends). Each
check lives in exactly one of the two places. Every problem is a SpecError with the field's
JSON path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import quote

from bridge.upstreams.spec.conditions import Condition, compile_conditions
from bridge.upstreams.spec.converters import Converter, compile_converter
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.finish import BUILT_IN, compile_table
from bridge.upstreams.spec.paths import Path, PathError, compile_path, has_every, show_path
from bridge.upstreams.spec.signers import Signer, compile_signer
from bridge.upstreams.spec.templates import Template, compile_template, variable_problem

Where = list[str | int]
STREAM_ONLY = ("framing", "done", "done_event", "chunk_match", "chunk_filter", "delta_mode", "end")
ASYNC_ONLY = ("query_path", "query_method", "query_params", "query_data", "query_headers", "query_resp",
              "poll_interval", "poll_timeout", "status_map")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")
_REQUEST_KEYS = ("path", "headers", "params", "data")
_QUERY_KEYS = ("query_path", "query_headers", "query_params", "query_data")
_TEXT_OUTPUTS = {"content", "tool_calls"}


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One header, query parameter or body field."""

    name: str
    template: Template
    converter: Converter | None
    optional: bool
    where: str
    unless: str | None = None  # a variable: when it has a value, the field is left out
    merge: bool = False  # the value is an object whose entries join the body at `name` ("" is the top)

    @property
    def templates(self) -> list[Template]:
        return [self.template, *(self.converter.templates if self.converter else ())]


@dataclass(frozen=True, slots=True)
class RespField:
    """One output read from a payload: a path, an optional converter and `when` conditions.

    With `each`, the output is read from every element of the list at that path: `path` and
    `when` are then relative to the element.
    """

    name: str
    path: Path
    converter: Converter | None
    when: list[Condition]
    where: str
    each: Path | None = None


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
    end: str = "marker"  # or "eof": the end of the body is the end of the answer
    chunk_match: re.Pattern[str] | None = None
    chunk_filter: list[FilterRule] = field(default_factory=list)
    delta_mode: str = "incremental"
    finish_reasons: dict[str, str] = field(default_factory=lambda: dict(BUILT_IN))
    tool_call_key: str = "index"
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
    _only_for(raw, where, apitype)
    request = _http(raw, where, _REQUEST_KEYS, raw.get("method", "POST"), ())
    _check_system(request, where)
    call = CallSpec(name=name, apitype=apitype, request=request, resp=compile_resp(raw["resp"], [*where, "resp"]),
                    finish_reasons=compile_table(raw.get("finish_reasons", {})),
                    tool_call_key=raw.get("tool_call_key", "index"))
    names = {r.name for r in call.resp}
    if apitype == "async":
        return _async(call, raw, where, names)
    _require(names & _TEXT_OUTPUTS, where, "resp", f"a {apitype} call needs a 'content' output")
    return _stream(call, raw, where, names) if apitype == "stream" else call


def _only_for(raw: dict[str, Any], where: Where, apitype: str) -> None:
    for kind, keys in (("stream", STREAM_ONLY), ("async", ASYNC_ONLY)):
        for key in keys if apitype != kind else ():
            if key in raw:
                raise SpecError([*where, key], f"only for apitype {kind!r} (this call is {apitype!r})")


def _stream(call: CallSpec, raw: dict[str, Any], where: Where, names: set[str]) -> CallSpec:
    if raw.get("delta_mode") == "cumulative" and "tool_calls" in names:
        raise SpecError([*where, "delta_mode"], "cumulative mode supports text only, not tool_calls")
    return replace(call, framing=raw["framing"], done=raw.get("done"), done_event=raw.get("done_event"),
                   end=raw.get("end", "marker"), chunk_match=_regex(raw.get("chunk_match"), [*where, "chunk_match"]),
                   chunk_filter=[_rule(r, [*where, "chunk_filter", i])
                                 for i, r in enumerate(raw.get("chunk_filter", []))],
                   delta_mode=raw.get("delta_mode", "incremental"))


def _async(call: CallSpec, raw: dict[str, Any], where: Where, names: set[str]) -> CallSpec:
    _require(names & {"task_id"}, where, "resp", "an async call's resp needs a 'task_id' output "
                                                 "(the query id: the query fields use it as ${task_id})")
    query = _http(raw, where, _QUERY_KEYS, raw.get("query_method", "GET"), ("task_id",))
    query_resp = compile_resp(raw["query_resp"], [*where, "query_resp"])
    qnames = {r.name for r in query_resp}
    if "status_map" in raw:
        _require(qnames & {"status"}, where, "query_resp", "needs a 'status' output")
    elif "status" in qnames:  # without both, the task is done once `content` has a value
        raise SpecError([*where, "status_map"], "required with a 'status' output (without both, the task "
                        "is done once 'content' has a value)")
    _require(qnames & {"content"}, where, "query_resp", "needs a 'content' output")
    return replace(call, query=query, query_resp=query_resp, status_map=_status_map(raw, where),
                   poll_interval=float(raw.get("poll_interval", 1.0)),
                   poll_timeout=float(raw.get("poll_timeout", 60.0)))


def _status_map(raw: dict[str, Any], where: Where) -> dict[str, str]:
    status_map: dict[str, str] = {}
    for outcome in ("running", "succeeded", "failed") if "status_map" in raw else ():
        for i, value in enumerate(raw["status_map"][outcome]):
            if value in status_map:
                raise SpecError([*where, "status_map", outcome, i], f"status {value!r} is listed twice")
            status_map[value] = outcome
    return status_map


def _require(present: set[str], where: Where, key: str, message: str) -> None:
    if not present:
        raise SpecError([*where, key], message)


def _check_system(request: HttpSpec, where: Where) -> None:
    """A `messages` converter that leaves system messages out needs a field that sends `${system}`."""
    sends_system = any(name == "system" for f in request.fields() for t in f.templates for name, _ in t.variables)
    for i, f in enumerate(request.data):
        if f.converter is not None and f.converter.drops_system and not sends_system:
            raise SpecError([*where, "data", i, "converter"], "the system messages would be left out: map the "
                            "system role in roles, send ${system} in another field, or set \"system\": \"prepend\"")


def _http(raw: dict[str, Any], where: Where, keys: tuple[str, ...], method: str, local: tuple[str, ...]) -> HttpSpec:
    path_key, headers_key, params_key, data_key = keys
    data = raw.get(data_key, [])
    if method == "GET" and data:
        raise SpecError([*where, data_key], "a GET request has no body; use params")
    path = compile_template(raw[path_key], [*where, path_key], local, escape=_quote_segment)
    if any(name == "messages" for name, _ in path.variables):
        raise SpecError([*where, path_key], "${messages} cannot go in a URL path")
    headers = _fields(raw.get(headers_key, []), [*where, headers_key], local)
    for i, f in enumerate(headers):
        if not _HEADER_NAME.match(f.name):
            raise SpecError([*where, headers_key, i, "name"], f"not a valid HTTP header name: {f.name!r}")
    return HttpSpec(method=method, path=path, body=raw.get("body", "json"), headers=headers,
                    params=_fields(raw.get(params_key, []), [*where, params_key], local),
                    data=_fields(data, [*where, data_key], local, merge=True))


def _quote_segment(value: str) -> str:
    """A value placed in a URL path cannot add segments or a query (`render_request` refuses `..`)."""
    return quote(value, safe="")


def _fields(raw: list[dict[str, Any]], where: Where, local: tuple[str, ...], merge: bool = False) -> list[FieldSpec]:
    out = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        out.append(_field(item, [*where, i], local, merge, seen))
    return out


def _field(item: dict[str, Any], at: Where, local: tuple[str, ...], merge_ok: bool, seen: set[str]) -> FieldSpec:
    name, merge = item["name"], item.get("merge", False)
    if merge and not merge_ok:
        raise SpecError([*at, "merge"], "only body (data) fields can merge an object")
    if not name and not merge:
        raise SpecError([*at, "name"], "a field needs a name (\"\" only with merge: the body's top level)")
    if not merge and name in seen:
        raise SpecError([*at, "name"], f"field {name!r} is given twice")
    seen.add(name)
    converter = compile_converter(item["converter"], [*at, "converter"]) if "converter" in item else None
    unless = item.get("unless")
    problem = variable_problem(unless, local) if unless is not None else None
    if problem:
        raise SpecError([*at, "unless"], problem.replace("${", "").replace("}", ""))
    return FieldSpec(name=name, template=compile_template(item["value"], [*at, "value"], local),
                     converter=converter, optional=item.get("optional", False), where=show_path(at),
                     unless=unless, merge=merge)


def compile_resp(raw: list[dict[str, Any]], where: Where) -> list[RespField]:
    return [_resp_field(item, [*where, i]) for i, item in enumerate(raw)]


def _resp_field(item: dict[str, Any], at: Where) -> RespField:
    converter = compile_converter(item["converter"], [*at, "converter"]) if "converter" in item else None
    if converter is not None and converter.templates:
        raise SpecError([*at, "converter"], "response converters cannot use request templates")
    when = compile_conditions(item["when"], [*at, "when"]) if "when" in item else []
    each = _path(item["each"], [*at, "each"]) if "each" in item else None
    path = _path(item["value"], [*at, "value"])
    if each is not None and has_every(path):
        raise SpecError([*at, "value"], "with each, the value is read from each element: no [*] here")
    return RespField(item["name"], path, converter, when, show_path(at), each)


def _path(text: str, where: Where) -> Path:
    try:
        return compile_path(text)
    except PathError as exc:
        raise SpecError(where, str(exc)) from None


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
        raise SpecError(where, f"bad regular expression {text!r}: {exc}") from None
    if pattern.groups > 1:
        raise SpecError(where, f"{text!r} has {pattern.groups} capturing groups: keep one, around the JSON, "
                               "and write the others as (?:...)")
    return pattern
