"""Upstream drivers and the factory that picks one by name.

`echo` and `openai` are built in; any other name is a declarative spec in specs/.
"""

from __future__ import annotations

from bridge.config import BackupUpstream, Settings
from bridge.upstreams.base import Upstream
from bridge.upstreams.echo import EchoUpstream
from bridge.upstreams.http import HttpClient


def http_client(settings: Settings) -> HttpClient:
    """A connection pool for one upstream, sized like the bridge's own concurrency."""
    d = settings.deadlines
    return HttpClient(max_connections=settings.server.max_concurrency, connect_timeout=d.connect,
                      total_timeout=d.total)


def build_upstream(name: str, settings: Settings, *, base_url: str | None = None, api_key: str | None = None,
                   model: str | None = None, setting: str = "UPSTREAM") -> Upstream:
    """Build the upstream called `name`; `setting` names where it was configured, for errors."""
    if name == "echo":
        return EchoUpstream()
    up = settings.upstream
    if name == "openai":
        if up.openai_client == "sdk":
            from bridge.upstreams.openai.sdk import OpenAISDKUpstream

            return OpenAISDKUpstream(
                base_url=base_url or up.openai_base_url, api_key=api_key or up.openai_api_key, model=model,
                connect_timeout=settings.deadlines.connect, total_timeout=settings.deadlines.total,
                max_connections=settings.server.max_concurrency,
            )
        from bridge.upstreams.openai.client import OpenAIUpstream

        return OpenAIUpstream(base_url=base_url or up.openai_base_url, api_key=api_key or up.openai_api_key,
                              model=model, http=http_client(settings), chat_path=up.openai_chat_path)
    from bridge.upstreams.spec import build_spec_upstream

    return build_spec_upstream(name, settings, base_url=base_url, api_key=api_key, model=model, setting=setting)


def build_upstreams(settings: Settings) -> list[Upstream]:
    """The primary upstream followed by the backups (UPSTREAM_FALLBACKS), in order."""
    upstreams = [build_upstream(settings.upstream.name, settings)]
    for i, backup in enumerate(settings.upstream.backups):
        upstreams.append(_backup(backup, settings, f"UPSTREAM_FALLBACKS[{i}]"))
    return upstreams


def _backup(backup: BackupUpstream, settings: Settings, setting: str) -> Upstream:
    return build_upstream(backup.upstream, settings, base_url=backup.base_url, api_key=backup.api_key,
                          model=backup.model, setting=setting)
