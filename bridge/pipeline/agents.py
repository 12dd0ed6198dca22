"""The deployment's agents: each one's settings and pipeline, and what agents share.

Without BRIDGE_AGENTS the deployment is one agent, `default`, configured by the environment.
With it, each agent of the file as well (bridge/config/agents.py reads and checks the file).
What agents configure alike they share (`Shared`): one upstream connection pool per pool
size and timeouts, one toolbox (and so one connection per MCP server) per tools file as the
environment resolves it, one knowledge index per folder. A reload builds a new `Roster` and
swaps it in: new calls take the new agents, calls and sessions in flight finish on the agent
they started with, and each resource is closed once no agent, old or new, holds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bridge.config import ConfigError, Settings, check_files
from bridge.config.agents import DEFAULT_AGENT, AgentConfig, read_agents
from bridge.knowledge import KnowledgeBase, KnowledgeError, default_index_path, ensure_index
from bridge.log import get_logger
from bridge.metrics import Metrics
from bridge.pipeline import InFlight, Pipeline
from bridge.redaction import Redactor
from bridge.tools import ToolBox, load_toolbox
from bridge.upstreams import HttpClients, build_upstreams, env_names

PROBE_TIMEOUT = 5.0  # seconds the start-up probe of an upstream may take (it never blocks serving)
_TOOLS_ENV = re.compile(r"\$\{env\.([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(eq=False)
class Agent:
    """One agent: its name, settings and pipeline, the knowledge it searches, and its calls in flight."""

    name: str
    settings: Settings
    pipeline: Pipeline
    own_tokens: tuple[str, ...]  # the tokens that choose it on the plain routes
    knowledge: KnowledgeBase | None = None
    active: int = 0  # calls and sessions using it
    retired: bool = False  # a reload replaced it: it closes once `active` drops to 0
    held: list[tuple[str, Any]] = field(default_factory=list)  # what it holds of `Shared`
    on_idle: Callable[[Agent], None] | None = None

    @property
    def tokens(self) -> tuple[str, ...]:
        """Who may reach it on its own path: its own tokens, else the environment's."""
        return self.own_tokens or self.settings.tokens

    @property
    def model(self) -> str:
        return self.settings.default_model

    def enter(self) -> None:
        self.active += 1

    def leave(self) -> None:
        self.active -= 1
        if self.retired and self.active == 0 and self.on_idle is not None:
            self.on_idle(self)


@dataclass(eq=False)
class Roster:
    """The agents now serving: `default` (the environment's) and those of BRIDGE_AGENTS."""

    agents: dict[str, Agent]

    @property
    def default(self) -> Agent:
        return self.agents[DEFAULT_AGENT]

    def get(self, name: str) -> Agent | None:
        return self.agents.get(name)

    def __iter__(self) -> Iterator[Agent]:
        return iter(self.agents.values())

    def toolboxes(self) -> list[ToolBox]:
        """Each toolbox once (agents may share one)."""
        return list({id(a.pipeline.toolbox): a.pipeline.toolbox for a in self if a.pipeline.toolbox}.values())


