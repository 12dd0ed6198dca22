"""docs/tools.md's worked example, end to end: its JSON file, the real loader, the real app.

The example's `${env...}` URLs point at a fake order API (aiohttp) and a real MCP server (the
SDK's MCPServer) on 127.0.0.1; a fake model calls both tools in one round, then answers from
their results. The caller hears the filler, then that answer, and never sees a tool call; the
stream and the log line are what the doc prints. The doc's blocks say what they are
(tests/support/docs.py): ```json tools, ```sse worked-example, ```json worked-example-log,
```text tools-errors (each error line reproduced here); its start commands run in
tests/test_docs_examples.py.
"""

from __future__ import annotations

import asyncio
import copy
import json
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from bridge.config import ConfigError
from bridge.inbound.context import SERVICES
from bridge.tools import load_toolbox
from tests.support.app import log_lines, sse_events
from tests.support.docs import Block, blocks, text_matches
from tests.support.mcp_server import McpTestServer
from tests.support.upstream import FakeUpstream, sse, text_chunks

DOC = Path(__file__).resolve().parent.parent / "docs" / "tools.md"
ORDERS_TOKEN = "orders-token-7Hq2Wm4Rz"
HELPDESK_TOKEN = "helpdesk-token-3Kd8Vn1Xs"
ORDER_ARGS = {"order_id": "A-1042"}
TICKET_ARGS = {"order_id": "A-1042", "summary": "Caller asks where the parcel is"}


def shown(kind: str) -> list[Block]:
    return [b for b in blocks(DOC) if b.kind == kind]


def example() -> dict[str, Any]:
    """The doc's tools file (its one ```json tools block)."""
    (block,) = shown("json tools")
    return json.loads(block.text)  # type: ignore[no-any-return]


class OrdersApi:
    """GET /v1/order-status?order_id=...: the shop's order API."""

    def __init__(self) -> None:
        self.queries: list[dict[str, str]] = []
        self.auth: list[str | None] = []
        app = web.Application()
        app.router.add_get("/v1/order-status", self.status)
        self.server = TestServer(app, host="127.0.0.1")

    async def status(self, request: web.Request) -> web.Response:
        self.queries.append(dict(request.query))
        self.auth.append(request.headers.get("Authorization"))
        return web.json_response({"order_id": request.query["order_id"], "status": "shipped", "eta": "Thursday"})


class Helpdesk(McpTestServer):
    """A real MCP server whose tools include `open_ticket` (and one the example does not include)."""

    def __init__(self) -> None:
        self.tickets: list[dict[str, str]] = []
        super().__init__()

    def _add_tools(self) -> None:
        tickets = self.tickets

        @self.mcp.tool()
        def open_ticket(order_id: str, summary: str) -> str:
            """Open a support ticket about an order."""
            tickets.append({"order_id": order_id, "summary": summary})
            return f"Ticket T-{len(tickets)} opened for {order_id}"

        @self.mcp.tool()
        def delete_customer(customer_id: str) -> str:
            """Not for the phone agent."""
            raise AssertionError("never offered, never called")


@pytest.fixture
async def orders() -> AsyncIterator[OrdersApi]:
    api = OrdersApi()
    await api.server.start_server()
    yield api
    await api.server.close()


@pytest.fixture
def helpdesk() -> Iterator[Helpdesk]:
    server = Helpdesk()
    server.start()
    yield server
    server.stop()


