"""Several agents in one deployment (BRIDGE_AGENTS): chosen by token or by path, each with its
own upstream, prompt, model and key, inheriting the rest from the environment, reloaded on SIGHUP."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, read_settings
from bridge.inbound.context import SERVICES
from bridge.process.app import create_app, reload
from tests.support.app import log_lines
from tests.support.docs import blocks
from tests.support.upstream import FakeUpstream

SALES_TOKEN = "sales-tok-1234"
SUPPORT_TOKEN = "support-tok-5678"
ENV_TOKEN = "env-tok-9012"
SALES_KEY = "sk-sales-secret-abcdef123456"
SUPPORT_KEY = "sk-support-secret-abcdef654321"


def rewrite(path: str, text: str) -> None:
    Path(path).write_text(text)


def agents_file(tmp_path: Path, agents: dict[str, Any], name: str = "agents.json") -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"agents": agents}))
    return str(path)


@pytest.fixture
def two_upstreams(fake_upstream: FakeUpstream) -> FakeUpstream:
    return fake_upstream


def two_agents(tmp_path: Path, sales_url: str, support_url: str) -> dict[str, str]:
    """The environment of a deployment with a sales and a support agent on two upstreams."""
    path = agents_file(tmp_path, {
        "sales": {"OPENAI_BASE_URL": sales_url + "/v1", "OPENAI_API_KEY": "${SALES_KEY}",
                  "UPSTREAM_MODEL": "sales-model", "SYSTEM_PROMPT": "You sell.", "BRIDGE_TOKENS": SALES_TOKEN},
        "support": {"OPENAI_BASE_URL": support_url + "/v1", "OPENAI_API_KEY": "${SUPPORT_KEY}",
                    "UPSTREAM_MODEL": "support-model", "SYSTEM_PROMPT": "You help.", "BRIDGE_TOKENS": SUPPORT_TOKEN},
    })
    return {"BRIDGE_AGENTS": path, "SALES_KEY": SALES_KEY, "SUPPORT_KEY": SUPPORT_KEY, "BRIDGE_TOKENS": ENV_TOKEN,
            "MAX_HISTORY": "7"}


@pytest.fixture
async def second_upstream() -> Any:
    fake = FakeUpstream(reply=["Support", " here."])
    await fake.start()
    yield fake
    await fake.close()


def chat(token: str, text: str = "hello") -> tuple[dict[str, Any], dict[str, str]]:
    return ({"model": "caller-model", "messages": [{"role": "user", "content": text}]},
            {"Authorization": f"Bearer {token}"})


async def test_a_token_chooses_its_agent_on_the_openai_and_form_routes(bridge, fake_upstream, second_upstream,
                                                                        tmp_path, log_stream):
    client = await bridge(two_agents(tmp_path, fake_upstream.url, second_upstream.url))
    body, headers = chat(SALES_TOKEN)
    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status == 200 and (await resp.json())["choices"][0]["message"]["content"] == "Hello, world!"
    sent = fake_upstream.last
    assert sent.json()["model"] == "sales-model" and sent.headers["Authorization"] == f"Bearer {SALES_KEY}"
    assert sent.json()["messages"][0] == {"role": "system", "content": "You sell."}

    resp = await client.post("/", data={"Message": "hi", "Token": SUPPORT_TOKEN})
    assert resp.status == 200 and await resp.json() == {"Text": "Support here."}
    sent = second_upstream.last
    assert sent.json()["model"] == "support-model" and sent.headers["Authorization"] == f"Bearer {SUPPORT_KEY}"
    assert sent.json()["messages"][0] == {"role": "system", "content": "You help."}

    lines = [line for line in log_lines(log_stream) if line.get("event") == "request"]
    assert [line["agent"] for line in lines] == ["sales", "support"]
    assert SALES_KEY not in log_stream.getvalue() and SUPPORT_KEY not in log_stream.getvalue()


async def test_an_agent_by_path_and_a_token_of_another_agent(bridge, fake_upstream, second_upstream, tmp_path):
    client = await bridge(two_agents(tmp_path, fake_upstream.url, second_upstream.url))
    body, headers = chat(SUPPORT_TOKEN)
    resp = await client.post("/agents/support/v1/chat/completions", json=body, headers=headers)
    assert resp.status == 200 and len(second_upstream.requests) == 1
    resp = await client.post("/agents/sales/v1/chat/completions", json=body, headers=headers)
    assert resp.status == 401 and (await resp.json())["error"]["code"] == "invalid_api_key"
    resp = await client.post("/agents/sales/", data={"Message": "hi", "Token": SUPPORT_TOKEN})
    assert resp.status == 401 and await resp.json() == {"error": "Token: missing or invalid"}
    resp = await client.post("/agents/nobody/v1/chat/completions", json=body, headers=headers)
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.post("/v1/chat/completions", json=body, headers={"Authorization": "Bearer wrong"})
    assert resp.status == 401
    assert len(fake_upstream.requests) == 0 and len(second_upstream.requests) == 1


async def test_the_environment_is_the_default_agent_and_what_an_agent_inherits(bridge, fake_upstream,
                                                                                second_upstream, tmp_path):
    env = two_agents(tmp_path, fake_upstream.url, second_upstream.url)
    env["OPENAI_BASE_URL"] = second_upstream.url + "/v1"
    env["UPSTREAM_MODEL"] = "env-model"
    client = await bridge(env)
    long = [{"role": "user", "content": f"turn {i}"} for i in range(20)]
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": long},
                             headers={"Authorization": f"Bearer {ENV_TOKEN}"})
    assert resp.status == 200 and second_upstream.last.json()["model"] == "env-model"
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": long},
                             headers={"Authorization": f"Bearer {SALES_TOKEN}"})
    assert resp.status == 200
    assert len(fake_upstream.last.json()["messages"]) == 1 + 7  # its prompt, and MAX_HISTORY from the environment


async def test_models_answers_the_callers_agent(bridge, fake_upstream, second_upstream, tmp_path):
    client = await bridge(two_agents(tmp_path, fake_upstream.url, second_upstream.url))
    for token, model in ((SALES_TOKEN, "sales-model"), (SUPPORT_TOKEN, "support-model")):
        resp = await client.get("/v1/models", headers={"Authorization": f"Bearer {token}"})
        assert [m["id"] for m in (await resp.json())["data"]] == [model]


async def test_the_agent_label_on_metrics(bridge, fake_upstream, second_upstream, tmp_path):
    client = await bridge(two_agents(tmp_path, fake_upstream.url, second_upstream.url))
    body, headers = chat(SALES_TOKEN)
    assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status == 200
    text = await (await client.get("/metrics")).text()
    assert 'bridge_requests_total{agent="sales",route="/v1/chat/completions",status="200"} 1.0' in text


@pytest.mark.parametrize(("agents", "env", "message"), [
    ({"sales": {"OPENAI_BASE_URLL": "http://x/v1"}}, {},
     r"agent sales: OPENAI_BASE_URLL: not a setting the bridge knows \(did you mean OPENAI_BASE_URL\?\)"),
    ({"sales": {"MAX_HISTORY": "ten"}}, {}, r"agent sales: MAX_HISTORY: expected a whole number, got 'ten'"),
    ({"sales": {"MAX_HISTORY": True}}, {}, r"agent sales: MAX_HISTORY: must be a string \(or a number\), got bool"),
    ({"sales": {"OPENAI_API_KEY": "${MISSING_KEY}"}}, {},
     r"agent sales: OPENAI_API_KEY: \$\{MISSING_KEY\} names an environment variable that is not set"),
    ({"Sales Line": {}}, {}, r"agent 'Sales Line': a name is 1 to 64 lowercase letters"),
    ({"sales": {"PORT": "9000"}}, {}, r"agent sales: PORT: is a process-wide setting"),
    ({"sales": {"BRIDGE_TOKENS": "same"}, "support": {"BRIDGE_TOKENS": "same"}}, {},
     "agents sales and support list the same token"),
    ({"sales": {"BRIDGE_TOKENS": "a b"}}, {}, "agent sales: BRIDGE_TOKENS: a token contains whitespace"),
    ({"sales": {"BRIDGE_TOKENS": "${EMPTY}"}}, {"EMPTY": ""}, "agent sales: BRIDGE_TOKENS: is empty"),
    ({"sales": {"UPSTREAM": "nonesuch"}}, {}, "agent sales: UPSTREAM: unknown upstream 'nonesuch'"),
])
def test_a_bad_agents_file_stops_start_up_with_one_line(tmp_path, agents, env, message):
    settings = read_settings({"BRIDGE_AGENTS": agents_file(tmp_path, agents), "BRIDGE_TOKENS": "env-tok-1", **env})
    with pytest.raises(ConfigError, match=message):
        create_app(settings)


def test_a_specs_own_variable_may_be_set_per_agent(tmp_path):
    """MiniMax's group id is read by its spec (`${env.MINIMAX_GROUP_ID}`): an agent may set it."""
    path = agents_file(tmp_path, {"cn": {"UPSTREAM": "minimax", "UPSTREAM_API_KEY": "k" * 20,
                                         "MINIMAX_GROUP_ID": "g-123"}})
    app = create_app(read_settings({"BRIDGE_AGENTS": path}))
    assert app[SERVICES].roster.get("cn") is not None