class Shared:
    """What agents share, by what configures it, with a count of the agents holding each.

    A reload builds in a worker thread while the event loop releases retired agents: the
    table is guarded by a lock.
    """

    def __init__(self, metrics: Metrics, redact: Redactor, inflight: InFlight) -> None:
        self.metrics = metrics
        self.redact = redact
        self.inflight = inflight
        self.http = HttpClients()
        self._items: dict[tuple[str, Any], list[Any]] = {}  # key -> [resource, holders]
        self._lock = threading.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    def hold(self, held: list[tuple[str, Any]], kind: str, key: Any, make: Callable[[], Any]) -> Any:
        """The resource `key` configures, made once; noted in `held` (an agent's) until dropped."""
        with self._lock:  # found and counted at once: a drop in between would close it under us
            entry = self._items.get((kind, key))
            if entry is not None:
                entry[1] += 1
        if entry is None:
            resource = make()  # outside the lock: building an index takes a while
            with self._lock:  # (one made meanwhile by another build wins; ours is not started yet)
                entry = self._items.setdefault((kind, key), [resource, 0])
                entry[1] += 1
        held.append((kind, key))
        return entry[0]

    def drop(self, held: list[tuple[str, Any]]) -> list[Any]:
        """Drop holds; the resources nobody holds any more (for the caller to close)."""
        unused = []
        with self._lock:
            for kind, key in held:
                entry = self._items[(kind, key)]
                entry[1] -= 1
                if entry[1] == 0:
                    del self._items[(kind, key)]
                    unused.append(entry[0])
        held.clear()
        return unused

    def release_soon(self, agent: Agent) -> None:
        """`release` in the background (a retired agent's last call just ended)."""
        task = asyncio.get_running_loop().create_task(self.release(agent))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def release(self, agent: Agent) -> None:
        """Close what `agent` held that nobody holds any more, and its upstream drivers."""
        await agent.pipeline.chain.aclose()
        for resource in self.drop(agent.held):
            if isinstance(resource, ToolBox):
                await resource.aclose()

    async def aclose(self) -> None:
        """Close everything (the process is stopping)."""
        if self._closing:
            await asyncio.wait(self._closing)
        with self._lock:
            items, self._items = self._items, {}
        for resource, _ in items.values():
            if isinstance(resource, ToolBox):
                await resource.aclose()


def check_configuration(base: Settings) -> None:
    """Check every agent's settings, files and upstreams without opening anything (gunicorn's
    master does, so a bad deploy stops with one line before any worker starts)."""
    for config in read_agents(base, _extra_names):
        with _named(config):
            check_files(config.settings)
            build_upstreams(config.settings)


@contextlib.contextmanager
def _named(config: AgentConfig) -> Iterator[None]:
    """A configuration problem of a file agent names the agent."""
    try:
        yield
    except ConfigError as exc:
        if config.name == DEFAULT_AGENT:
            raise
        raise ConfigError(f"BRIDGE_AGENTS: agent {config.name}: {exc}") from None


def build_roster(base: Settings, shared: Shared) -> Roster:
    """Every agent, ready to serve (MCP servers connect when `start`ed); ConfigError on any problem."""
    configs = read_agents(base, _extra_names)
    agents: dict[str, Agent] = {}
    try:
        for config in configs:
            with _named(config):
                check_files(config.settings)
                agents[config.name] = _agent(config, shared)
    except BaseException:
        for agent in agents.values():
            shared.drop(agent.held)  # nothing was started: toolboxes hold no connection yet
        raise
    return Roster(agents)


def _agent(config: AgentConfig, shared: Shared) -> Agent:
    settings = config.settings
    held: list[tuple[str, Any]] = []
    toolbox: ToolBox | None = None
    knowledge: KnowledgeBase | None = None
    try:
        if settings.tools_file:
            toolbox = shared.hold(held, "tools", _tools_key(settings),
                                  lambda: load_toolbox(settings.tools_file or "", settings.env,
                                                       secrets=settings.secrets()))
        if settings.rag.knowledge_dir is not None:
            folder = Path(settings.rag.knowledge_dir)
            index = Path(settings.rag.knowledge_index) if settings.rag.knowledge_index else default_index_path(folder)
            knowledge = shared.hold(held, "knowledge", (str(folder), str(index)), lambda: _open(folder, index))
        pipeline = Pipeline(settings, build_upstreams(settings, shared.http), redact=shared.redact,
                            metrics=shared.metrics, inflight=shared.inflight, toolbox=toolbox)
    except BaseException:
        shared.drop(held)
        raise
    return Agent(config.name, settings, pipeline, config.own_tokens, knowledge, held=held)


def _open(folder: Path, index: Path) -> KnowledgeBase:
    """Build the index if missing or stale, then open it; a problem names KNOWLEDGE_DIR."""
    try:
        result = ensure_index(folder, index)
    except KnowledgeError as exc:
        raise ConfigError(f"KNOWLEDGE_DIR: {exc}") from None
    log = get_logger()
    log.info("knowledge_ready", index=str(result.path), passages=result.passages, built=result.built,
             seconds=round(result.seconds, 3))
    if result.passages == 0:
        log.warning("knowledge_empty", detail=f"no .md or .txt passages in KNOWLEDGE_DIR={folder}")
    return KnowledgeBase(result.path)


