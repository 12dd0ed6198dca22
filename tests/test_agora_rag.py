"""POST /rag/chat/completions, driven by the official openai SDK against a fake upstream."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from bridge.inbound.agora_rag import CONTEXT_PREAMBLE
from tests.support.app import log_lines, sdk_client
from tests.support.knowledge import corrupt_the_search_table
from tests.support.upstream import FakeUpstream

TOKEN = "bridge-token-abcdef"
WAIT = "Just a moment, I'm thinking..."
AGENT = {"role": "system", "content": "You are a voice agent."}

FAQ = """# Shop FAQ

## Refund policy
You can return any item within 30 days of delivery for a full refund. Refunds go back to the
original payment method within 5 business days.

## Shipping
We ship to the United States and Canada. Standard shipping takes 3 to 7 business days.
"""
ZH = """# 常见问题

## 退货政策
收到商品后七天内可以无理由退货，退款将在五个工作日内原路返回。

## 会员积分
每消费一元可获得一个积分，积分可以在下次购物时抵扣现金。
"""


@pytest.fixture
def knowledge(tmp_path: Path) -> Path:
    folder = tmp_path / "knowledge"
    folder.mkdir()
    (folder / "faq.md").write_text(FAQ, encoding="utf-8")
    (folder / "zh.md").write_text(ZH, encoding="utf-8")
    (folder / "ignored.json").write_text('{"refund": "not a knowledge file"}', encoding="utf-8")
    return folder


def env_for(fake: FakeUpstream, knowledge: Path | None, **extra: str) -> dict[str, str]:
    env = {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-upstream-0123456789",
           "BRIDGE_TOKENS": TOKEN, "RAG_WAITING_PHRASES": WAIT, **extra}
    if knowledge is not None:
        env["KNOWLEDGE_DIR"] = str(knowledge)
    return env


def sdk(client: Any) -> openai.AsyncOpenAI:
    return sdk_client(str(client.make_url("/rag")), TOKEN)


async def ask(client: Any, question: str, **kwargs: Any) -> list[Any]:
    async with sdk(client) as oai:
        stream = await oai.chat.completions.create(
            model="m", messages=[AGENT, {"role": "user", "content": question}], stream=True, **kwargs)
        return [chunk async for chunk in stream]


def answer_text(chunks: list[Any]) -> str:
    return "".join(c.choices[0].delta.content or "" for c in chunks[1:] if c.choices)


async def test_waiting_chunk_comes_first_before_the_upstream_answers(bridge, fake_upstream, knowledge):
    release = asyncio.Event()

    async def gated(request: web.Request) -> web.StreamResponse:
        await release.wait()  # the upstream cannot answer until the test has the waiting chunk
        return await fake_upstream.stream_openai(request)

    fake_upstream.handler = gated
    client = await bridge(env_for(fake_upstream, knowledge))
    async with sdk(client) as oai:
        async with asyncio.timeout(10):  # a failure guard only: waiting on the upstream would hang here
            stream = await oai.chat.completions.create(
                model="m", messages=[AGENT, {"role": "user", "content": "What is your refund policy?"}],
                stream=True)
            first = await anext(stream)
        assert not release.is_set()
        release.set()
        rest = [chunk async for chunk in stream]
    assert first.id == "waiting_msg"
    assert first.choices[0].delta.role == "assistant"
    assert first.choices[0].delta.content == WAIT
    assert first.choices[0].finish_reason is None
    assert answer_text([first, *rest]) == "Hello, world!"
    assert rest[-1].choices[0].finish_reason == "stop"
    assert all(c.id != "waiting_msg" for c in rest)
    assert len(fake_upstream.requests) == 1


@pytest.mark.parametrize("question, expected, absent", [
    ("What is your refund policy?", "within 30 days of delivery", "United States"),
    ("How long does shipping take?", "3 to 7 business days", "full refund"),
    ("退货政策是什么？", "七天内可以无理由退货", "积分"),
    ("怎么退货？", "七天内可以无理由退货", "积分"),  # 退货 is two characters: a trigram index misses it
    ("积分可以抵扣现金吗", "每消费一元可获得一个积分", "退货"),
])
async def test_best_passage_is_injected_before_the_history(bridge, fake_upstream, knowledge, question, expected,
                                                           absent):
    client = await bridge(env_for(fake_upstream, knowledge))
    chunks = await ask(client, question)
    assert chunks[0].id == "waiting_msg"
    assert answer_text(chunks) == "Hello, world!"
    messages = fake_upstream.last.json()["messages"]
    assert [m["role"] for m in messages] == ["system", "system", "user"]
    assert messages[0] == AGENT
    assert messages[2] == {"role": "user", "content": question}
    injected = messages[1]["content"]
    assert injected.startswith(CONTEXT_PREAMBLE)
    assert expected in injected
    assert absent not in injected


@pytest.mark.parametrize("question", ["Tell me a joke about penguins.", "今天天气怎么样？", "What is it?"])
async def test_nothing_relevant_injects_nothing(bridge, fake_upstream, knowledge, question, log_stream):
    client = await bridge(env_for(fake_upstream, knowledge))
    chunks = await ask(client, question)
    assert chunks[0].id == "waiting_msg"
    assert fake_upstream.last.json()["messages"] == [AGENT, {"role": "user", "content": question}]
    assert [line["rag_passages"] for line in log_lines(log_stream) if line["event"] == "request"] == [0]


async def test_injected_passages_are_capped(bridge, fake_upstream, tmp_path):
    folder = tmp_path / "long"
    folder.mkdir()
    (folder / "refunds.txt").write_text("Refund rules. " + "Keep the receipt for every refund. " * 40)
    client = await bridge(env_for(fake_upstream, folder, RAG_MAX_CONTEXT_CHARS="300"))
    await ask(client, "refund receipt")
    injected = fake_upstream.last.json()["messages"][1]["content"]
    passages = injected.removeprefix(CONTEXT_PREAMBLE + "\n\n")
    assert passages.startswith("[1] refunds.txt\nRefund rules.")
    assert len(passages) <= 300


async def test_without_a_knowledge_dir_the_route_still_answers(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream, None))
    chunks = await ask(client, "What is your refund policy?")
    assert chunks[0].id == "waiting_msg"
    assert answer_text(chunks) == "Hello, world!"
    assert len(fake_upstream.last.json()["messages"]) == 2


async def test_waiting_phrase_follows_the_question_language(bridge, fake_upstream, knowledge):
    client = await bridge(env_for(fake_upstream, knowledge, RAG_WAITING_PHRASES="One moment please.| 请稍等…… "))
    assert (await ask(client, "退货政策是什么？"))[0].choices[0].delta.content == "请稍等……"
    assert (await ask(client, "refund?"))[0].choices[0].delta.content == "One moment please."


async def test_upstream_failure_after_the_waiting_chunk_speaks_the_fallback(bridge, fake_upstream, knowledge):
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "boom"}}, status=500)

    fake_upstream.handler = broken
    client = await bridge(env_for(fake_upstream, knowledge, FALLBACK_TEXT="Sorry, try again later."))
    chunks = await ask(client, "refund?")
    assert chunks[0].id == "waiting_msg"
    assert answer_text(chunks) == "Sorry, try again later."


async def test_upstream_failure_without_fallback_is_an_error_event(bridge, fake_upstream, knowledge):
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "bad key"}}, status=401)

    fake_upstream.handler = broken
    client = await bridge(env_for(fake_upstream, knowledge))
    response = await client.post("/rag/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                                 json={"messages": [{"role": "user", "content": "refund?"}], "stream": True})
    body = await response.read()
    assert response.status == 200
    assert body.startswith(b'data: {"id":"waiting_msg"')
    assert b'"code":"upstream_auth"' in body
    assert body.endswith(b"data: [DONE]\n\n")


@pytest.mark.parametrize("body, param", [
    ({"messages": [{"role": "user", "content": "hi"}], "stream": False}, "stream"),
    ({"messages": [{"role": "user", "content": "hi"}]}, "stream"),
    ({"messages": [], "stream": True}, "messages"),
    ({"messages": [{"role": "robot", "content": "hi"}], "stream": True}, "messages[0].role"),
])
async def test_bad_requests_are_400_before_anything_streams(bridge, fake_upstream, knowledge, body, param):
    client = await bridge(env_for(fake_upstream, knowledge))
    response = await client.post("/rag/chat/completions", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error" and error["message"]
    assert fake_upstream.requests == []


async def test_sdk_sees_stream_false_as_a_bad_request(bridge, fake_upstream, knowledge):
    client = await bridge(env_for(fake_upstream, knowledge))
    async with sdk(client) as oai:
        with pytest.raises(openai.BadRequestError, match="stream"):
            await oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])


async def test_wrong_token_is_401(bridge, fake_upstream, knowledge):
    client = await bridge(env_for(fake_upstream, knowledge))
    response = await client.post("/rag/chat/completions", json={"messages": [], "stream": True},
                                 headers={"Authorization": "Bearer nope"})
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "invalid_api_key"


async def test_a_full_bridge_answers_503_before_the_waiting_phrase(bridge, fake_upstream, knowledge):
    arrived, release = asyncio.Event(), asyncio.Event()

    fake_upstream.hold(release, arrived)
    client = await bridge(env_for(fake_upstream, knowledge, MAX_CONCURRENCY="1"))
    first = asyncio.create_task(ask(client, "What is your refund policy?"))
    try:
        async with asyncio.timeout(10):  # a failure guard only
            await arrived.wait()
        response = await client.post("/rag/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                                     json={"messages": [{"role": "user", "content": "refund?"}], "stream": True})
        assert response.status == 503
        assert response.headers["Retry-After"] == "1"
        assert (await response.json())["error"]["code"] == "overloaded"
    finally:
        release.set()
    assert answer_text(await first) == "Hello, world!"
    assert len(fake_upstream.requests) == 1


async def test_a_damaged_index_answers_without_retrieval(bridge, fake_upstream, knowledge, log_stream):
    client = await bridge(env_for(fake_upstream, knowledge))
    assert len((await ask(client, "What is your refund policy?"))[0:1]) == 1
    assert len(fake_upstream.last.json()["messages"]) == 3  # a passage was injected
    corrupt_the_search_table(knowledge / ".knowledge-index.sqlite3")
    chunks = await ask(client, "What is your refund policy?")
    assert chunks[0].id == "waiting_msg"
    assert answer_text(chunks) == "Hello, world!"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len(fake_upstream.last.json()["messages"]) == 2  # nothing injected
    line = [line for line in log_lines(log_stream) if line["event"] == "request"][-1]
    assert line["rag_passages"] == 0 and "cannot be searched" in line["rag_error"] and line["status"] == 200
