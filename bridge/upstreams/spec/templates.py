"""Values with `${var}` placeholders, compiled once and rendered per request.

A string that is exactly one placeholder (`"${messages}"`, `"${temperature}"`) renders to
the variable's own value, object or number; placeholders inside a longer string are
formatted into it. `${name:-default}` uses `default` when the variable has no value or is
empty; a default may itself hold placeholders (`${user:-${extend.instance_id:-bridge}}`), and a
default that is exactly one placeholder gives that variable's own value. Objects and lists are
templates all the way down. Nothing is ever evaluated.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bridge import jsonutil
from bridge.request import ChatRequest
from bridge.upstreams.spec.errors import SpecError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")

#: Request variables every template may use.
BASE_VARIABLES = ("model", "messages", "prompt", "system", "api_key", "now", "now_ms", "uuid", "extra_params")
#: The caller's parameters, each a variable of the same name: OpenAI's documented ones (the OpenAI
#: route's contract), and the reasoning switches providers spell their own way, which reach the
#: bridge when UPSTREAM_EXTRA_PARAMS names them.
PARAM_VARIABLES = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "presence_penalty",
    "frequency_penalty", "tools", "tool_choice", "parallel_tool_calls", "response_format", "user",
    "logit_bias", "logprobs", "top_logprobs", "reasoning_effort", "verbosity", "service_tier", "metadata",
    "store", "modalities", "audio", "prediction", "web_search_options", "prompt_cache_key",
    "prompt_cache_retention", "safety_identifier", "thinking", "enable_thinking",
)
#: Platform metadata (IMS extendData / ExtendData, Agora turn id), as `extend.<field>`.
EXTEND_FIELDS = ("instance_id", "channel_id", "sentence_id", "user_data", "turn_id")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_PARAM_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class MissingVariable(Exception):
    """A placeholder has no value and no default."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def variable_problem(name: str, local: Sequence[str] = ()) -> str | None:
    """Why `name` is not a known variable, or None when it is."""
    if name in BASE_VARIABLES or name in PARAM_VARIABLES or name in local:
        return None
    namespace, _, rest = name.partition(".")
    if namespace == "env":
        return None if _ENV_NAME.match(rest) else f"${{{name}}}: env.NAME needs a variable name"
    if namespace == "param":
        return None if _PARAM_NAME.match(rest) else f"${{{name}}}: param.NAME needs a parameter name"
    if namespace == "extend":
        if rest in EXTEND_FIELDS:
            return None
        return f"unknown variable ${{{name}}}; extend fields: {', '.join(EXTEND_FIELDS)}"
    known = [*BASE_VARIABLES, *local, "env.NAME", "param.NAME", "extend.FIELD",
             "the caller's parameters (temperature, reasoning_effort, ...)"]
    return f"unknown variable ${{{name}}}; known: {', '.join(known)}"


class Context:
    """The variables of one request (plus local ones, e.g. a message's `text`).

    `extra` names the parameters UPSTREAM_EXTRA_PARAMS forwards (`${extra_params}`); `notes`
    collects what rendering had to leave out (a tool history the provider cannot take), for
    the driver to log; a child shares its parent's.
    """

    __slots__ = ("_uuid", "api_key", "env", "extra", "local", "model", "notes", "now", "request")

    def __init__(self, request: ChatRequest, *, model: str, api_key: str | None, env: Mapping[str, str],
                 local: dict[str, Any] | None = None, extra: Sequence[str] = ()) -> None:
        self.request = request
        self.model = model
        self.api_key = api_key
        self.env = env
        self.extra = extra
        self.now = time.time()
        self.local = local or {}
        self.notes: dict[str, int] = {}
        self._uuid: str | None = None

    def child(self, local: dict[str, Any]) -> Context:
        """The same request with extra local variables."""
        ctx = Context(self.request, model=self.model, api_key=self.api_key, env=self.env,
                      local={**self.local, **local}, extra=self.extra)
        ctx.now, ctx.notes, ctx._uuid = self.now, self.notes, self.request_uuid()
        return ctx

    def note(self, what: str, count: int = 1) -> None:
        self.notes[what] = self.notes.get(what, 0) + count

    def get(self, name: str) -> Any:
        """The variable's value, or MISSING."""
        if name in self.local:
            value = self.local[name]
        elif name in _GETTERS:
            value = _GETTERS[name](self)
        else:
            namespace, dot, rest = name.partition(".")
            value = _NAMESPACES[namespace](self, rest) if dot and namespace in _NAMESPACES \
                else self.request.params.get(name, MISSING)
        return MISSING if value is None else value

    def request_uuid(self) -> str:
        if self._uuid is None:
            self._uuid = uuid.uuid4().hex
        return self._uuid

    def extra_params(self) -> Any:
        params = self.request.params
        found = {name: params[name] for name in self.extra if params.get(name) is not None}
        return found or MISSING


