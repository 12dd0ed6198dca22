"""Upstream drivers and the factory that picks one by name.

`echo` and `openai` are built in; any other name is a declarative spec in specs/.
"""

from __future__ import annotations

import re
from pathlib import Path

from bridge import jsonutil
from bridge.config import BackupUpstream, ConfigError, Settings
from bridge.upstreams.base import Upstream
from bridge.upstreams.echo import EchoUpstream
from bridge.upstreams.http import HttpClient, HttpClients

__all__ = ["HttpClients", "Upstream", "build_upstream", "build_upstreams", "env_names", "http_client"]

_ENV_REFERENCE = re.compile(r'\$\{env\.([A-Za-z_][A-Za-z0-9_]*)|"api_key_env"\s*:\s*"([A-Za-z_][A-Za-z0-9_]*)"')
# The original format's `${name}`: any name but these reads the environment variable NAME (`${groupid}`: GROUPID).
_ORIGINAL_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-[^}]*)?\}")
_ORIGINAL_OWN = frozenset({"apikey", "model", "messages", "prompt", "task_id"})


def http_client(settings: Settings, clients: HttpClients | None = None) -> HttpClient:
    """A connection pool sized like the bridge's own concurrency: shared through `clients`, else its own."""
    d = settings.deadlines
    if clients is not None:
        return clients.get(settings.server.max_concurrency, d.connect, d.total)
    return HttpClient(max_connections=settings.server.max_concurrency, connect_timeout=d.connect,
                      total_timeout=d.total)


def build_upstream(name: str, settings: Settings, *, base_url: str | None = None, api_key: str | None = None,
                   model: str | None = None, setting: str = "UPSTREAM", clients: HttpClients | None = None) -> Upstream:
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
                              model=model, http=http_client(settings, clients), chat_path=up.openai_chat_path)
    from bridge.upstreams.spec import build_spec_upstream

    return build_spec_upstream(name, settings, base_url=base_url, api_key=api_key, model=model, setting=setting,
                               http=http_client(settings, clients))


def build_upstreams(settings: Settings, clients: HttpClients | None = None) -> list[Upstream]:
    """The primary upstream followed by the backups (UPSTREAM_FALLBACKS), in order."""
    upstreams = [build_upstream(settings.upstream.name, settings, clients=clients)]
    for i, backup in enumerate(settings.upstream.backups):
        upstreams.append(_backup(backup, settings, f"UPSTREAM_FALLBACKS[{i}]", clients))
    return upstreams


def _backup(backup: BackupUpstream, settings: Settings, setting: str, clients: HttpClients | None) -> Upstream:
    return build_upstream(backup.upstream, settings, base_url=backup.base_url, api_key=backup.api_key,
                          model=backup.model, setting=setting, clients=clients)


def env_names(settings: Settings) -> set[str]:
    """The environment variables the configured spec upstreams read (`${env.NAME}`, `api_key_env`):
    an agent may set them too (bridge/config/agents.py). Built-in upstreams read none."""
    from bridge.upstreams.spec.loader import resolve

    names: set[str] = set()
    for ref in (settings.upstream.name, *(b.upstream for b in settings.upstream.backups)):
        if ref in ("echo", "openai"):
            continue
        try:
            text = Path(resolve(ref, "UPSTREAM")[0]).read_text(encoding="utf-8", errors="replace")
        except (ConfigError, OSError):
            continue  # building the upstream reports it
        names.update(a or b for a, b in _ENV_REFERENCE.findall(text))
        if _is_original(text):
            names.update(n.upper() for n in _ORIGINAL_VARIABLE.findall(text) if n not in _ORIGINAL_OWN)
    return names


def _is_original(text: str) -> bool:
    """Whether a spec file is in the original LLM JSON format (it is then translated when loaded)."""
    from bridge.upstreams.spec.original import is_original

    try:
        return is_original(jsonutil.loads(text))
    except ValueError:
        return False
