"""Values with `${var}` placeholders, compiled once and rendered per request.

A string that is exactly one placeholder (`"${messages}"`, `"${temperature}"`) renders to
the variable's own value, object or number; placeholders inside a longer string are
formatted into it. `${name:-default}` uses `default` when the variable has no value.
Objects and lists are templates all the way down. Nothing is ever evaluated.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bridge import jsonutil
from bridge.request import ChatRequest
from bridge.upstreams.spec.errors import SpecError

PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_.]*)(?::-([^}]*))?\}")

#: Request variables every template may use.
BASE_VARIABLES = ("model", "messages", "prompt", "system", "api_key", "now", "now_ms", "uuid")
#: The request's standard OpenAI parameters, each a variable of the same name.
PARAM_VARIABLES = (
    "temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "seed", "presence_penalty",
    "frequency_penalty", "tools", "tool_choice", "parallel_tool_calls", "response_format", "user",
    "logit_bias", "logprobs", "top_logprobs",
)
#: Platform metadata (IMS extendData / ExtendData, Agora turn id), as `extend.<field>`.
EXTEND_FIELDS = ("instance_id", "channel_id", "sentence_id", "user_data", "turn_id")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


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
    if name.startswith("env."):
        return None if _ENV_NAME.match(name[4:]) else f"${{{name}}}: env.NAME needs a variable name"
    if name.startswith("extend."):
        if name[7:] in EXTEND_FIELDS:
            return None
        return f"unknown variable ${{{name}}}; extend fields: {', '.join(EXTEND_FIELDS)}"
    known = [*BASE_VARIABLES, *local, "env.NAME", "extend.FIELD", "the standard parameters (temperature, ...)"]
    return f"unknown variable ${{{name}}}; known: {', '.join(known)}"


class Context:
    """The variables of one request (plus local ones, e.g. a message's `text`)."""

    __slots__ = ("_uuid", "api_key", "env", "local", "model", "now", "request")

    def __init__(self, request: ChatRequest, *, model: str, api_key: str | None, env: Mapping[str, str],
                 local: dict[str, Any] | None = None) -> None:
        self.request = request
        self.model = model
        self.api_key = api_key
        self.env = env
        self.now = time.time()
        self.local = local or {}
        self._uuid: str | None = None

    def child(self, local: dict[str, Any]) -> Context:
        """The same request with extra local variables."""
        ctx = Context(self.request, model=self.model, api_key=self.api_key, env=self.env,
                      local={**self.local, **local})
        ctx.now = self.now
        return ctx

    def get(self, name: str) -> Any:
        """The variable's value, or MISSING."""
        if name in self.local:
            value = self.local[name]
        elif name in _GETTERS:
            value = _GETTERS[name](self)
        elif name.startswith("env."):
            value = self.env.get(name[4:]) or MISSING
        elif name.startswith("extend."):
            value = self.request.meta.get(name[7:], MISSING)
        else:
            value = self.request.params.get(name, MISSING)
        return MISSING if value is None else value

    def request_uuid(self) -> str:
        if self._uuid is None:
            self._uuid = uuid.uuid4().hex
        return self._uuid


_GETTERS: dict[str, Callable[[Context], Any]] = {
    "model": lambda c: c.model,
    "messages": lambda c: c.request.messages,
    "prompt": lambda c: c.request.last_user_text() or MISSING,
    "system": lambda c: c.request.system_text() or MISSING,
    "api_key": lambda c: c.api_key or MISSING,
    "now": lambda c: int(c.now),
    "now_ms": lambda c: int(c.now * 1000),
    "uuid": lambda c: c.request_uuid(),
}


class Template:
    """A compiled value: `render(ctx)` builds it, raising MissingVariable for an unset placeholder."""

    __slots__ = ("render", "variables")

    def __init__(self, render: Callable[[Context], Any], variables: list[tuple[str, bool]]) -> None:
        self.render = render
        #: every (name, has_default) it uses, for start-up checks
        self.variables = variables


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
    matches = list(PLACEHOLDER.finditer(text))
    leftover = PLACEHOLDER.sub("", text)
    if "${" in leftover:
        raise SpecError(where, f"malformed placeholder in {text!r}: use ${{name}} or ${{name:-default}}")
    for match in matches:
        problem = variable_problem(match.group(1), local)
        if problem:
            raise SpecError(where, problem)
        variables.append((match.group(1), match.group(2) is not None))
    if not matches:
        return lambda ctx: text
    if len(matches) == 1 and matches[0].span() == (0, len(text)) and escape is None:
        return _lookup(matches[0].group(1), matches[0].group(2))
    pieces: list[str | Callable[[Context], Any]] = []
    pos = 0
    for match in matches:
        if match.start() > pos:
            pieces.append(text[pos:match.start()])
        pieces.append(_lookup(match.group(1), match.group(2)))
        pos = match.end()
    if pos < len(text):
        pieces.append(text[pos:])
    fmt = to_text if escape is None else (lambda value: escape(to_text(value)))
    return lambda ctx: "".join(p if isinstance(p, str) else fmt(p(ctx)) for p in pieces)


def _lookup(name: str, default: str | None) -> Callable[[Context], Any]:
    def render(ctx: Context) -> Any:
        value = ctx.get(name)
        if value is MISSING or (default is not None and value == ""):
            if default is None:
                raise MissingVariable(name)
            return default
        return value

    return render


def to_text(value: Any) -> str:
    """A value formatted into a string: JSON for objects, lists and booleans."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list, bool)):
        return jsonutil.dumps_str(value)
    return str(value)
