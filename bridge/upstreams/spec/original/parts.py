"""The original LLM JSON format's parts in the project's spelling: variables, parameters, resp, filters.

Each function takes an original value and its JSON path in the ORIGINAL document, and returns
the project's form of it or raises SpecError naming that path. Only the original spelling is
checked here (its keys, names, ops and shapes); what the values mean (regular expressions,
paths, converters, operands) is checked once, by the compiler, and reported at the original path.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

from bridge.upstreams.spec import converters
from bridge.upstreams.spec.converters import suggest
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.templates import Malformed, parse, unparse

Where = list[str | int]
KEPT = ("model", "messages", "prompt")  # variables that keep their name; `apikey` is `api_key`
USAGE = ("usage.prompt_tokens", "usage.completion_tokens", "usage.total_tokens")
OPS = {"==": "eq", "!=": "ne", ">": "gt", "<": "lt", ">=": "ge", "<=": "le", "in": "in", "not in": "not_in",
       "not_in": "not_in", "exists": "exists", "not_exists": "not_exists"}
PARAM_KEYS = ("name", "value", "converter")
FILTER_KEYS = ("name", "op", "value", "field")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ITEM = "{name, value, converter}"


def fail(where: Sequence[str | int], message: str) -> NoReturn:
    raise SpecError(where, message)


def check_keys(raw: dict[str, Any], known: Sequence[str], where: Where, what: str) -> None:
    for key in raw:
        if key not in known:
            fail([*where, key], f"unknown field{suggest(key, known)}; {what} has: {', '.join(known)}")


# -- variables ----------------------------------------------------------------------------------

def value(raw: Any, where: Where, local: Sequence[str] = ()) -> Any:
    """A value with every `${var}` in the project's spelling, inside strings at any depth."""
    if isinstance(raw, str):
        return text(raw, where, local)
    if isinstance(raw, list):
        return [value(v, [*where, i], local) for i, v in enumerate(raw)]
    if isinstance(raw, dict):
        return {k: value(v, [*where, k], local) for k, v in raw.items()}
    return raw


def text(raw: str, where: Where, local: Sequence[str] = ()) -> str:
    try:
        pieces = parse(raw)
    except Malformed:
        fail(where, f"malformed placeholder in {raw!r}: write ${{name}}")
    return unparse(pieces, lambda name: variable(name, where, local))


def variable(name: str, where: Where, local: Sequence[str]) -> str:
    """`apikey` -> `api_key`; model, messages, prompt (and `local`) unchanged; `groupid` -> `env.GROUPID`."""
    if name == "apikey":
        return "api_key"
    if name in KEPT or name in local:
        return name
    if not _ENV.match(name):
        fail(where, f"${{{name}}} is not a variable: the original format has ${{apikey}}, ${{model}}, "
                    f"${{messages}}, ${{prompt}}, and any other ${{name}} reads the environment variable NAME")
    return "env." + name.upper()


# -- parameters and converters --------------------------------------------------------------------