_GETTERS: dict[str, Callable[[Context], Any]] = {
    "model": lambda c: c.model,
    "messages": lambda c: c.request.messages,
    "prompt": lambda c: c.request.last_user_text() or MISSING,
    "system": lambda c: c.request.system_text() or MISSING,
    "api_key": lambda c: c.api_key or MISSING,
    "now": lambda c: int(c.now),
    "now_ms": lambda c: int(c.now * 1000),
    "uuid": lambda c: c.request_uuid(),
    "extra_params": lambda c: c.extra_params(),
}
_NAMESPACES: dict[str, Callable[[Context, str], Any]] = {
    "env": lambda c, name: c.env.get(name) or MISSING,
    "extend": lambda c, name: c.request.meta.get(name, MISSING),
    "param": lambda c, name: c.request.params.get(name, MISSING),
}


class Template:
    """A compiled value: `render(ctx)` builds it, raising MissingVariable for an unset placeholder."""

    __slots__ = ("render", "variables")

    def __init__(self, render: Callable[[Context], Any], variables: list[tuple[str, bool]]) -> None:
        self.render = render
        #: every (name, has_default) it uses, for start-up checks
        self.variables = variables


# -- parsing ${...} ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Slot:
    """One placeholder: its variable, and its default (None: no default) as pieces."""

    name: str
    default: tuple[Piece, ...] | None


Piece = str | Slot


class Malformed(ValueError):
    """A `${` that does not start `${name}` or `${name:-default}`."""


def parse(text: str) -> list[Piece]:
    """Literal text and placeholders, defaults parsed as text of their own; Malformed if broken."""
    pieces, _ = _pieces(text, 0, nested=False)
    return pieces


def _pieces(text: str, pos: int, nested: bool) -> tuple[list[Piece], int]:
    pieces: list[Piece] = []
    start = pos
    while True:
        dollar = text.find("${", pos)
        close = text.find("}", pos) if nested else -1
        if nested and (close == -1 and dollar == -1):
            raise Malformed(text)
        if close != -1 and (dollar == -1 or close < dollar):  # the end of this default
            return _literal(pieces, text[start:close]), close
        if dollar == -1:
            return _literal(pieces, text[start:]), len(text)
        _literal(pieces, text[start:dollar])
        slot, pos = _slot(text, dollar)
        pieces.append(slot)
        start = pos


def _literal(pieces: list[Piece], text: str) -> list[Piece]:
    if text:
        pieces.append(text)
    return pieces


def _slot(text: str, pos: int) -> tuple[Slot, int]:
    match = _NAME.match(text, pos + 2)
    if match is None:
        raise Malformed(text)
    end = match.end()
    if text.startswith("}", end):
        return Slot(match.group(0), None), end + 1
    if not text.startswith(":-", end):
        raise Malformed(text)
    default, end = _pieces(text, end + 2, nested=True)
    return Slot(match.group(0), tuple(default)), end + 1