def test_an_original_format_specs_variable_may_be_set_per_agent(tmp_path):
    """The original format's `${groupid}` reads GROUPID (specs/README.md): an agent may set that too."""
    path = agents_file(tmp_path, {"cn": {"UPSTREAM": "specs/original/minimax.json", "UPSTREAM_API_KEY": "k" * 20,
                                         "GROUPID": "g-123"}})
    app = create_app(read_settings({"BRIDGE_AGENTS": path}))
    assert app[SERVICES].roster.get("cn") is not None


def test_agents_that_configure_the_same_thing_share_it(tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps({"tools": [{"name": "lookup", "description": "d", "parameters": {"type": "object"},
                                            "http": {"url": "http://127.0.0.1:9/x"}}]}))
    path = agents_file(tmp_path, {"a": {"SYSTEM_PROMPT": "A", "BRIDGE_TOOLS": str(tools)},
                                  "b": {"SYSTEM_PROMPT": "B", "BRIDGE_TOOLS": str(tools)}})
    app = create_app(read_settings({"BRIDGE_AGENTS": path, "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"}))
    roster = app[SERVICES].roster
    a, b, default = roster.get("a"), roster.get("b"), roster.default
    assert a is not None and b is not None
    assert a.pipeline.toolbox is b.pipeline.toolbox is not None and default.pipeline.toolbox is None
    pools = {id(u.http) for agent in roster for u in agent.pipeline.upstreams}  # type: ignore[attr-defined]
    assert len(pools) == 1


