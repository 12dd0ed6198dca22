"""Nothing a platform sends breaks a socket session: every documented message with its fields
replaced by values of every JSON type (seeded, so a failure repeats), then a valid turn."""

from __future__ import annotations

import random
from typing import Any

from aiohttp.test_utils import TestClient

from tests.support.app import BridgeFactory, LogStream, log_lines
from tests.support.socket_clients import RETELL, TELNYX, TWILIO, Client, RelayClient, RetellClient

ODD_VALUES: list[Any] = [None, 0, -1, 1 << 70, 1.5, -0.0, True, False, "", "x" * 5000, "\u0000\ud7ff", [], [1, [2]],
                         {}, {"a": {"b": [None]}}, {"role": "agent", "content": 5}, ["setup"], "prompt"]


def mutations(documented: dict[str, Any], rng: random.Random, count: int) -> list[dict[str, Any]]:
    """`count` documented messages, each with some fields replaced by odd values or dropped."""
    names = sorted(documented["from_platform"])
    out = []
    for _ in range(count):
        message = dict(documented["from_platform"][rng.choice(names)])
        for key in list(message):
            roll = rng.random()
            if roll < 0.3:
                message[key] = rng.choice(ODD_VALUES)
            elif roll < 0.4:
                del message[key]
        out.append(message)
    return out


async def survive(client: Client, messages: list[dict[str, Any]]) -> None:
    for message in messages:
        await client.ws.send_json(message)


async def test_relay_sessions_survive_odd_messages(bridge: BridgeFactory, log_stream: LogStream) -> None:
    client: TestClient = await bridge({"UPSTREAM": "echo"})
    rng = random.Random(20_241)
    for documented in (TWILIO, TELNYX):
        platform = RelayClient(await client.ws_connect("/conversation-relay"), documented)
        await platform.send("setup")
        await survive(platform, mutations(documented, rng, 300))
        await platform.ws.send_json({"type": "interrupt", "utteranceUntilInterrupt": ""})
        await platform.ws.send_json({"type": "prompt", "voicePrompt": "still there?", "last": True})
        said = ""
        while not said.endswith("still there?"):  # answers to odd prompts still in flight come first
            said, _ = await platform.answer()
        await platform.ws.close()
    await check_log(log_stream, 2)


async def test_retell_sessions_survive_odd_events(bridge: BridgeFactory, log_stream: LogStream) -> None:
    client: TestClient = await bridge({"UPSTREAM": "echo"})
    platform = RetellClient(await client.ws_connect("/retell/call_odd"), RETELL)
    await platform.opening()
    await survive(platform, mutations(RETELL, random.Random(7), 300))
    assert await platform.ask(1 << 40, [("user", "still there?")]) == "You said: still there?"
    await platform.ws.close()
    await check_log(log_stream, 1)


async def check_log(log_stream: LogStream, sessions: int) -> None:
    await log_stream.wait_for_line(lambda r: len([x for x in log_lines(log_stream) if x.get("status") == 101])
                                   == sessions)
    lines = log_lines(log_stream)
    assert not [r for r in lines if r.get("exception") or r.get("error_kind") == "internal"]
    assert {r["end_reason"] for r in lines if r.get("status") == 101} == {"closed"}
    assert all(r["ignored"] > 0 for r in lines if r.get("status") == 101)
