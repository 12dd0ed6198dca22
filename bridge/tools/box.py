"""The toolbox the bridge core uses: tool definitions for the model, and calls that never raise."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import jsonschema

from bridge import jsonutil
from bridge.log import get_logger
from bridge.redaction import Redactor
from bridge.tools import results, schemas
from bridge.tools.http_tools import HttpRunner
from bridge.tools.loader import HttpToolSpec, ToolsConfig, load_config
from bridge.tools.results import ToolResult

if TYPE_CHECKING:
    from bridge.tools.mcp_client import McpLink

_MESSAGE_CHARS = 200


class ToolBox:
    """The bridge's own tools: HTTP endpoints from the file, plus what its MCP servers offer.

    When two tools share a name, the first one wins: HTTP tools, then MCP servers in file order.
    At most `limits.max_tools` are offered. The toolbox is `ready` once every MCP server has
    been listed or has failed its first attempt, or `startup_wait` seconds after `start()`;
    until then any name that is not an HTTP tool may be one of its own (`owns`).
    """

    def __init__(self, config: ToolsConfig, *, secrets: Iterable[str] = (),
                 retry: tuple[float, float] | None = None) -> None:
        self.config = config
        self.max_rounds = config.max_rounds
        self.filler = config.filler
        self.redact = Redactor([*config.secrets, *secrets])
        self.limits = config.limits
        self._http = {spec.name: spec for spec in config.tools}
        self._http_validators = {spec.name: schemas.build(spec.parameters) for spec in config.tools}
        self._runner = HttpRunner(self.redact)
        self.links: list[McpLink] = []
        if config.mcp_servers:  # the mcp SDK takes about half a second to import: only when it is used
            from bridge.tools.mcp_client import McpLink

            self.links = [McpLink(spec, self.redact, self._changed, limits=config.limits, retry=retry)
                          for spec in config.mcp_servers]
        self._owned = set(self._http)
        for spec in config.mcp_servers:
            self._owned |= spec.include or set()
        self._remembered: OrderedDict[str, None] = OrderedDict()  # MCP names listed since start-up, bounded
        self._definitions: list[dict[str, Any]] | None = None
        self._started = self._closed = False
        self._ready = asyncio.Event()
        # Which names the MCP servers may offer is known up front only when each has `include`.
        self._open = any(spec.include is None for spec in config.mcp_servers)
        if not self.links:
            self._ready.set()  # nothing to list
        self._ready_task: asyncio.Task[None] | None = None
        self.listed = asyncio.Event()  # set after every completed MCP listing (tests clear it, then wait)

    @property
    def ready(self) -> bool:
        """Every MCP server listed once or failed its first attempt, or the start-up wait is over."""
        return self._ready.is_set()

    async def wait_ready(self) -> None:
        """Until `ready` (at most `startup_wait` seconds after `start()`)."""
        await self._ready.wait()

    def definitions(self) -> list[dict[str, Any]]:
        """The tools callable now, in OpenAI Chat Completions form (a new list; do not mutate the items)."""
        if self._definitions is None:
            self._definitions = self._build_definitions()
        return list(self._definitions)

    def owns(self, name: str) -> bool:
        """Whether a call to `name` is the bridge's to answer, not the caller's.

        True for its tools, also while their MCP server is briefly away, and for any name
        while the toolbox is not `ready` and an MCP server without `include` is still being
        listed (such a call is answered as an unknown tool, never passed to the caller).
        """
        if name in self._owned or name in self._remembered or (self._open and not self._ready.is_set()):
            return True
        return any(name in link.tools for link in self.links)

    def label(self, name: str) -> str:
        """`name` as a metrics label: one of the toolbox's tools, else "unknown" (a model's
        invented names must not grow the metrics without a bound)."""
        known = name in self._owned or name in self._remembered or any(name in link.tools for link in self.links)
        return name[:64] if known else "unknown"

    async def start(self) -> None:
        """Start connecting to the MCP servers in the background; never waits for them."""
        if self._started or self._closed:
            return
        self._started = True
        self._runner.session()
        for link in self.links:
            link.start()
        self._ready_task = asyncio.create_task(self._become_ready(), name="tools ready")

    async def aclose(self) -> None:
        """Close the HTTP session, the MCP connections and their tasks; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._ready_task is not None:
            self._ready_task.cancel()
            await asyncio.wait([self._ready_task])
        for link in self.links:
            await link.aclose()
        await self._runner.aclose()

    async def _become_ready(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.config.startup_wait):
                for link in self.links:
                    await link.attempted.wait()
        waiting = [link.url for link in self.links if not link.attempted.is_set()]
        if waiting:
            get_logger().warning("tools_startup_wait_over", waited_s=self.config.startup_wait, mcp_servers=waiting)
        self._ready.set()

    async def call(self, name: str, arguments: str, timeout: float | None = None) -> ToolResult:
        """Run tool `name` with the model's JSON `arguments`; never raises but CancelledError."""
        started = time.perf_counter()
        try:
            outcome, content = await self._call(name, arguments, timeout)
        except Exception as exc:  # a bug here must not end the caller's turn
            outcome, content = results.ERROR, f"error: the tool {name[:64]} failed ({type(exc).__name__})"
        return ToolResult(name, content, outcome, (time.perf_counter() - started) * 1000)

    async def _call(self, name: str, arguments: str, timeout: float | None) -> tuple[str, str]:
        if self._closed:
            return results.ERROR, "error: tools are not available (the bridge is shutting down)"
        http, link = self._http.get(name), self._link_for(name)
        if http is not None:
            validator, limit = self._http_validators[name], http.timeout
        elif link is not None:
            validator, limit = link.tools[name].validator, link.spec.timeout
        else:
            return self._missing(name)
        args = parse_arguments(name, arguments, validator)
        if isinstance(args, str):
            return results.BAD_ARGUMENTS, args
        if timeout is not None:
            limit = min(limit, timeout)
        if limit <= 0:
            return results.TIMEOUT, f"error: no time was left to run the tool {name[:64]}"
        if http is not None:
            return await self._runner.run(http, args, limit)
        assert link is not None
        return await link.call(name, args, limit)

    def _missing(self, name: str) -> tuple[str, str]:
        """What a call to a name no tool has now reads."""
        if name in self._owned or name in self._remembered:
            return results.ERROR, f"error: the tool {name} is unavailable right now"
        if self._open and not self._ready.is_set():
            return results.UNKNOWN_TOOL, (f"error: there is no tool named {name[:64]!r} yet (the bridge's tools "
                                          "are still being listed)")
        return results.UNKNOWN_TOOL, f"error: there is no tool named {name[:64]!r}"

    def _link_for(self, name: str) -> McpLink | None:
        for link in self.links:
            if name in link.tools:
                return link
        return None

    def _changed(self, listed: bool) -> None:
        """A link's tools changed: offer them anew, and remember their names (a bounded memory)."""
        self._definitions = None
        remembered = self._remembered
        for link in self.links:
            for name in link.tools:
                remembered[name] = None
                remembered.move_to_end(name)
        while len(remembered) > self.limits.max_remembered_names:
            remembered.popitem(last=False)
        if listed:
            self.listed.set()

    def _build_definitions(self) -> list[dict[str, Any]]:
        """HTTP tools, then each MCP server's, first name wins, at most `limits.max_tools`."""
        out = [_definition(spec) for spec in self.config.tools]
        taken = set(self._http)
        room = self.limits.max_tools - len(out)
        for link in self.links:
            for name, tool in link.tools.items():
                if room <= 0:
                    return out
                if name not in taken:
                    taken.add(name)
                    out.append(tool.definition)
                    room -= 1
        return out


