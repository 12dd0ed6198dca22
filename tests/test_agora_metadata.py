"""Agora's optional `chat.completion.custom_metadata` chunk passes through untouched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiohttp import web

from tests.support.app import sdk_client
from tests.support.upstream import FakeUpstream, sse, text_chunks

TOKEN = "bridge-token-abcdef"
METADATA = {"id": "meta-1", "object": "chat.completion.custom_metadata", "choices": [],
            "metadata": {"interruptable": False, "tts_params": {"voice": "晓晓", "speed": 1.1}}}
USER = [{"role": "user", "content": "hi"}]


@pytest.fixture
def metadata_upstream(fake_upstream: FakeUpstream) -> FakeUpstream:
    async def with_metadata(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse([METADATA, *text_chunks(["Hello", "!"])]))
        return response

    fake_upstream.handler = with_metadata
    return fake_upstream


def env_for(fake: FakeUpstream) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-upstream-0123456789", "BRIDGE_TOKENS": TOKEN}


async def sdk_chunks(client: Any, base: str) -> list[Any]:
    async with sdk_client(str(client.make_url(base)), TOKEN) as oai:
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
        return [chunk async for chunk in stream]


async def test_metadata_chunk_is_first_on_chat_completions(bridge, metadata_upstream):
    client = await bridge(env_for(metadata_upstream))
    chunks = await sdk_chunks(client, "")
    assert chunks[0].object == "chat.completion.custom_metadata"
    assert chunks[0].choices == []
    assert chunks[0].to_dict() == METADATA
    assert "".join(c.choices[0].delta.content or "" for c in chunks[1:]) == "Hello!"


async def test_metadata_chunk_bytes_are_untouched(bridge, metadata_upstream):
    client = await bridge(env_for(metadata_upstream))
    response = await client.post("/chat/completions", json={"messages": USER, "stream": True},
                                 headers={"Authorization": f"Bearer {TOKEN}"})
    events = (await response.read()).split(b"\n\n")
    assert events[0].startswith(b"data: ")
    assert json.loads(events[0][6:]) == METADATA
    assert sum(b"custom_metadata" in e for e in events) == 1


async def test_metadata_chunk_follows_the_waiting_chunk_on_rag(bridge, metadata_upstream):
    client = await bridge(env_for(metadata_upstream))
    chunks = await sdk_chunks(client, "/rag")
    assert chunks[0].id == "waiting_msg"
    assert chunks[1].to_dict() == METADATA