async def test_reload_serves_new_agents_and_a_call_in_flight_finishes_on_its_old_one(
        bridge, fake_upstream, second_upstream, tmp_path, log_stream):
    env = two_agents(tmp_path, fake_upstream.url, second_upstream.url)
    client = await bridge(env)
    release, arrived = asyncio.Event(), asyncio.Event()
    fake_upstream.hold(release, arrived)
    body, headers = chat(SALES_TOKEN)
    in_flight = asyncio.ensure_future(client.post("/v1/chat/completions", json=body, headers=headers))
    await arrived.wait()

    # sales now answers on the support upstream with another model
    rewrite(env["BRIDGE_AGENTS"], json.dumps({"agents": {
        "sales": {"OPENAI_BASE_URL": second_upstream.url + "/v1", "UPSTREAM_MODEL": "sales-v2",
                  "BRIDGE_TOKENS": SALES_TOKEN}}}))
    assert await reload(client.server.app) is True
    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status == 200 and second_upstream.last.json()["model"] == "sales-v2"
    resp = await client.post("/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {SUPPORT_TOKEN}"})
    assert resp.status == 401  # support is gone

    release.set()
    old = await in_flight
    assert old.status == 200 and (await old.json())["choices"][0]["message"]["content"] == "Hello, world!"
    assert fake_upstream.last.json()["model"] == "sales-model"  # the old agent's upstream and model
    assert any(line.get("event") == "reloaded" for line in log_lines(log_stream))


async def test_a_broken_file_on_reload_keeps_the_running_agents(bridge, fake_upstream, second_upstream, tmp_path,
                                                               log_stream):
    env = two_agents(tmp_path, fake_upstream.url, second_upstream.url)
    client = await bridge(env)
    rewrite(env["BRIDGE_AGENTS"], '{"agents": {"sales": {"OPENAI_BASE_URLL": "x"}}}')
    assert await reload(client.server.app) is False
    body, headers = chat(SUPPORT_TOKEN)
    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status == 200 and second_upstream.last.json()["model"] == "support-model"
    failed = [line for line in log_lines(log_stream) if line.get("event") == "reload_failed"]
    assert failed and "OPENAI_BASE_URLL" in failed[0]["error"]


async def test_without_an_agents_file_nothing_changes(bridge, fake_upstream):
    client = await bridge({"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOKENS": ENV_TOKEN})
    body, headers = chat(ENV_TOKEN)
    assert (await client.post("/v1/chat/completions", json=body, headers=headers)).status == 200
    assert (await client.post("/agents/default/v1/chat/completions", json=body, headers=headers)).status == 200
    assert client.server.app[SERVICES].roster.agents.keys() == {"default"}


