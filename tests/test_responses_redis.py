"""RESPONSES_STORE_URL: two replicas behind a load balancer share one Redis, so a follow-up that lands on
the other replica still finds its conversation (no sticky sessions).

A real `redis-server` (Debian's package; .ci/run installs it) runs on a free loopback port for the
module, with nothing saved to disk. The two replicas are two apps in this test process, each with
its own store client.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator

import openai
import pytest

from tests.support.app import log_lines
from tests.support.responses import connect, create, env_for, scripted, sdk, sent_messages
from tests.support.upstream import text_chunks

REDIS = shutil.which("redis-server")
if REDIS is None and not os.environ.get("CI"):
    pytest.skip("redis-server is not installed (apt-get install -y redis-server)", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def redis_url() -> AsyncIterator[str]:
    """A redis-server of its own on 127.0.0.1, ready when its log says so."""
    assert REDIS is not None, "redis-server is not installed (apt-get install -y redis-server)"
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        "--protected-mode", "yes", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    async with asyncio.timeout(10):
        while b"Ready to accept connections" not in await process.stdout.readline():
            assert process.returncode is None, "redis-server exited"
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    await process.wait()


async def test_a_follow_up_on_the_other_replica_is_answered_with_the_whole_history(bridge, fake_upstream, redis_url):
    scripted(fake_upstream, *(text_chunks([text]) for text in ("Hi Ann.", "You are Ann.", "Bye, Ann.")))
    env = env_for(fake_upstream, RESPONSES_STORE_URL=redis_url)
    one, two = await bridge(env), await bridge(env)  # two replicas, each its own Redis client
    async with sdk(one) as first, sdk(two) as second:
        hello = await first.responses.create(model="m", input="I am Ann.")
        who = await second.responses.create(model="m", input="Who am I?", previous_response_id=hello.id)
    async with connect(one) as ws:  # and the WebSocket mode reads the shared store too
        bye = await create(ws, input="Bye.", previous_response_id=who.id)
    assert who.output_text == "You are Ann." and bye[-1]["type"] == "response.completed"
    assert sent_messages(fake_upstream) == [
        {"role": "user", "content": "I am Ann."}, {"role": "assistant", "content": "Hi Ann."},
        {"role": "user", "content": "Who am I?"}, {"role": "assistant", "content": "You are Ann."},
        {"role": "user", "content": "Bye."}]


async def test_the_shared_store_keeps_at_most_responses_store_max(bridge, fake_upstream, redis_url):
    env = env_for(fake_upstream, RESPONSES_STORE_URL=redis_url, RESPONSES_STORE_MAX="2")
    one, two = await bridge(env), await bridge(env)
    async with sdk(one) as first, sdk(two) as second:
        oldest = await first.responses.create(model="m", input="one")
        await second.responses.create(model="m", input="two")
        newest = await first.responses.create(model="m", input="three")
        await second.responses.create(model="m", input="four", previous_response_id=newest.id, store=False)
        with pytest.raises(openai.BadRequestError, match="not found"):
            await second.responses.create(model="m", input="five", previous_response_id=oldest.id)


async def test_an_unreachable_store_is_previous_response_not_found_and_logged(bridge, fake_upstream, log_stream):
    client = await bridge(env_for(fake_upstream, RESPONSES_STORE_URL=f"redis://127.0.0.1:{free_port()}/0"))
    async with sdk(client) as oai:
        answered = await oai.responses.create(model="m", input="hi")  # answered; storing it failed
        with pytest.raises(openai.BadRequestError, match="not found"):
            await oai.responses.create(model="m", input="again", previous_response_id=answered.id)
    assert answered.output_text == "Hello, world!"
    failures = [line for line in log_lines(log_stream) if line["event"] == "responses_store_failed"]
    assert len(failures) == 2 and all("ConnectionError" in line["error"] for line in failures)
