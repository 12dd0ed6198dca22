"""The original "LLM JSON file" format, translated at load time into the project's own format.

A file in that format (specs/README.md, "The original format") loads unchanged: `translate`
turns it into a document shaped like specs/*.json, which then goes through the same schema
check and compile. One runtime, two spellings. Problems found here name the field's JSON path
in the ORIGINAL document; `Translation.show` maps a path in the translated document back, for
the checks that run after translation.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.upstreams.spec.converters import suggest
from bridge.upstreams.spec.model import FieldSpec, HttpSpec, RespField, Spec
from bridge.upstreams.spec.original import parts
from bridge.upstreams.spec.original.parts import Where, fail
from bridge.upstreams.spec.paths import show_path

Key = tuple[str | int, ...]
TOP_KEYS = ("name", "description", "docs", "$schema", "base_url")
APITYPES = ("stream", "sync", "async")
STREAM_KEYS = ("chunk_match", "chunk_filter")
ASYNC_KEYS = ("query_path", "query_method", "query_headers", "query_params", "query_data", "query_resp",
              "poll_interval", "poll_timeout")
CALL_KEYS = ("path", "method", "apitype", "headers", "header", "params", "data", "input_items", "resp",
             *STREAM_KEYS, *ASYNC_KEYS, "description")
LOCAL = ("task_id",)  # the query id, in an async call's query_* fields
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_CALL = re.compile(r"^[a-z][a-z0-9_]*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_original(doc: Any) -> bool:
    """No `calls`, and a top-level key (other than name, description, ...) holds an object with `apitype`."""
    if not isinstance(doc, dict) or "calls" in doc:
        return False
    return any(isinstance(v, dict) and "apitype" in v for k, v in doc.items() if k not in TOP_KEYS)


def hint(doc: Any) -> str:
    """For a document in neither format that looks like an original-format file without apitypes."""
    if isinstance(doc, dict) and "calls" not in doc and any(isinstance(v, dict) for v in doc.values()):
        return ' (a file in the original LLM JSON format needs "apitype" in each call)'
    return ""


def name_of(doc: dict[str, Any]) -> str:
    """The spec name: the file's `name`, lower-cased, other characters as `-` ("MiniMax" -> "minimax")."""
    raw = doc.get("name")
    if raw is None:
        fail(["name"], 'missing: the interface\'s name (usually the company), e.g. "minimax"')
    if not isinstance(raw, str):
        fail(["name"], "must be a string")
    name = re.sub(r"[^a-z0-9_-]+", "-", raw.strip().lower()).strip("-")
    if not _NAME.match(name):
        fail(["name"], f"{raw!r} cannot name a spec: use letters, digits, - and _")
    return name


@dataclass(frozen=True, slots=True)
class Shipped:
    """A shipped spec in the project's format, with the original file's name: what may be borrowed."""

    doc: dict[str, Any]
    file: str


@dataclass(slots=True)
class Translation:
    """The translated document, and where its parts came from (original path, or borrowed)."""

    doc: dict[str, Any]
    origins: dict[Key, tuple[Key, str | None]] = field(default_factory=dict)

    def show(self, where: Sequence[str | int]) -> str:
        """A path in the translated document as the ORIGINAL document's path."""
        path = tuple(where)
        for cut in range(len(path), 0, -1):
            origin = self.origins.get(path[:cut])
            if origin is not None:
                at, source = origin
                shown = show_path([*at, *path[cut:]])
                return f"{shown} (borrowed from {source})" if source else shown
        return show_path(path[1:] if path[:1] == ("calls",) else path)

    def relabel(self, spec: Spec) -> Spec:
        """The compiled spec with each field's `where` (start-up and runtime messages) as the original path."""
        calls = {}
        for name, call in spec.calls.items():
            at: Key = ("calls", name)
            calls[name] = replace(call, request=self._http(call.request, at, ""),
                                  query=self._http(call.query, at, "query_") if call.query else None,
                                  resp=self._resp(call.resp, (*at, "resp")),
                                  query_resp=self._resp(call.query_resp, (*at, "query_resp")))
        return replace(spec, calls=calls)

    def _http(self, http: HttpSpec, at: Key, prefix: str) -> HttpSpec:
        return replace(http, headers=self._fields(http.headers, (*at, prefix + "headers")),
                       params=self._fields(http.params, (*at, prefix + "params")),
                       data=self._fields(http.data, (*at, prefix + "data")))

    def _fields(self, fields: list[FieldSpec], at: Key) -> list[FieldSpec]:
        return [replace(f, where=self.show((*at, i))) for i, f in enumerate(fields)]

    def _resp(self, resp: list[RespField], at: Key) -> list[RespField]:
        return [replace(r, where=self.show((*at, i))) for i, r in enumerate(resp)]