def params(raw: Any, where: Where, local: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A list of parameter descriptions `{name, value, converter?}`."""
    if not isinstance(raw, list):
        fail(where, f"must be a list of parameter descriptions {_ITEM}")
    out = []
    for i, item in enumerate(raw):
        at = [*where, i]
        if not isinstance(item, dict):
            fail(at, f"must be a parameter description {_ITEM}")
        check_keys(item, PARAM_KEYS, at, "a parameter description")
        name = item.get("name")
        if name is None:
            fail([*at, "name"], "missing: a parameter needs a name")
        if not isinstance(name, str) or not name:
            fail([*at, "name"], "must be a non-empty string")
        if "value" not in item:
            fail([*at, "value"], "missing: a parameter needs a value (a constant, or text with ${var})")
        field = {"name": name, "value": value(item["value"], [*at, "value"], local)}
        if "converter" in item:
            field["converter"] = converter(item["converter"], [*at, "converter"])
        out.append(field)
    return out


def converter(raw: Any, where: Where) -> str:
    """A converter's name (a string); the compiler knows which names exist."""
    if not isinstance(raw, str):
        fail(where, f"a converter is a name (a string), one of: {', '.join(converters.REGISTRY)}")
    return raw


# -- answers --------------------------------------------------------------------------------------

def resp(raw: Any, where: Where, names: Sequence[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(original index, project item) pairs; `usage` becomes the three usage counts."""
    if not isinstance(raw, list) or not raw:
        fail(where, f"must be a non-empty list of response items {_ITEM}")
    for i, item in enumerate(raw):
        yield from ((i, out) for out in _resp_item(item, [*where, i], [*names, "usage"]))


def _resp_item(item: Any, at: Where, known: list[str]) -> list[dict[str, Any]]:
    if not isinstance(item, dict):
        fail(at, f"must be a response item {_ITEM}")
    check_keys(item, PARAM_KEYS, at, "a response item")
    name = _output(item.get("name"), [*at, "name"], known)
    path = key_path(item.get("value"), [*at, "value"])
    conv = converter(item["converter"], [*at, "converter"]) if "converter" in item else None
    if name != "usage":
        return [{"name": name, "value": path, **({"converter": conv} if conv else {})}]
    if conv is not None:
        fail([*at, "converter"], "usage reads the provider's whole usage object, so it takes no "
                                 "converter (give usage.total_tokens etc. their own items)")
    prefix = f"{path}." if path not in ("", ".") else ""
    return [{"name": count, "value": prefix + count[6:]} for count in USAGE]


def _output(name: Any, where: Where, known: list[str]) -> str:
    if name is None:
        fail(where, f"missing: one of {', '.join(known)}")
    if name not in known:
        fail(where, f"unknown output {name!r}{suggest(name, known)}; known: {', '.join(known)}")
    return str(name)


def key_path(raw: Any, where: Where) -> str:
    if raw is None:
        fail(where, "missing: a key path into the answer, e.g. choices[0].messages[0].text")
    if not isinstance(raw, str):
        fail(where, "must be a key path (a string), e.g. choices[0].messages[0].text")
    return raw


def regex(raw: Any, where: Where) -> str:
    if not isinstance(raw, str):
        fail(where, 'must be a regular expression (a string), e.g. "data: (.*)"')
    return raw


def chunk_filter(raw: Any, where: Where, names: Sequence[str]) -> Iterator[tuple[Where, dict[str, Any]]]:
    """(original path, project rule) pairs; `raw` is one rule `{name, op, value, field}` or a list."""
    if isinstance(raw, dict):
        rules: list[tuple[Where, Any]] = [(where, raw)]
    elif isinstance(raw, list):
        rules = [([*where, i], rule) for i, rule in enumerate(raw)]
    else:
        fail(where, "must be a rule {name, op, value, field} or a list of them")
    for at, rule in rules:
        yield at, _rule(rule, at, [*names, "usage"])


def _rule(rule: Any, at: Where, known: list[str]) -> dict[str, Any]:
    if not isinstance(rule, dict):
        fail(at, "must be a rule {name, op, value, field}")
    check_keys(rule, FILTER_KEYS, at, "a chunk_filter rule")
    op = _op(rule.get("op"), [*at, "op"])
    out: dict[str, Any] = {"path": key_path(rule.get("name"), [*at, "name"]), "op": OPS[op]}
    if OPS[op] not in ("exists", "not_exists"):
        if "value" not in rule:
            fail([*at, "value"], f"missing: op {op!r} compares with a value")
        out["value"] = rule["value"]
    if rule.get("field") is not None:
        field = _output(rule["field"], [*at, "field"], known)
        out["fields"] = list(USAGE) if field == "usage" else [field]
    return out


def _op(op: Any, where: Where) -> str:
    if op is None:
        fail(where, f"missing: one of {', '.join(OPS)}")
    if op not in OPS:
        words = [k for k in OPS if k[0].isalpha()]  # a symbol's close match is mostly another symbol
        fail(where, f"unknown op {op!r}{suggest(op, words)}; known: {', '.join(OPS)}")
    return str(op)
