"""Declarative upstreams: providers described as JSON files in specs/ (see specs/README.md).

`build_spec_upstream` turns an UPSTREAM value into a ready driver, checking at start-up
everything that can be checked then: the file against the schema, converters, signers,
variables, and the environment variables and API key the chosen call cannot do without.
"""

from __future__ import annotations

from collections.abc import Iterator

from bridge.config import ConfigError, Settings, check_url
from bridge.upstreams.http import HttpClient
from bridge.upstreams.spec.driver import SpecUpstream
from bridge.upstreams.spec.loader import available_specs, is_path, load_spec, pick_call, resolve, split_ref
from bridge.upstreams.spec.model import CallSpec, Spec
from bridge.upstreams.spec.templates import Template

__all__ = ["SpecUpstream", "available_specs", "build_spec_upstream", "load_spec"]


def build_spec_upstream(
    ref: str,
    settings: Settings,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    setting: str = "UPSTREAM",
    http: HttpClient,
) -> SpecUpstream:
    """The upstream for `ref` (a spec name or path, optionally `:call`).

    UPSTREAM_BASE_URL and UPSTREAM_API_KEY apply to the primary upstream only: a fallback
    to another provider must never receive the primary's key. Fallback entries bring their own.
    """
    file, call_name = resolve(ref, setting)
    name = split_ref(ref)[0]
    spec = load_spec(file, setting, expect_name=None if is_path(name) else name)
    call = pick_call(spec, call_name, setting)
    primary = setting == "UPSTREAM"
    url = _base_url(spec, base_url or (settings.upstream.base_url if primary else None), setting)
    key = _api_key(spec, api_key or (settings.upstream.api_key if primary else None), settings)
    used_env = _check_required(spec, spec.calls[call], settings, key, setting)
    secrets = [key] if key else []
    secrets += [settings.env[name] for name in used_env if settings.env.get(name)]
    return SpecUpstream(
        spec, call,
        name=spec.name if call == "chat" else f"{spec.name}:{call}",
        base_url=url, api_key=key, model=model, env=settings.env, http=http, secrets=secrets,
        extra_params=settings.upstream.extra_params,
    )


def _api_key(spec: Spec, given: str | None, settings: Settings) -> str | None:
    if given or not spec.api_key_env:
        return given
    return settings.env.get(spec.api_key_env) or None


def _base_url(spec: Spec, given: str | None, setting: str) -> str:
    url = given or spec.base_url
    if not url:
        where = "UPSTREAM_BASE_URL" if setting == "UPSTREAM" else f"{setting}.base_url"
        raise ConfigError(f"{setting}: spec {spec.name} has no base_url; set {where} to the provider's URL")
    check_url(f"{setting}: base URL of spec {spec.name}", url)
    return url


def _places(spec: Spec, call: CallSpec) -> Iterator[tuple[str, Template, bool]]:
    """Every template the call renders: (where, template, whether it must have a value)."""
    for http, prefix in ((call.request, ""), (call.query, "query_")):
        if http is None:
            continue
        yield f"calls.{call.name}.{prefix}path", http.path, True
        for field in http.fields():
            yield from ((field.where, t, not field.optional) for t in field.templates)
    if spec.signer is not None:
        yield from (("signer", t, not spec.signer.optional) for t in spec.signer.templates)


def _check_required(spec: Spec, call: CallSpec, settings: Settings, key: str | None, setting: str) -> set[str]:
    """Fail start-up when a required `${env.NAME}` or `${api_key}` has no value; return env names used."""
    used_env: set[str] = set()
    for where, template, required in _places(spec, call):
        for variable, has_default in template.variables:
            if variable.startswith("env."):
                used_env.add(variable[4:])
            if required and not has_default:
                _check_value(spec, variable, where, settings, key, setting)
    return used_env


def _check_value(spec: Spec, variable: str, where: str, settings: Settings, key: str | None, setting: str) -> None:
    if variable.startswith("env.") and not settings.env.get(variable[4:]):
        raise ConfigError(f"{setting}: spec {spec.name}: {where} needs ${{{variable}}}: "
                          f"set the environment variable {variable[4:]}")
    if variable == "api_key" and not key:
        how = "UPSTREAM_API_KEY" if setting == "UPSTREAM" else f"api_key in {setting}"
        how += f" or {spec.api_key_env}" if spec.api_key_env else ""
        raise ConfigError(f"{setting}: spec {spec.name}: {where} needs ${{api_key}}: set {how}")
