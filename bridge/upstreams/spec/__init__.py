"""Declarative upstreams: providers described as JSON files in specs/ (see specs/README.md).

`build_spec_upstream` turns an UPSTREAM value into a ready driver, checking at start-up
everything that can be checked then: the file against the schema, converters, signers,
variables, and the environment variables and API key the chosen call cannot do without.
"""

from __future__ import annotations

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
    url = base_url or (settings.upstream.base_url if primary else None) or spec.base_url
    if not url:
        where = "UPSTREAM_BASE_URL" if primary else f"{setting}.base_url"
        raise ConfigError(f"{setting}: spec {spec.name} has no base_url; set {where} to the provider's URL")
    check_url(f"{setting}: base URL of spec {spec.name}", url)
    key = api_key or (settings.upstream.api_key if primary else None)
    if not key and spec.api_key_env:
        key = settings.env.get(spec.api_key_env) or None
    used_env = _check_required(spec, spec.calls[call], settings, key, setting)
    secrets = [key] if key else []
    secrets += [settings.env[name] for name in used_env if settings.env.get(name)]
    return SpecUpstream(
        spec, call,
        name=spec.name if call == "chat" else f"{spec.name}:{call}",
        base_url=url, api_key=key, model=model, env=settings.env, http=http, secrets=secrets,
    )


def _check_required(spec: Spec, call: CallSpec, settings: Settings, key: str | None, setting: str) -> set[str]:
    """Fail start-up when a required `${env.NAME}` or `${api_key}` has no value; return env names used."""
    places: list[tuple[str, Template, bool]] = []
    for http, prefix in ((call.request, ""), (call.query, "query_")):
        if http is None:
            continue
        base = f"calls.{call.name}."
        places.append((base + prefix + "path", http.path, True))
        for field in http.fields():
            places.extend((field.where, t, not field.optional) for t in field.templates)
    if spec.signer is not None:
        places.extend(("signer", t, not spec.signer.optional) for t in spec.signer.templates)
    used_env: set[str] = set()
    for where, template, required in places:
        for variable, has_default in template.variables:
            if variable.startswith("env."):
                used_env.add(variable[4:])
            if not required or has_default:
                continue
            if variable.startswith("env.") and not settings.env.get(variable[4:]):
                raise ConfigError(f"{setting}: spec {spec.name}: {where} needs ${{{variable}}}: "
                                  f"set the environment variable {variable[4:]}")
            if variable == "api_key" and not key:
                if setting == "UPSTREAM":
                    how = "UPSTREAM_API_KEY" + (f" or {spec.api_key_env}" if spec.api_key_env else "")
                else:
                    how = f"api_key in {setting}" + (f" or {spec.api_key_env}" if spec.api_key_env else "")
                raise ConfigError(f"{setting}: spec {spec.name}: {where} needs ${{api_key}}: set {how}")
    return used_env
