"""Reading, validating and resolving the BRIDGE_TOOLS file at start-up.

Any problem is a ConfigError naming the file, the JSON path of the bad value and what is wrong.
`${env.NAME}` in URLs and header values is replaced from the environment once, here; nothing
else in the file is ever interpreted.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from yarl import URL

from bridge.config import ConfigError
from bridge.config.jsonfile import DuplicateKey, NotFinite, read_json_file
from bridge.tools import schemas

SETTING = "BRIDGE_TOOLS"
SCHEMA_FILE = Path(__file__).with_name("schema.json")
DEFAULT_MAX_ROUNDS = 5
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_RESULT_BYTES = 16 * 1024
DEFAULT_STARTUP_WAIT = 10.0
NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
_ENV_REF = re.compile(r"env\.([A-Za-z_][A-Za-z0-9_]*)")
_SENSITIVE_NAME = re.compile(r"(?i)auth|key|token|secret|pass|cookie|sig|credential")
_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_TYPE_WORDS = {"object": "an object", "array": "a list", "string": "a string", "integer": "an integer",
               "number": "a number", "boolean": "true or false", "null": "null"}
_MIN_SECRET = 4
_LONG_SECRET = 8


@dataclass(frozen=True, slots=True)
class HttpToolSpec:
    """One entry of `tools`: a function the model may call, run as an HTTP request."""

    name: str
    description: str
    parameters: dict[str, Any]
    url: str
    method: str
    headers: dict[str, str]
    timeout: float
    max_result_bytes: int


@dataclass(frozen=True, slots=True)
class McpServerSpec:
    """One entry of `mcp_servers`: a streamable-HTTP MCP server whose tools are offered."""

    url: str
    headers: dict[str, str]
    include: frozenset[str] | None
    timeout: float
    max_result_bytes: int


@dataclass(frozen=True, slots=True)
class Limits:
    """The file's `limits`: how much MCP servers may make the bridge hold, offer and redo.

    docs/tools.md ("Limits") says what each one bounds and why its default is what it is.
    """

    max_tools: int = 128  # tools offered to the model: HTTP tools first, then MCP tools
    max_description_chars: int = 4096  # an MCP tool's description is cut to this
    max_schema_bytes: int = 16384  # an MCP tool whose inputSchema is larger (as JSON) is skipped
    max_list_pages: int = 10  # tools/list pages read per listing
    max_list_page_bytes: int = 512 * 1024  # one tools/list answer (and any other MCP message but a call's)
    relist_interval: float = 5.0  # seconds between re-lists of one server; notifications in between coalesce
    max_remembered_names: int = 1024  # names still owned after their server stopped listing them


@dataclass(frozen=True, slots=True)
class ToolsConfig:
    """The whole file, checked, with every placeholder resolved."""

    source: str
    tools: tuple[HttpToolSpec, ...]
    mcp_servers: tuple[McpServerSpec, ...]
    max_rounds: int
    filler: str | None
    secrets: tuple[str, ...]
    limits: Limits = Limits()
    startup_wait: float = DEFAULT_STARTUP_WAIT


def load_config(path: str, env: Mapping[str, str]) -> ToolsConfig:
    """Read and check `path`; raise ConfigError naming the file, the JSON path and the problem."""
    prefix = f"{SETTING}: {path}"
    try:
        doc = read_json_file(path, prefix, finite=True)
    except (DuplicateKey, NotFinite) as exc:
        raise ConfigError(f"{prefix}: not valid JSON: {exc}") from None
    error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    if error is not None:
        raise ConfigError(f"{prefix}: {show_path(error.absolute_path)}: {describe(error)}")
    try:
        return _build(doc, path, env)
    except _Problem as exc:
        raise ConfigError(f"{prefix}: {show_path(exc.where)}: {exc.message}") from None


def show_path(path: Iterable[str | int]) -> str:
    """('tools', 0, 'http', 'timeout') -> 'tools[0].http.timeout'."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        elif _SIMPLE_KEY.match(step):
            out += f".{step}" if out else step
        else:
            out += f"[{json.dumps(step)}]"
    return out or "(top level)"


def describe(error: jsonschema.ValidationError) -> str:
    """A short message for one schema error, preferring the schema's own `errorMessage`."""
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        allowed = list(error.schema.get("properties", {})) if isinstance(error.schema, dict) else []
        unknown = sorted(set(error.instance) - set(allowed))
        return f"unknown key {_short(unknown[0])}; allowed: {', '.join(allowed)}"
    if error.validator == "required" and isinstance(error.instance, dict):
        required = error.validator_value if isinstance(error.validator_value, list) else []
        missing = [k for k in required if k not in error.instance]
        return f"missing required key {_short(missing[0] if missing else required)}"
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if isinstance(custom, str):
        return custom.replace("{value}", _short(error.instance))
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        return "must be " + " or ".join(_TYPE_WORDS.get(str(k), str(k)) for k in kinds)
    return _short_text(error.message)