def translate(doc: dict[str, Any], *, resp_names: list[str], shipped: Shipped | None = None) -> Translation:
    """The project-format document for an original-format one; raises SpecError (original paths)."""
    out: dict[str, Any] = {"name": name_of(doc)}
    out.update({k: doc[k] for k in ("description", "docs", "base_url") if k in doc})
    calls = _Calls(resp_names)
    out["calls"] = {key: calls.call(key, _call_object(key, raw)) for key, raw in doc.items() if key not in TOP_KEYS}
    if shipped is not None:
        _borrow(out, shipped, calls.origins)
    for call in out["calls"].values():
        if call["apitype"] == "stream" and not any(item["name"] == "finish_reason" for item in call["resp"]):
            call["end"] = "eof"  # nothing says when the answer is complete: the format meant the end of the body
    return Translation(out, calls.origins)


def _call_object(key: str, raw: Any) -> dict[str, Any]:
    """A top-level value that must be a call: an object with an apitype, under a call's name."""
    if not isinstance(raw, dict):
        fail([key], f"not a call{suggest(key, TOP_KEYS)}: every top-level key other than "
                    f"{', '.join(TOP_KEYS)} is a call (an object with path, apitype, ...)")
    if "apitype" not in raw:
        fail([key, "apitype"], "missing: a call needs an apitype: stream, sync or async")
    if not _CALL.match(key):
        fail([key], "a call's name is lower-case letters, digits and _, starting with a letter")
    return raw


def _apitype(raw: dict[str, Any], where: Where) -> str:
    """The call's apitype, once its keys are known, fit it, and say headers one way.

    Keys of another kind of call are refused here: the translation has nowhere to put them.
    """
    parts.check_keys(raw, CALL_KEYS, where, "a call")
    apitype = raw["apitype"]
    if apitype not in APITYPES:
        fail([*where, "apitype"], f"unknown apitype {apitype!r}{suggest(apitype, APITYPES)}; use stream, sync or async")
    for kind, keys in (("stream", STREAM_KEYS), ("async", ASYNC_KEYS)):
        wrong = [key for key in keys if key in raw] if apitype != kind else []
        if wrong:
            fail([*where, wrong[0]], f"only for apitype {kind!r} (this call is {apitype!r})")
    if "headers" in raw and "header" in raw:
        fail([*where, "header"], "give headers or header, not both")
    return str(apitype)


