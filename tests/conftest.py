"""Shared fixtures: the real app on a loopback port, and real fakes around it (tests/support/)."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING

import pytest

from tests.support.app import BridgeFactory, LogStream, bridges
from tests.support.raw_mcp import RawMcpServer
from tests.support.tool_servers import OutcomeToolServer, WeatherToolServer
from tests.support.upstream import FakeUpstream

if TYPE_CHECKING:
    from tests.support.mcp_server import McpTestServer


@pytest.fixture
def mcp_server() -> Iterator[McpTestServer]:
    """A real MCP server (the mcp SDK's own) on 127.0.0.1: tests/support/mcp_server.py."""
    from tests.support.mcp_server import McpTestServer  # the SDK is imported only by the tests that use it

    server = McpTestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def fake_upstream() -> AsyncIterator[FakeUpstream]:
    fake = FakeUpstream()
    await fake.start()
    yield fake
    await fake.close()


@pytest.fixture
async def raw_mcp() -> AsyncIterator[RawMcpServer]:
    """An MCP server on raw streamable HTTP that can misbehave on purpose (tests/support/raw_mcp.py)."""
    server = RawMcpServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def weather_server() -> AsyncIterator[WeatherToolServer]:
    """One HTTP tool, POST /weather, for the end-to-end tool loop (tests/test_tools_loop.py)."""
    server = WeatherToolServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
async def outcome_server() -> AsyncIterator[OutcomeToolServer]:
    """One path per kind of answer a tool call can get, for the toolbox's tests (tests/test_tools_box.py)."""
    server = OutcomeToolServer()
    await server.start()
    yield server
    await server.close()


@pytest.fixture
def log_stream() -> LogStream:
    """Everything the app logs during the test."""
    return LogStream()


@pytest.fixture
def bridge_defaults() -> dict[str, str]:
    """Environment every `bridge(...)` app starts with; a test module may override it."""
    return {}


@pytest.fixture
async def bridge(log_stream: io.StringIO, bridge_defaults: dict[str, str]) -> AsyncIterator[BridgeFactory]:
    """`await bridge({"ENV": "value"})` starts the real app on 127.0.0.1 and returns a client."""
    async with bridges(log_stream, bridge_defaults) as make:
        yield make
