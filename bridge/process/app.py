"""The aiohttp application: its routes, the access middleware, start-up, reload and clean-up.

`create_app(settings)` builds everything the configuration names (the agents, their
upstreams, tools and knowledge) and raises ConfigError, naming the setting, when anything is
wrong: a bad deploy stops before it serves. `reload(app)` reads BRIDGE_AGENTS again: on
SIGHUP (bridge/process/lifecycle.py), and when the file changes.
"""

from __future__ import annotations

import asyncio
import os
import warnings
from typing import TextIO

from aiohttp import web

from bridge.config import ConfigError, Settings, read_settings
from bridge.inbound import routes
from bridge.inbound.context import AGENT_PATH, SERVICES, Services
from bridge.log import bound_logger, configure_logging, get_logger
from bridge.metrics import Metrics
from bridge.pipeline import InFlight
from bridge.pipeline.agents import Roster, Shared, build_roster, retire, start
from bridge.process import ops
from bridge.process.access import access_log
from bridge.process.state import PROCESS, ProcessState
from bridge.redaction import Redactor
from bridge.tools import ToolBox

# Header limits: generous for real clients (long Bearer tokens, Agora's llm.headers), small
# enough that a hostile client cannot make us buffer much before the body cap applies.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 16384
# After an answer sent before the body was read (a 408, a 413), aiohttp keeps reading the rest
# so the caller sees the answer rather than a reset: briefly (its default 10 s would let slow
# callers hold connections well past BODY_TIMEOUT).
LINGERING_TIME = 1.0
WATCH_INTERVAL = 1.0  # seconds between two looks at BRIDGE_AGENTS' file


def create_app(settings: Settings | None = None, *, log_stream: TextIO | None = None) -> web.Application:
    """Build the application; raises ConfigError when the configuration is invalid."""
    settings = settings or read_settings()
    redact = Redactor(settings.secrets())
    configure_logging(settings.server.log_level, redact, log_stream)
    # aiohttp warns (to stderr, quoting the header) about malformed multipart part headers; the
    # request gets its 400 regardless.
    warnings.filterwarnings("ignore", module="aiohttp.multipart")
    metrics = Metrics()
    inflight = InFlight(settings.server.max_concurrency, metrics)
    shared = Shared(metrics, redact, inflight)
    roster = build_roster(settings, shared)
    redact.add(secret for agent in roster for secret in agent.settings.secrets())
    app = web.Application(
        client_max_size=settings.server.max_body_bytes,
        middlewares=[access_log],
        handler_args={"max_line_size": MAX_LINE_SIZE, "max_field_size": MAX_FIELD_SIZE,
                      "lingering_time": LINGERING_TIME},
    )
    services = Services(settings, roster, metrics)
    app[SERVICES] = services
    app[PROCESS] = ProcessState(settings=settings, services=services, inflight=inflight, shared=shared,
                                metrics=metrics, access_log=bound_logger())
    routes.setup(app)
    for route in routes.ROUTES:
        app.router.add_route(route.method, route.path, route.handler)
        app.router.add_route(route.method, AGENT_PATH + route.path, route.handler)
    app.router.add_get("/healthz", ops.healthz)
    app.router.add_get("/readyz", ops.readyz)
    app.router.add_get("/metrics", ops.metrics)
    app.on_startup.append(_start)
    app.on_cleanup.append(_close)
    return app


async def reload(app: web.Application) -> bool:
    """Read BRIDGE_AGENTS again and serve the new agents; False (and a log line) when the file is
    wrong, in which case the running agents stay. Calls in flight finish on the agents they began with."""
    state = app[PROCESS]
    log = get_logger()
    async with state.reloading:  # one at a time: a SIGHUP and a file change may come together
        try:
            roster = await asyncio.to_thread(build_roster, state.settings, state.shared)
        except ConfigError as exc:
            log.error("reload_failed", error=str(exc), detail="the running agents stay")
            return False
        state.shared.redact.add(secret for agent in roster for secret in agent.settings.secrets())
        await start(roster)
        # New MCP servers get their startup_wait before the new agents serve (at start-up /readyz
        # holds traffic as long): a call meanwhile would find the model offered none of their tools.
        await asyncio.gather(*(box.wait_ready() for box in roster.toolboxes()))
        retire(state.services.swap(roster), state.shared)
    log.info("reloaded", agents=sorted(roster.agents))
    return True


async def _start(app: web.Application) -> None:
    roster = app[SERVICES].roster
    state = app[PROCESS]
    await start(roster, state.probes)
    loop = asyncio.get_running_loop()
    for box in roster.toolboxes():  # once listed (MCP servers connect in the background)
        task = loop.create_task(_tools_ready(box))
        state.probes.add(task)
        task.add_done_callback(state.probes.discard)
    _announce(state.settings, roster)
    if state.settings.server.agents_file:
        state.watcher = asyncio.get_running_loop().create_task(_watch(app, state.settings.server.agents_file))


async def _tools_ready(box: ToolBox) -> None:
    await box.wait_ready()
    get_logger().info("tools_ready", tools=[d["function"]["name"] for d in box.definitions()],
                      mcp_servers=len(box.links))


async def _watch(app: web.Application, path: str) -> None:
    """Reload when the agents file changes (a ConfigMap update, an edit): its stat is polled."""
    seen = _stamp(path)
    while True:
        await asyncio.sleep(WATCH_INTERVAL)
        now = _stamp(path)
        if now != seen:
            seen = now
            try:
                await reload(app)
            except Exception:  # the watch outlives any one reload's surprise
                get_logger().exception("reload_failed", detail="the running agents stay")


def _stamp(path: str) -> tuple[int, int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_ino, info.st_mtime_ns, info.st_size


def _announce(settings: Settings, roster: Roster) -> None:
    log = get_logger()
    open_agents = sorted(agent.name for agent in roster if not agent.tokens)
    if len(open_agents) == len(roster.agents):
        log.warning("auth_disabled", detail="BRIDGE_TOKENS is empty: every request is accepted")
    elif open_agents:
        log.warning("auth_disabled", agents=open_agents,
                    detail="these agents accept every request (the environment's BRIDGE_TOKENS is empty)")
    if roster.default.pipeline.upstreams[0].name == "echo":
        log.warning("echo_active", detail="UPSTREAM is echo: answers repeat the caller; set OPENAI_BASE_URL "
                    "or UPSTREAM to use a real model")
    if len(roster.agents) > 1:
        log.info("agents", agents=sorted(roster.agents), file=settings.server.agents_file)


async def _close(app: web.Application) -> None:
    state = app[PROCESS]
    if state.watcher is not None:
        state.watcher.cancel()
    for task in list(state.probes):
        task.cancel()
    for agent in state.services.roster:
        await state.shared.release(agent)
    await state.shared.aclose()
