"""The stored conversations' bounds, on the store itself: count, age and size per conversation."""

from __future__ import annotations

import pytest

from bridge.config import ConfigError, read_settings
from bridge.inbound.responses.store import Conversation, MemoryStore, decode, fit


async def test_the_memory_store_keeps_at_most_max_count_for_at_most_ttl():
    now = [100.0]
    store = MemoryStore(max_count=2, ttl=60, clock=lambda: now[0])
    for key in ("a", "b", "c"):
        await store.put(key, key.encode())
    assert [await store.get(key) for key in ("a", "b", "c")] == [None, b"b", b"c"] and len(store) == 2
    now[0] += 60  # both expire together
    assert await store.get("b") is None and await store.get("c") is None
    await store.put("d", b"d")  # expired records go as the next one comes
    assert len(store) == 1 and await store.get("d") == b"d"


def test_a_conversation_too_large_loses_its_oldest_messages_never_a_calls_result_alone():
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}
    messages = [{"role": "user", "content": "x" * 300}, call, {"role": "tool", "tool_call_id": "c1", "content": "ok"},
                {"role": "assistant", "content": "done"}, {"role": "user", "content": "y" * 100}]
    whole = fit(Conversation("default", messages), 10_000)
    assert whole is not None and whole[0].messages == messages and decode(whole[1]) == whole[0]
    trimmed = fit(Conversation("default", messages), 300)
    assert trimmed is not None and len(trimmed[1]) <= 300
    assert trimmed[0].messages == messages[3:]  # not the tool result without its call
    assert decode(trimmed[1]) == trimmed[0]
    assert fit(Conversation("default", messages), 50) is None  # not even the last message fits


def test_a_record_that_is_not_ours_reads_as_none():
    assert decode(b"not json") is None and decode(b'{"agent": 1, "messages": []}') is None


def test_the_store_settings_are_checked_and_a_password_in_the_url_is_a_secret():
    settings = read_settings({"RESPONSES_STORE_URL": "rediss://:s3cret-pass@redis.internal:6380/2",
                              "RESPONSES_STORE_MAX": "50", "RESPONSES_STORE_TTL": "90",
                              "RESPONSES_STORE_MAX_BYTES": "4096"})
    assert (settings.responses.store_max, settings.responses.store_ttl, settings.responses.store_max_bytes) == (
        50, 90.0, 4096)
    assert "s3cret-pass" in settings.secrets()  # masked in every log line
    with pytest.raises(ConfigError, match="RESPONSES_STORE_URL") as caught:
        read_settings({"RESPONSES_STORE_URL": "http://user:s3cret-pass@redis.internal"})
    assert "s3cret-pass" not in str(caught.value)
    with pytest.raises(ConfigError, match="RESPONSES_STORE_MAX_BYTES"):
        read_settings({"RESPONSES_STORE_MAX_BYTES": "10"})
