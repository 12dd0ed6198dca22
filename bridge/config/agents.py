"""BRIDGE_AGENTS: several agents in one deployment, each configured with the bridge's own settings.

    {"agents": {"sales": {"UPSTREAM_MODEL": "gpt-4o", "SYSTEM_PROMPT": "...",
                          "OPENAI_API_KEY": "${SALES_KEY}", "BRIDGE_TOKENS": "sales-token"}}}

An agent's settings are the environment variable names, read by the same code with the same
messages (bridge/config/env.py); one it leaves out comes from the environment, and `${NAME}`
in a value reads the environment variable NAME, so secrets stay in the environment.
Process-wide settings (the listener, the drain, the concurrency cap, logging) are refused
inside an agent. The environment's own settings are the `default` agent.

Which agent answers: a token an agent lists in its own BRIDGE_TOKENS chooses it on every
route; the environment's BRIDGE_TOKENS choose the default agent. An agent that lists no
tokens of its own is reached on its path (`/agents/<name>/...`) with the environment's tokens.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bridge import jsonutil
from bridge.config.env import read_settings, setting_names
from bridge.config.jsonfile import DuplicateKey, read_json_file
from bridge.config.model import ConfigError, Settings

DEFAULT_AGENT = "default"
AGENT_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
MAX_AGENTS = 200
_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Settings of the process, not of an agent: one listener, one drain, one cap, one log.
PROCESS_WIDE = frozenset({
    "PORT", "HOST", "WEB_CONCURRENCY", "LOG_LEVEL", "DRAIN_TIMEOUT", "DRAIN_DELAY", "LISTEN_BACKLOG",
    "MAX_CONCURRENCY", "MAX_BODY_BYTES", "BODY_TIMEOUT", "METRICS_TOKEN", "BRIDGE_AGENTS",
    "PROMETHEUS_MULTIPROC_DIR", "PLAYGROUND", "PUBLIC_URL", "RESPONSES_STORE_URL", "RESPONSES_STORE_MAX",
    "RESPONSES_STORE_TTL", "RESPONSES_STORE_MAX_BYTES",
})
# Settings whose value may be written as JSON in the file (they hold JSON themselves).
_JSON_VALUED = frozenset({"UPSTREAM_FALLBACKS"})


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One agent: its settings (the environment's, overlaid with its own) and its own tokens."""

    name: str
    settings: Settings
    own_tokens: tuple[str, ...]  # tokens that choose this agent on the plain routes


def read_agents(base: Settings, extra_names: Callable[[Settings], Iterable[str]] = lambda _: ()) -> list[AgentConfig]:
    """The deployment's agents: `default` (the environment's) first, then the file's, if any.

    `extra_names(settings)` lists the variables an agent so configured may also set: those its
    spec or tools file reads (`${env.NAME}`). ConfigError names the file, the agent and the setting.
    """
    agents = [AgentConfig(DEFAULT_AGENT, base, base.tokens)]
    path = base.server.agents_file
    if path is None:
        return agents
    env = base.env
    for name, values in _entries(path).items():
        where = f"BRIDGE_AGENTS: agent {name}"
        overlay = {key: _value(where, key, raw, env) for key, raw in values.items()}
        _check_process_wide(where, overlay)
        try:
            settings = read_settings({**env, **overlay})
            _check_known(where, overlay, setting_names() | frozenset(extra_names(settings)))
        except ConfigError as exc:
            raise ConfigError(exc.args[0] if str(exc).startswith(where) else f"{where}: {exc}") from None
        if "BRIDGE_TOKENS" in overlay and not settings.tokens:  # it would leave the agent's path open to anyone
            raise ConfigError(f"{where}: BRIDGE_TOKENS: is empty; list the agent's tokens, or leave it out to "
                              "reach the agent with the environment's")
        agents.append(AgentConfig(name, settings, settings.tokens if "BRIDGE_TOKENS" in overlay else ()))
    check_tokens(agents)
    return agents


def check_tokens(agents: list[AgentConfig]) -> None:
    """A token may choose one agent only."""
    owner: dict[str, str] = {}
    for agent in agents:
        for token in agent.own_tokens:
            if token in owner and owner[token] != agent.name:
                raise ConfigError(f"BRIDGE_AGENTS: agents {owner[token]} and {agent.name} list the same token in "
                                  "BRIDGE_TOKENS; a token chooses one agent")
            owner[token] = agent.name


def _entries(path: str) -> dict[str, dict[str, Any]]:
    try:
        document = read_json_file(path, f"BRIDGE_AGENTS: {path}")
    except DuplicateKey as exc:
        raise ConfigError(f"BRIDGE_AGENTS: {path}: {exc}") from None
    agents = document.get("agents") if isinstance(document, dict) else None
    if not isinstance(agents, dict) or set(document) != {"agents"}:
        raise ConfigError(f'BRIDGE_AGENTS: {path}: expected {{"agents": {{"<name>": {{"<SETTING>": "<value>"}}}}}}')
    if len(agents) > MAX_AGENTS:
        raise ConfigError(f"BRIDGE_AGENTS: {path}: more than {MAX_AGENTS} agents")
    for name, values in agents.items():
        if not AGENT_NAME.match(name) or name == DEFAULT_AGENT:
            raise ConfigError(f"BRIDGE_AGENTS: agent {name[:80]!r}: a name is 1 to 64 lowercase letters, digits, "
                              f"'-' or '_', starting with a letter or digit (and not {DEFAULT_AGENT!r}): it is "
                              "part of the agent's URL")
        if not isinstance(values, dict):
            raise ConfigError(f"BRIDGE_AGENTS: agent {name}: must be an object of settings")
    return agents


def _value(where: str, key: str, raw: Any, env: Mapping[str, str]) -> str:
    """A setting's value as the environment would hold it; `${NAME}` read from the environment."""
    if key in _JSON_VALUED and isinstance(raw, (list, dict)):
        return jsonutil.dumps_str(raw)
    if isinstance(raw, bool) or not isinstance(raw, (str, int, float)):
        raise ConfigError(f"{where}: {key}: must be a string (or a number), got {type(raw).__name__}")
    text = raw if isinstance(raw, str) else str(raw)

    def resolve(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            raise ConfigError(f"{where}: {key}: ${{{name}}} names an environment variable that is not set")
        return env[name]

    return _REFERENCE.sub(resolve, text)


def _check_process_wide(where: str, overlay: Mapping[str, str]) -> None:
    for key in overlay:
        if key in PROCESS_WIDE:
            raise ConfigError(f"{where}: {key}: is a process-wide setting; set it in the environment, not per agent")


def _check_known(where: str, overlay: Mapping[str, str], known: frozenset[str]) -> None:
    for key in overlay:
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{where}: {key}: not a setting the bridge knows{hint}")