def parse_arguments(name: str, text: str, validator: Any) -> dict[str, Any] | str:
    """The arguments object, or a short message the model can act on."""
    try:
        args = jsonutil.loads(text) if text.strip() else {}
    except ValueError as exc:
        return f"error: the arguments for {name} are not valid JSON ({_short(str(exc))}); send a JSON object"
    if not isinstance(args, dict):
        return f"error: the arguments for {name} must be a JSON object"
    error = jsonschema.exceptions.best_match(validator.iter_errors(args))
    if error is not None:
        where = ".".join(str(step) for step in error.absolute_path) or "arguments"
        return f"error: bad arguments for {name}: {where}: {_short(error.message)}"
    return args


def load_toolbox(path: str, env: Mapping[str, str], *, secrets: Iterable[str] = ()) -> ToolBox:
    """Read, validate and resolve the BRIDGE_TOOLS file; ConfigError on any problem."""
    return ToolBox(load_config(path, env), secrets=secrets)


def _definition(spec: HttpToolSpec) -> dict[str, Any]:
    return {"type": "function",
            "function": {"name": spec.name, "description": spec.description, "parameters": spec.parameters}}


def _short(text: str) -> str:
    return text if len(text) <= _MESSAGE_CHARS else text[:_MESSAGE_CHARS] + "..."