def _tools_key(settings: Settings) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """What makes two agents' toolboxes the same: the file, its content, the environment it reads."""
    path = settings.tools_file or ""
    try:
        data = Path(path).read_bytes()
    except OSError:
        data = b""  # loading it reports the problem
    names = sorted(set(_TOOLS_ENV.findall(data.decode("utf-8", "replace"))))
    return path, hashlib.sha256(data).hexdigest(), tuple((n, settings.env.get(n, "")) for n in names)


def _extra_names(settings: Settings) -> set[str]:
    """Variables an agent may set beside the bridge's settings: what its spec and tools file read."""
    names = env_names(settings)
    if settings.tools_file:
        try:
            names.update(_TOOLS_ENV.findall(Path(settings.tools_file).read_text(encoding="utf-8", errors="replace")))
        except OSError:
            pass
    return names


async def start(roster: Roster, probes: set[asyncio.Task[None]] | None = None) -> None:
    """Start the toolboxes' MCP connections, and each primary upstream's probe (both in the background)."""
    for box in roster.toolboxes():
        await box.start()
    if probes is not None:
        seen: set[tuple[str, str]] = set()
        for agent in roster:
            upstream = agent.pipeline.upstreams[0]
            key = (getattr(upstream, "base_url", ""), getattr(upstream, "headers", {}).get("Authorization", ""))
            if agent.settings.upstream.probe and hasattr(upstream, "probe") and key not in seen:
                seen.add(key)
                task = asyncio.get_running_loop().create_task(probe(agent))
                probes.add(task)
                task.add_done_callback(probes.discard)


async def probe(agent: Agent) -> None:
    """Ask an OpenAI-compatible upstream for its models once, and log what is wrong with the fix."""
    upstream: Any = agent.pipeline.upstreams[0]
    result = await upstream.probe(min(agent.settings.deadlines.connect + 2.0, PROBE_TIMEOUT))
    advice = probe_advice(result, agent.settings, upstream.where)
    log = get_logger()
    if advice is None:
        log.info("upstream_ok", agent=agent.name, upstream=upstream.name, models=len(result.models))
    else:
        log.warning("upstream_check", agent=agent.name, upstream=upstream.name, status=result.status, fix=advice)


def probe_advice(result: Any, settings: Settings, where: str) -> str | None:
    """What to change, from a start-up probe's answer (None: nothing looks wrong)."""
    if result.status is None:
        return f"could not reach {where} ({result.error}): check OPENAI_BASE_URL"
    if result.status in (401, 403):
        return f"{where} refused the key (HTTP {result.status}): check OPENAI_API_KEY"
    if result.status == 404:
        return (f"GET <OPENAI_BASE_URL>/models answered 404 at {where}: does OPENAI_BASE_URL end in /v1 "
                "(e.g. https://api.openai.com/v1)?")
    if result.status >= 400 or not result.models:
        return None  # a provider without a model list: nothing to say
    model = settings.default_model
    if model in result.models:
        return None
    offered = ", ".join(result.models[:5]) + (", ..." if len(result.models) > 5 else "")
    if settings.upstream.model:
        return f"UPSTREAM_MODEL={model!r} is not among the models {where} offers ({offered})"
    return (f"UPSTREAM_MODEL is not set, and the default model {model!r} is not among those {where} offers "
            f"({offered}): set UPSTREAM_MODEL")


def retire(old: Roster, shared: Shared) -> None:
    """After a reload: each old agent closes what it holds once its last call has ended."""
    for agent in old:
        agent.retired = True
        agent.on_idle = shared.release_soon
        if agent.active == 0:
            shared.release_soon(agent)


__all__ = ["DEFAULT_AGENT", "Agent", "Roster", "Shared", "build_roster", "check_configuration", "retire", "start"]
