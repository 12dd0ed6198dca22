"""Finding, reading and validating spec files at start-up.

`UPSTREAM=minimax` names specs/minimax.json; `UPSTREAM=/etc/bridge/acme.json` is a path.
Either may end in `:call` to pick a call other than `chat` (`UPSTREAM=dashscope:cumulative`).
A file in the original LLM JSON format is translated first (bridge/upstreams/spec/original/__init__.py). A bad
file stops start-up with a ConfigError naming the file, the field's JSON path and the problem.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema

from bridge.config import ConfigError
from bridge.config.jsonfile import DuplicateKey, read_json_file
from bridge.config.paths import SPECS_DIR
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.model import Spec, compile_spec
from bridge.upstreams.spec.original import Shipped, Translation, hint, is_original, name_of, translate
from bridge.upstreams.spec.paths import show_path

SCHEMA_FILE = SPECS_DIR / "schema.json"
DEFAULT_CALL = "chat"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
_CALL = re.compile(r"^[a-z][a-z0-9_]*$")


def available_specs(directory: Path = SPECS_DIR) -> list[str]:
    """Names of the spec files shipped in `directory`."""
    return sorted(p.stem for p in directory.glob("*.json") if p.name != SCHEMA_FILE.name)


def split_ref(ref: str) -> tuple[str, str | None]:
    """`name:call` -> (name, call); a bare name -> (name, None)."""
    head, sep, tail = ref.rpartition(":")
    if sep and head and _CALL.match(tail):
        return head, tail
    return ref, None


def is_path(ref: str) -> bool:
    return ref.endswith(".json") or "/" in ref or "\\" in ref


def resolve(ref: str, setting: str, directory: Path = SPECS_DIR) -> tuple[Path, str | None]:
    """The spec file and call an UPSTREAM value names; ConfigError when there is none."""
    name, call = split_ref(ref)
    if is_path(name):
        file = Path(name)
        if not file.is_file():
            raise ConfigError(f"{setting}: spec file {name} does not exist")
        return file, call
    file = directory / f"{name}.json"
    if not _NAME.match(name) or not file.is_file():
        known = ", ".join(dict.fromkeys(["echo", "openai", *available_specs(directory)]))
        raise ConfigError(f"{setting}: unknown upstream {name!r}; available: {known} "
                          f"(or a path to a spec .json file)")
    return file, call


def load_spec(file: Path, setting: str, *, expect_name: str | None = None) -> Spec:
    """Read, validate and compile one spec file.

    Each check runs once: an original-format file is translated (its spelling checked), the
    document's shape is checked against the schema, then its meaning by the compiler; a problem
    found after translation is reported at the original document's path.
    """
    prefix = f"{setting}: spec file {file}"
    doc = _read(file, prefix)
    show: Callable[[Sequence[str | int]], str] = show_path
    translation: Translation | None = None
    if is_original(doc):
        prefix += " (original format)"
        translation = _translate(doc, file, setting, prefix)
        doc, show = translation.doc, translation.show
    error = jsonschema.exceptions.best_match(_validator().iter_errors(doc))
    if error is not None:
        at = show(error.absolute_path)
        raise ConfigError(f"{prefix}: {at}: {_shorten(error.message)}{hint(doc) if at == show_path(()) else ''}")
    if expect_name is not None and doc["name"] != expect_name:
        raise ConfigError(f"{prefix}: name: {doc['name']!r} does not match the file name {expect_name!r}")
    try:
        spec = compile_spec(doc, str(file))
    except SpecError as exc:
        raise ConfigError(f"{prefix}: {show(exc.where)}: {exc.message}") from None
    return translation.relabel(spec) if translation else spec


def _read(file: Path, prefix: str) -> Any:
    try:
        return read_json_file(file, prefix)
    except DuplicateKey as exc:
        raise ConfigError(f"{prefix}: {exc}") from None


def _translate(doc: dict[str, Any], file: Path, setting: str, prefix: str) -> Translation:
    """An original-format document in the project's format, borrowing from the same-name shipped spec."""
    try:
        shipped = _shipped(name_of(doc), file, setting)
        names = list(_schema()["$defs"]["resp_name"]["enum"])
        return translate(doc, resp_names=names, shipped=shipped)
    except SpecError as exc:
        raise ConfigError(f"{prefix}: {show_path(exc.where)}: {exc.message}") from None


def _shipped(name: str, file: Path, setting: str) -> Shipped | None:
    """specs/<name>.json when it is another file, in the project's format: what a translation may borrow.

    It is not validated here: what is borrowed is validated with the document it joins.
    """
    candidate = SPECS_DIR / f"{name}.json"
    if not candidate.is_file() or candidate.resolve() == file.resolve():
        return None
    shown = f"{SPECS_DIR.name}/{candidate.name}"
    doc = _read(candidate, f"{setting}: spec file {shown} (which {file} borrows from)")
    if is_original(doc) or not isinstance(doc, dict) or not isinstance(doc.get("calls"), dict):
        return None
    return Shipped(doc, shown)


def pick_call(spec: Spec, call: str | None, setting: str) -> str:
    """The call to use: the one named, else `chat`, else the only one."""
    if call is None:
        if DEFAULT_CALL in spec.calls:
            return DEFAULT_CALL
        if len(spec.calls) == 1:
            return next(iter(spec.calls))
        raise ConfigError(f"{setting}: spec {spec.name} has no 'chat' call; name one of "
                          f"{', '.join(spec.calls)} as {spec.name}:<call>")
    if call not in spec.calls:
        raise ConfigError(f"{setting}: spec {spec.name} has no call {call!r}; calls: {', '.join(spec.calls)}")
    return call


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    return schema


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Draft202012Validator:
    jsonschema.Draft202012Validator.check_schema(_schema())
    return jsonschema.Draft202012Validator(_schema())


def _shorten(message: str, limit: int = 240) -> str:
    return message if len(message) <= limit else message[:limit] + "..."
