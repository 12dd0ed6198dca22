"""Upstream drivers and the factory that picks one by name.

`echo` and `openai` are built in; any other name is a declarative spec in specs/.
"""

from __future__ import annotations

from bridge.config import FallbackUpstream, Settings
from bridge.upstreams.base import Upstream
from bridge.upstreams.echo import EchoUpstream

BUILTIN = ("echo", "openai")


def build_upstream(
    name: str,
    settings: Settings,
    *,
    base_url: str | None = None,
    api_key: str | None = None,
    model: str | None = None,
    setting: str = "UPSTREAM",
) -> Upstream:
    """Build the upstream called `name`; `setting` names where it was configured, for errors."""
    if name == "echo":
        return EchoUpstream()
    if name == "openai":
        if settings.openai_client == "sdk":
            from bridge.upstreams.openai_sdk import OpenAISDKUpstream

            return OpenAISDKUpstream(
                base_url=base_url or settings.openai_base_url, api_key=api_key or settings.openai_api_key,
                model=model, connect_timeout=settings.connect_timeout, total_timeout=settings.total_timeout,
            )
        from bridge.upstreams.openai_http import OpenAIUpstream

        return OpenAIUpstream(
            base_url=base_url or settings.openai_base_url, api_key=api_key or settings.openai_api_key,
            model=model, connect_timeout=settings.connect_timeout, total_timeout=settings.total_timeout,
            max_connections=settings.max_concurrency,
        )
    from bridge.specs import build_spec_upstream

    return build_spec_upstream(name, settings, base_url=base_url, api_key=api_key, model=model, setting=setting)


def build_upstreams(settings: Settings) -> list[Upstream]:
    """The primary upstream followed by UPSTREAM_FALLBACKS, in order."""
    upstreams = [build_upstream(settings.upstream, settings)]
    for i, fb in enumerate(settings.fallbacks):
        upstreams.append(_fallback(fb, settings, f"UPSTREAM_FALLBACKS[{i}]"))
    return upstreams


def _fallback(fb: FallbackUpstream, settings: Settings, setting: str) -> Upstream:
    return build_upstream(fb.upstream, settings, base_url=fb.base_url, api_key=fb.api_key,
                          model=fb.model, setting=setting)