def resolve(text: str, env: Mapping[str, str], used: list[str]) -> str:
    """Replace every `${env.NAME}` in `text`; add the values that may be secrets to `used`.

    A value counts as secret when it is long (8+ characters) or its variable's name says so
    (KEY, TOKEN, SECRET, ...): results are redacted with these, and a short, plain value such
    as a port or a region would only mangle them.
    """

    def substitute(match: re.Match[str]) -> str:
        ref = _ENV_REF.fullmatch(match.group(1))
        if ref is None:
            raise _Problem((), f"unknown placeholder {_short(match.group(0))}; only ${{env.NAME}} is supported")
        value = env.get(ref.group(1), "")
        if not value:
            raise _Problem((), f"environment variable {ref.group(1)} is not set")
        if len(value) >= _LONG_SECRET or _SENSITIVE_NAME.search(ref.group(1)):
            used.append(value)
        return value

    return _PLACEHOLDER.sub(substitute, text)


def _build(doc: dict[str, Any], path: str, env: Mapping[str, str]) -> ToolsConfig:
    secrets: list[str] = []
    tools: list[HttpToolSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(doc.get("tools", [])):
        where: tuple[str | int, ...] = ("tools", i)
        name = item["name"]
        if name in seen:
            raise _Problem((*where, "name"), f"duplicate tool name {name!r} (tools[{seen[name]}] has it too)")
        seen[name] = i
        parameters = item.get("parameters", {"type": "object", "properties": {}})
        _check_json_schema(parameters, (*where, "parameters"), name)
        http = item["http"]
        tools.append(HttpToolSpec(
            name=name,
            description=item["description"],
            parameters=parameters,
            url=_url(http["url"], env, secrets, (*where, "http", "url")),
            method=http.get("method", "POST"),
            headers=_headers(http.get("headers", {}), env, secrets, (*where, "http", "headers")),
            timeout=float(http.get("timeout", DEFAULT_TIMEOUT)),
            max_result_bytes=http.get("max_result_bytes", DEFAULT_MAX_RESULT_BYTES),
        ))
    servers = []
    for i, item in enumerate(doc.get("mcp_servers", [])):
        where = ("mcp_servers", i)
        include = item.get("include")
        servers.append(McpServerSpec(
            url=_url(item["url"], env, secrets, (*where, "url")),
            headers=_headers(item.get("headers", {}), env, secrets, (*where, "headers")),
            include=frozenset(include) if include is not None else None,
            timeout=float(item.get("timeout", DEFAULT_TIMEOUT)),
            max_result_bytes=item.get("max_result_bytes", DEFAULT_MAX_RESULT_BYTES),
        ))
    limits = Limits(**doc.get("limits", {}))
    if len(tools) > limits.max_tools:
        raise _Problem(("tools",), f"has {len(tools)} tools, more than limits.max_tools ({limits.max_tools})")
    return ToolsConfig(
        source=path,
        tools=tuple(tools),
        mcp_servers=tuple(servers),
        max_rounds=doc.get("max_rounds", DEFAULT_MAX_ROUNDS),
        filler=doc.get("filler"),
        secrets=tuple(sorted({s for s in secrets if len(s) >= _MIN_SECRET}, key=len, reverse=True)),
        limits=limits,
        startup_wait=float(doc.get("startup_wait", DEFAULT_STARTUP_WAIT)),
    )


def _url(raw: str, env: Mapping[str, str], secrets: list[str], where: Sequence[str | int]) -> str:
    value = _resolve_at(where, raw, env, secrets)
    try:
        url = URL(value)
    except ValueError:
        url = None
    if url is None or url.scheme not in ("http", "https") or not url.host or any(c.isspace() for c in value):
        after = " after ${env...} substitution" if "${" in raw else ""
        raise _Problem(where, f"must be an http:// or https:// URL{after}, got {_short(raw)}")
    if url.password:
        secrets.append(url.password)
    secrets.extend(v for k, v in url.query.items() if _SENSITIVE_NAME.search(k))
    return value


def _headers(raw: dict[str, str], env: Mapping[str, str], secrets: list[str],
             where: Sequence[str | int]) -> dict[str, str]:
    headers = {}
    for name, template in raw.items():
        if name.lower() in ("content-length", "transfer-encoding", "host"):
            raise _Problem((*where, name), "is set by the bridge itself; remove it")
        value = _resolve_at((*where, name), template, env, secrets)
        if "\r" in value or "\n" in value:
            raise _Problem((*where, name), "must not contain line breaks")
        if _SENSITIVE_NAME.search(name):
            secrets.append(value)
            scheme, _, credential = value.partition(" ")
            if credential and scheme.isalpha():
                secrets.append(credential.strip())
        headers[name] = value
    return headers


def _resolve_at(where: Sequence[str | int], text: str, env: Mapping[str, str], secrets: list[str]) -> str:
    """`resolve`, with a problem pinned to the JSON path `where`."""
    try:
        return resolve(text, env, secrets)
    except _Problem as exc:
        raise _Problem(where, exc.message) from None


def _check_json_schema(schema: dict[str, Any], where: Sequence[str | int], name: str) -> None:
    """The tool's `parameters`: a valid schema, every `$ref` inside it, every pattern runnable by RE2."""
    try:
        schemas.survey(schema, strict=True)
    except schemas.SchemaRefused as exc:
        raise _Problem(where, f"tool {name!r}: {exc}") from None
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    try:
        cls.check_schema(schema)
    except jsonschema.SchemaError as exc:
        raise _Problem((*where, *exc.absolute_path), f"not a valid JSON Schema: {_short_text(exc.message)}") from None


class _Problem(Exception):
    def __init__(self, where: Sequence[str | int], message: str) -> None:
        super().__init__(message)
        self.where = tuple(where)
        self.message = message


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _short_text(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)