async def test_a_changed_file_is_reloaded_without_a_signal(bridge, fake_upstream, second_upstream, tmp_path,
                                                          log_stream):
    env = two_agents(tmp_path, fake_upstream.url, second_upstream.url)
    client = await bridge(env)
    replacement = agents_file(tmp_path, {"night": {"BRIDGE_TOKENS": "night-tok-1", "UPSTREAM_MODEL": "owl"}},
                              name="next.json")
    os.replace(replacement, env["BRIDGE_AGENTS"])  # as a ConfigMap update swaps the file
    line = await log_stream.wait_for_line(lambda entry: entry.get("event") == "reloaded")
    assert line["agents"] == ["default", "night"]
    resp = await client.get("/v1/models", headers={"Authorization": "Bearer night-tok-1"})
    assert [m["id"] for m in (await resp.json())["data"]] == ["owl"]


def test_the_worked_example_in_docs_agents_md_loads(tmp_path):
    """docs/agents.md's file, as printed, starts a deployment with its three agents."""
    doc = Path(__file__).resolve().parents[1] / "docs" / "agents.md"
    (block,) = [b for b in blocks(doc) if b.kind == "json agents"]
    example = block.text
    path = tmp_path / "agents.json"
    path.write_text(example)
    document = json.loads(example)
    document["agents"]["retell-orders"]["BRIDGE_TOOLS"] = str(tmp_path / "orders-tools.json")
    (tmp_path / "orders-tools.json").write_text(json.dumps({"tools": [{"name": "order_status", "description": "d",
                                                             "parameters": {"type": "object"},
                                                             "http": {"url": "http://127.0.0.1:9/s"}}]}))
    path.write_text(json.dumps(document))
    env = {"BRIDGE_AGENTS": str(path), "SALES_OPENAI_KEY": "sk-sales-0000000000000000", "SALES_TOKEN": "t-sales-1",
           "DASHSCOPE_API_KEY": "sk-dash-000000000000000", "SUPPORT_TOKEN": "t-support-1",
           "RETELL_TOKEN": "t-retell-1", "OPENAI_API_KEY": "sk-env-00000000000000000"}
    roster = create_app(read_settings(env))[SERVICES].roster
    assert sorted(roster.agents) == ["default", "retell-orders", "sales", "support-cn"]
    orders = roster.get("retell-orders")
    assert orders is not None and orders.settings.upstream.openai_api_key == "sk-env-00000000000000000"


async def test_an_agent_without_tokens_while_others_have_some_is_named_at_start_up(bridge, tmp_path, log_stream):
    """With tokens on one agent only, the default agent (no BRIDGE_TOKENS in the environment) is open:
    said once, naming it."""
    path = agents_file(tmp_path, {"sales": {"BRIDGE_TOKENS": SALES_TOKEN}})
    client = await bridge({"BRIDGE_AGENTS": path})
    line = await log_stream.wait_for_line(lambda e: e.get("event") == "auth_disabled")
    assert line["agents"] == ["default"]
    resp = await client.get("/agents/sales/v1/models")
    assert resp.status == 401


async def test_a_reload_serves_new_mcp_tools_from_its_first_call(bridge, fake_upstream, second_upstream, tmp_path,
                                                                 mcp_server):
    """As at start-up, the new agents serve once their MCP servers were listed (or startup_wait
    passed): a call right after the reload is offered the new tools."""
    env = two_agents(tmp_path, fake_upstream.url, second_upstream.url)
    client = await bridge(env)
    tools = tmp_path / "mcp-tools.json"
    tools.write_text(json.dumps({"mcp_servers": [{"url": mcp_server.url, "include": ["lookup_order"]}]}))
    rewrite(env["BRIDGE_AGENTS"], json.dumps({"agents": {
        "sales": {"OPENAI_BASE_URL": fake_upstream.url + "/v1", "BRIDGE_TOKENS": SALES_TOKEN,
                  "BRIDGE_TOOLS": str(tools)}}}))
    assert await reload(client.server.app) is True
    body, headers = chat(SALES_TOKEN)
    resp = await client.post("/v1/chat/completions", json=body, headers=headers)
    assert resp.status == 200
    assert [t["function"]["name"] for t in fake_upstream.last.json()["tools"]] == ["lookup_order"]