def model_calling_both_tools(fake: FakeUpstream) -> None:
    """Round 1: call get_order_status and open_ticket. Round 2: answer from the two results."""
    base = text_chunks([])[0]

    async def handler(request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        if messages[-1]["role"] == "tool":
            status, ticket = (m["content"] for m in messages[-2:])
            order = json.loads(status)
            answer = (f"Your order {order['order_id']} has {order['status']} and should arrive on {order['eta']}. "
                      f"{ticket}.")
            return web.Response(body=sse(text_chunks([answer])), content_type="text/event-stream")
        calls = [("get_order_status", ORDER_ARGS), ("open_ticket", TICKET_ARGS)]
        chunks = [base] + [{**base, "choices": [{"index": 0, "delta": {"tool_calls": [{
            "index": i, "id": f"call_{i}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(args)}}]}, "finish_reason": None}]}
            for i, (name, args) in enumerate(calls)]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]})
        return web.Response(body=sse(chunks), content_type="text/event-stream")

    fake.handler = handler


async def test_the_worked_example_runs_end_to_end(bridge, fake_upstream, orders, helpdesk, tmp_path, log_stream):
    doc = example()
    path = tmp_path / "tools.json"
    path.write_text(json.dumps(doc))
    env = {"ORDERS_API_URL": str(orders.server.make_url("")).rstrip("/"), "ORDERS_API_TOKEN": ORDERS_TOKEN,
           "HELPDESK_MCP_URL": helpdesk.url, "HELPDESK_MCP_TOKEN": HELPDESK_TOKEN}

    # the real loader reads it as the doc says
    box = load_toolbox(str(path), env)
    assert box.filler == doc["filler"] == "One moment, let me check that for you." and box.max_rounds == 3
    assert box.config.tools[0].url == env["ORDERS_API_URL"] + "/v1/order-status"
    assert [d["function"]["name"] for d in box.definitions()] == ["get_order_status"]  # MCP not started
    assert box.owns("open_ticket") and not box.owns("delete_customer")

    # the real app, started with BRIDGE_TOOLS and the variables the file names
    model_calling_both_tools(fake_upstream)
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOOLS": str(path), **env})
    toolbox = client.server.app[SERVICES].roster.default.pipeline.toolbox
    for _ in range(500):  # the MCP server connects in the background: wait for its listing, boundedly
        if len(toolbox.definitions()) == 2:
            break
        await asyncio.sleep(0.01)
    assert [d["function"]["name"] for d in toolbox.definitions()] == ["get_order_status", "open_ticket"]
    answer = "Your order A-1042 has shipped and should arrive on Thursday. Ticket T-1 opened for A-1042."

    # Agora's route, streaming: the filler first, then the answer; no tool call reaches the caller
    resp = await client.post("/chat/completions", json={
        "model": "m", "stream": True, "messages": [{"role": "user", "content": "Where is my order A-1042?"}]})
    assert resp.status == 200
    streamed = await resp.text()
    (printed,) = shown("sse worked-example")
    assert text_matches(printed.text, streamed), streamed
    events = [e for e in sse_events(streamed) if e.get("choices")]
    texts = [e["choices"][0]["delta"].get("content") or "" for e in events]
    assert texts[0] == "One moment, let me check that for you."
    assert "".join(texts) == "One moment, let me check that for you. " + answer  # joined as speech
    assert not any(e["choices"][0]["delta"].get("tool_calls") for e in events)
    assert events[-1]["choices"][0]["finish_reason"] == "stop"

    # each tool was called with the model's arguments and the file's secret headers
    assert orders.queries == [ORDER_ARGS] and orders.auth == [f"Bearer {ORDERS_TOKEN}"]
    assert helpdesk.tickets == [TICKET_ARGS]
    assert all(h.get("authorization") == f"Bearer {HELPDESK_TOKEN}" for h, _ in helpdesk.requests)
    offered = [t["function"]["name"] for t in fake_upstream.requests[0].json()["tools"]]
    assert offered == ["get_order_status", "open_ticket"]
    line = log_lines(log_stream)[-1]
    assert [(t["name"], t["outcome"], t["round"]) for t in line["tools"]] == [
        ("get_order_status", "ok", 1), ("open_ticket", "ok", 1)]
    (printed_log,) = shown("json worked-example-log")
    logged = json.loads(printed_log.text)
    assert line["route"] == logged["route"]
    for doc_tool, tool in zip(logged["tools"], line["tools"], strict=True):  # the same fields; `ms` is measured
        assert set(tool) == set(doc_tool) and {**tool, "ms": doc_tool["ms"]} == doc_tool and tool["ms"] >= 0

    # IMS's Alibaba-spec form: one Text with the answer, no filler
    resp = await client.post("/", data={"Message": json.dumps([{"role": "user", "content": "Where is A-1042?"}])})
    assert await resp.json() == {"Text": answer.replace("T-1", "T-2")}
    assert len(orders.queries) == 2 and len(helpdesk.tickets) == 2
    assert ORDERS_TOKEN not in log_stream.getvalue() and HELPDESK_TOKEN not in log_stream.getvalue()


# the error lines the doc prints -> the change to the worked example that makes each
MISTAKES: dict[str, Any] = {
    "tools[0].http.timeout": lambda doc: doc["tools"][0]["http"].update(timeout=100),
    "tools[0].http": lambda doc: doc["tools"][0]["http"].update(verb="GET"),
    "tools[1].name": lambda doc: doc["tools"].append(copy.deepcopy(doc["tools"][0])),
    "mcp_servers[0].url": lambda doc: doc["mcp_servers"][0].update(url="file:///etc/passwd"),
}


def error_lines() -> list[str]:
    return [line for block in shown("text tools-errors") for line in block.text.splitlines() if line]


@pytest.mark.parametrize("line", error_lines())
def test_an_error_the_doc_prints_is_the_one_start_up_gives(tmp_path, line: str) -> None:
    match = re.match(r"BRIDGE_TOOLS: (\S+): (\S+): ", line)
    assert match is not None and match.group(2) in MISTAKES, f"no mistake makes: {line}"
    doc = example()
    MISTAKES[match.group(2)](doc)
    path = tmp_path / match.group(1)
    path.write_text(json.dumps(doc))
    env = {"ORDERS_API_URL": "https://orders.example.com", "ORDERS_API_TOKEN": ORDERS_TOKEN,
           "HELPDESK_MCP_URL": "https://helpdesk.example.com/mcp", "HELPDESK_MCP_TOKEN": HELPDESK_TOKEN}
    with pytest.raises(ConfigError) as caught:
        load_toolbox(str(path), env)
    assert str(caught.value).replace(str(path), match.group(1)) == line