class _Calls:
    """Translates calls, recording the original path of every part whose path changes."""

    def __init__(self, resp_names: list[str]) -> None:
        self.names = resp_names
        self.origins: dict[Key, tuple[Key, str | None]] = {}

    def call(self, name: str, raw: dict[str, Any]) -> dict[str, Any]:
        where: Where = [name]
        apitype = _apitype(raw, where)
        out: dict[str, Any] = {"path": self._path(raw, where, "path", ()),
                               "method": self._method(raw, where, "method", ("GET", "POST", "PUT"), "POST"),
                               "apitype": apitype}
        if "description" in raw:
            out["description"] = raw["description"]
        header = "header" if "header" in raw else "headers"
        self._params(raw, where, out, (header, "params", "data"), ("headers", "params", "data"), ())
        out["resp"] = self._resp(raw, where, "resp")
        if apitype == "stream":
            self._stream(raw, where, out)
        elif apitype == "async":
            self._async(raw, where, out, header)
        return out

    def _stream(self, raw: dict[str, Any], where: Where, out: dict[str, Any]) -> None:
        """chunk_match reads raw lines (framing `lines`); without it the stream is SSE."""
        if "chunk_match" in raw:
            out["framing"] = "lines"
            out["chunk_match"] = parts.regex(raw["chunk_match"], [*where, "chunk_match"])
        else:
            out["framing"] = "sse"
        self._origin([*where, "framing"], [*where, "chunk_match" if "chunk_match" in raw else "apitype"])
        if "chunk_filter" in raw:
            rules: list[dict[str, Any]] = []
            for at, rule in parts.chunk_filter(raw["chunk_filter"], [*where, "chunk_filter"], self.names):
                base = [*where, "chunk_filter", len(rules)]
                self._origin(base, at)
                self._origin([*base, "path"], [*at, "name"])
                self._origin([*base, "fields"], [*at, "field"])
                rules.append(rule)
            out["chunk_filter"] = rules

    def _async(self, raw: dict[str, Any], where: Where, out: dict[str, Any], header: str) -> None:
        """The query request; no status map: done once query_resp's content has a value."""
        out["query_path"] = self._path(raw, where, "query_path", LOCAL)
        default = "POST" if raw.get("query_data") else "GET"
        out["query_method"] = self._method(raw, where, "query_method", ("GET", "POST"), default)
        if "query_headers" not in raw and "headers" in out:  # the query authenticates like the call
            out["query_headers"] = copy.deepcopy(out["headers"])
            self._origin([*where, "query_headers"], [*where, header])
        self._params(raw, where, out, ("query_headers", "query_params", "query_data"),
                     ("query_headers", "query_params", "query_data"), LOCAL)
        out["query_resp"] = self._resp(raw, where, "query_resp")
        names = {item["name"] for item in out["query_resp"]}
        if "status" in names:
            fail([*where, "query_resp"], "the original format has no status map: leave 'status' out (the call "
                                         "is done once content has a value, and failed when error has one)")
        out.update({k: raw[k] for k in ("poll_interval", "poll_timeout") if k in raw})

    def _path(self, raw: dict[str, Any], where: Where, key: str, local: tuple[str, ...]) -> str:
        value = raw.get(key)
        if value is None:
            fail([*where, key], "missing: the request path, e.g. /v1/text/chatcompletion_pro")
        if not isinstance(value, str):
            fail([*where, key], "must be a string: the request path, e.g. /v1/text/chatcompletion_pro")
        if _URL.match(value):
            fail([*where, key], "the path only, without scheme or host: put those in base_url "
                                "(or set UPSTREAM_BASE_URL)")
        return parts.text(value if not value or value.startswith("/") else "/" + value, [*where, key], local)

    @staticmethod
    def _method(raw: dict[str, Any], where: Where, key: str, known: tuple[str, ...], default: str) -> str:
        value = raw.get(key, default)
        if not isinstance(value, str) or value.upper() not in known:
            fail([*where, key], f"unsupported method {value!r}; use {', '.join(known)}")
        return value.upper()

    def _params(self, raw: dict[str, Any], where: Where, out: dict[str, Any], keys: tuple[str, ...],
                targets: tuple[str, ...], local: tuple[str, ...]) -> None:
        for key, target in zip(keys, targets, strict=True):
            if key in raw:
                out[target] = parts.params(raw[key], [*where, key], local)
                if key != target:
                    self._origin([*where, target], [*where, key])

    def _resp(self, raw: dict[str, Any], where: Where, key: str) -> list[dict[str, Any]]:
        if key not in raw:
            fail([*where, key], "missing: the list of response items {name, value} to read from the answer")
        out: list[dict[str, Any]] = []
        for i, item in parts.resp(raw[key], [*where, key], self.names):
            self._origin([*where, key, len(out)], [*where, key, i])
            out.append(item)
        return out

    def _origin(self, translated: Where, original: Where, source: str | None = None) -> None:
        """`translated` is relative to `calls` (the call name first)."""
        self.origins[("calls", *translated)] = (tuple(original), source)