def unparse(pieces: Sequence[Piece], rename: Callable[[str], str]) -> str:
    """The text of parsed pieces, every variable renamed (the original format's spelling)."""
    out = []
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
        elif piece.default is None:
            out.append("${" + rename(piece.name) + "}")
        else:
            out.append("${" + rename(piece.name) + ":-" + unparse(piece.default, rename) + "}")
    return "".join(out)


def slots(pieces: Sequence[Piece], defaulted: bool = False) -> list[tuple[str, bool]]:
    """Every (variable, has_default) of parsed pieces; a variable inside a default has one."""
    found: list[tuple[str, bool]] = []
    for piece in pieces:
        if isinstance(piece, Slot):
            found.append((piece.name, defaulted or piece.default is not None))
            found += slots(piece.default or (), True)
    return found


# -- compiling ---------------------------------------------------------------------------------

def compile_template(value: Any, where: Sequence[str | int], local: Sequence[str] = (),
                     escape: Callable[[str], str] | None = None) -> Template:
    """Compile a JSON value; unknown variables and malformed placeholders raise SpecError.

    With `escape` (URL paths), every substituted value is formatted as text and escaped.
    """
    variables: list[tuple[str, bool]] = []
    render = _compile(value, list(where), local, variables, escape)
    return Template(render, variables)


def _compile(value: Any, where: list[str | int], local: Sequence[str], variables: list[tuple[str, bool]],
             escape: Callable[[str], str] | None) -> Callable[[Context], Any]:
    if isinstance(value, str):
        return _compile_string(value, where, local, variables, escape)
    if isinstance(value, list):
        items = [_compile(v, [*where, i], local, variables, escape) for i, v in enumerate(value)]
        return lambda ctx: [item(ctx) for item in items]
    if isinstance(value, dict):
        pairs = [(k, _compile(v, [*where, k], local, variables, escape)) for k, v in value.items()]
        return lambda ctx: {k: render(ctx) for k, render in pairs}
    return lambda ctx: value


def _compile_string(text: str, where: list[str | int], local: Sequence[str], variables: list[tuple[str, bool]],
                    escape: Callable[[str], str] | None) -> Callable[[Context], Any]:
    try:
        pieces = parse(text)
    except Malformed:
        raise SpecError(where, f"malformed placeholder in {text!r}: use ${{name}} or ${{name:-default}}") from None
    found = slots(pieces)
    for name, _ in found:
        problem = variable_problem(name, local)
        if problem:
            raise SpecError(where, problem)
    variables += found
    if escape is None:
        return _joined(pieces, to_text)
    return _joined(pieces, lambda value: escape(to_text(value)), whole=False)


def _joined(pieces: Sequence[Piece], fmt: Callable[[Any], str], whole: bool = True) -> Callable[[Context], Any]:
    """Render pieces: one placeholder alone gives its own value (unless `whole` is off); else text."""
    if not pieces:
        return lambda ctx: ""
    if len(pieces) == 1 and isinstance(pieces[0], str):
        text = pieces[0]
        return lambda ctx: text
    if len(pieces) == 1 and whole:
        return _lookup(pieces[0], fmt)  # type: ignore[arg-type]  # one Slot
    parts = [p if isinstance(p, str) else _lookup(p, fmt) for p in pieces]
    return lambda ctx: "".join(p if isinstance(p, str) else fmt(p(ctx)) for p in parts)


def _lookup(slot: Slot, fmt: Callable[[Any], str]) -> Callable[[Context], Any]:
    name = slot.name
    default = None if slot.default is None else _joined(slot.default, fmt)

    def render(ctx: Context) -> Any:
        value = ctx.get(name)
        if value is MISSING or (default is not None and value == ""):
            if default is None:
                raise MissingVariable(name)
            return default(ctx)
        return value

    return render


def to_text(value: Any) -> str:
    """A value formatted into a string: JSON for objects, lists and booleans."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, bool)):
        return jsonutil.text(value)
    return str(value)
