"""What the routes need from the process: the agents and the gate before them, the process's
settings, and each request's log record and agent.

The process (bridge/process/app.py) builds `Services` once and swaps its `roster` on a
reload; a route resolves its caller's agent with `agent_for` and keeps it for the request
(the access middleware releases it when the answer is done).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from aiohttp import web

from bridge.config import Settings
from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.auth import Gate
from bridge.log import RequestLog
from bridge.metrics import Metrics
from bridge.pipeline.agents import Agent, Roster

AGENT_PATH = "/agents/{agent}"  # every route is also served under its agent's own path


@dataclass(slots=True)
class Services:
    """Per process: its settings (the environment's), the agents serving now, and their gate.

    `metrics` are for a route that counts what it answers itself (each turn on a WebSocket);
    `closing` is set when the drain closes the listener: the Responses WebSocket then ends its
    connections between responses, so its clients reconnect elsewhere (a call's socket stays
    until its call ends or the drain's cut says goodbye).
    """

    settings: Settings
    roster: Roster
    metrics: Metrics = field(default_factory=Metrics)
    gate: Gate = field(init=False)
    started: float = field(default_factory=time.time)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        self.gate = Gate(self.roster, self.roster.default)

    def swap(self, roster: Roster) -> Roster:
        """Serve `roster` from now on; the one it replaces is returned (to retire)."""
        old, self.roster = self.roster, roster
        self.gate = Gate(roster, roster.default)
        return old


SERVICES = web.AppKey("services", Services)
LOG = web.RequestKey("log", RequestLog)
AGENT = web.RequestKey("agent", Agent)


def log_of(request: web.Request) -> RequestLog:
    """The request's log record, filled by handlers and written once by the access middleware."""
    return request[LOG]


def agent_for(request: web.Request, token: str | None, refusal: str = "Invalid or missing token.") -> Agent:
    """The agent that answers this request: the one its path names, else the one its token chooses.

    BridgeError: an unknown agent (404, `not_found`), a token that reaches none (401).
    """
    services = request.app[SERVICES]
    name = request.match_info.get("agent")
    if name is None:
        agent = services.gate.choose(token)
    else:
        agent = services.roster.get(name)
        if agent is None:
            raise BridgeError(ErrorKind.NOT_FOUND, f"No agent named {name[:64]!r}.")
        if not services.gate.allows(agent, token):
            agent = None
    if agent is None:
        raise BridgeError(ErrorKind.AUTH, refusal)
    return use_agent(request, agent)


def use_agent(request: web.Request, agent: Agent) -> Agent:
    """Keep `agent` for this request (released when the answer is done) and name it on the log line.

    For a route that established the caller otherwise (a platform's signed handshake).
    """
    agent.enter()
    request[AGENT] = agent
    log_of(request).agent = agent.name
    return agent