def _borrow(out: dict[str, Any], shipped: Shipped, origins: dict[Key, tuple[Key, str | None]]) -> None:
    """Take from the same-name shipped spec what the original file does not say."""
    theirs, source = shipped.doc, shipped.file
    for key in ("base_url", "api_key_env"):
        if key not in out and key in theirs:
            out[key] = theirs[key]
            origins[(key,)] = ((key,), source)
    if "signer" in theirs and not any(_own_auth(call) for call in out["calls"].values()):
        out["signer"] = copy.deepcopy(theirs["signer"])
        origins[("signer",)] = (("signer",), source)
    their_calls = theirs.get("calls")
    for name, call in out["calls"].items():
        their_call = their_calls.get(name) if isinstance(their_calls, dict) else None
        if isinstance(their_call, dict):
            borrow = _Borrow(call, their_call, ("calls", name), source, origins)
            borrow.converter()
            borrow.outputs()


BORROWED_OUTPUTS = ("error", "error_code", "error_status")
ONCE_OUTPUTS = ("finish_reason", "tool_calls")  # borrowed when the file reads none of its own


@dataclass(slots=True)
class _Borrow:
    """What one call borrows from the shipped call of the same name."""

    call: dict[str, Any]
    theirs: dict[str, Any]
    at: Key
    source: str
    origins: dict[Key, tuple[Key, str | None]]

    def converter(self) -> None:
        """The converter of the data field sent as `"${messages}"`, when the file gives none.

        When the file sends no `${system}` itself and that converter leaves system messages out,
        they are put in front of the first user message instead (never dropped unsaid).
        """
        item, index = _messages_field(self.call.get("data", []), with_converter=False)
        their, j = _messages_field(self.theirs.get("data", []), with_converter=True)
        if item is None or their is None:
            return
        converter = copy.deepcopy(their["converter"])
        if isinstance(converter, dict) and "system" not in converter.get("roles", {"system": ""}) \
                and "${system" not in json.dumps(self.call):
            converter["system"] = "prepend"
        item["converter"] = converter
        self.origins[(*self.at, "data", index, "converter")] = ((*self.at, "data", j, "converter"), self.source)

    def outputs(self) -> None:
        """After the file's own: error outputs (failures inside HTTP 200), and the finish reason (with its
        table) and the tool calls when the file reads none, so a call-only answer is not an empty one."""
        for key in ("resp", "query_resp"):
            if key in self.call:
                self._outputs(key)
        if "finish_reasons" in self.theirs and "finish_reasons" not in self.call:
            self.call["finish_reasons"] = copy.deepcopy(self.theirs["finish_reasons"])
            self.origins[(*self.at, "finish_reasons")] = ((*self.at, "finish_reasons"), self.source)

    def _outputs(self, key: str) -> None:
        own = {item["name"] for item in self.call[key]}
        for j, their in enumerate(self.theirs.get(key, [])):
            name = their.get("name") if isinstance(their, dict) else None
            if name in BORROWED_OUTPUTS or (name in ONCE_OUTPUTS and name not in own):
                self.origins[(*self.at, key, len(self.call[key]))] = ((*self.at, key, j), self.source)
                self.call[key].append(copy.deepcopy(their))


def _messages_field(data: Any, *, with_converter: bool) -> tuple[dict[str, Any] | None, int]:
    """The first data field sent as `"${messages}"` (with, or without, a converter)."""
    for i, item in enumerate(data if isinstance(data, list) else []):
        if isinstance(item, dict) and item.get("value") == "${messages}" and ("converter" in item) == with_converter:
            return item, i
    return None, -1


def _own_auth(call: dict[str, Any]) -> bool:
    """The call authenticates itself: an Authorization (or other auth) header, or the key in a field."""
    fields = [*call.get("headers", []), *call.get("params", []), *call.get("data", [])]
    return any("auth" in f["name"].lower() or "${api_key" in json.dumps(f["value"]) for f in fields)
