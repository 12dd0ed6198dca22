"""Stored responses: each one's whole conversation, so a follow-up naming it with
`previous_response_id` is answered with the history it continues.

A record is the conversation as chat messages (the input the response answered, history
included, then the answer) and the agent that answered, encoded once as JSON. Instructions are
not kept: OpenAI does not carry them over either. Memory is bounded three ways:
RESPONSES_STORE_MAX records (the oldest go first), RESPONSES_STORE_TTL seconds each, and
RESPONSES_STORE_MAX_BYTES per record (its oldest messages are dropped to fit, never leaving a
tool result without its call; a record whose last message alone is larger is not kept).

`MemoryStore` keeps them in the process (one process, or sticky sessions); with
RESPONSES_STORE_URL, `RedisStore` keeps them in a shared Redis, so a follow-up that lands on
another replica finds its conversation. A Redis that cannot be reached is a `StoreError`: the
route answers as if the id were unknown (a client sends its whole context again) and logs it.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from bridge import jsonutil
from bridge.config.model import ResponsesSettings
from bridge.request import Message

REDIS_PREFIX = "bridge:responses:"  # a record is `<prefix><response id>`
REDIS_INDEX = REDIS_PREFIX + "index"  # a sorted set of the ids, by when each was stored
REDIS_TIMEOUT = 2.0  # seconds for a Redis connection or command: a hung Redis must not hold an answer


class StoreError(Exception):
    """The shared store could not be reached."""


@dataclass(frozen=True, slots=True)
class Conversation:
    """A stored response's conversation, and the agent whose it is."""

    agent: str
    messages: list[Message]


class Store(Protocol):
    async def get(self, key: str) -> bytes | None: ...

    async def put(self, key: str, value: bytes) -> None: ...

    async def aclose(self) -> None: ...


def fit(conversation: Conversation, max_bytes: int) -> tuple[Conversation, bytes] | None:
    """The conversation with its oldest messages dropped until its record fits in `max_bytes`, and
    that record; None if not even its last message fits."""
    head = b'{"agent":' + jsonutil.dumps(conversation.agent) + b',"messages":['
    parts = [jsonutil.dumps(message) for message in conversation.messages]  # each encoded once
    size = len(head) + 2 + sum(len(part) + 1 for part in parts)
    start = 0
    while start < len(parts) and (size > max_bytes or conversation.messages[start].get("role") == "tool"):
        size -= len(parts[start]) + 1
        start += 1
    if start == len(parts):
        return None
    kept = Conversation(conversation.agent, conversation.messages[start:]) if start else conversation
    return kept, head + b",".join(parts[start:]) + b"]}"


def decode(record: bytes) -> Conversation | None:
    """A record as `encode` made it (None for anything else)."""
    try:
        data: Any = jsonutil.loads(record)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("agent"), str) or not isinstance(data.get("messages"),
                                                                                            list):
        return None
    return Conversation(data["agent"], data["messages"])


class MemoryStore:
    """Records in this process, oldest first: at most `max_count`, each for `ttl` seconds (by `clock`)."""

    def __init__(self, max_count: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_count = max_count
        self.ttl = ttl
        self.clock = clock
        self._records: OrderedDict[str, tuple[float, bytes]] = OrderedDict()  # key -> (expiry, record)

    def __len__(self) -> int:
        return len(self._records)

    async def get(self, key: str) -> bytes | None:
        found = self._records.get(key)
        if found is None or found[0] <= self.clock():
            return None
        return found[1]

    async def put(self, key: str, value: bytes) -> None:
        now = self.clock()
        self._records[key] = (now + self.ttl, value)
        self._records.move_to_end(key)
        while self._records:  # the oldest are first: expired ones, then any over the count
            oldest_expiry = next(iter(self._records.values()))[0]
            if oldest_expiry > now and len(self._records) <= self.max_count:
                break
            self._records.popitem(last=False)

    async def aclose(self) -> None:
        self._records.clear()


class RedisStore:
    """Records in a shared Redis: each key expires after `ttl`, and an index of them by age keeps
    their count to `max_count` (the oldest are deleted)."""

    def __init__(self, url: str, max_count: int, ttl: float) -> None:
        import redis.asyncio  # only a deployment with RESPONSES_STORE_URL loads the client

        self.max_count = max_count
        self.ttl = ttl
        self.client = redis.asyncio.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT,
                                                   socket_connect_timeout=REDIS_TIMEOUT)

    async def get(self, key: str) -> bytes | None:
        from redis.exceptions import RedisError

        try:
            value = await self.client.get(REDIS_PREFIX + key)
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {type(exc).__name__}") from None
        return value if isinstance(value, bytes) else None

    async def put(self, key: str, value: bytes) -> None:
        from redis.exceptions import RedisError

        now = time.time()
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.set(REDIS_PREFIX + key, value, ex=max(1, round(self.ttl)))
                pipe.zadd(REDIS_INDEX, {key: now})
                pipe.zremrangebyscore(REDIS_INDEX, "-inf", now - self.ttl)
                pipe.zcard(REDIS_INDEX)
                count = (await pipe.execute())[-1]
            if count > self.max_count:
                evicted: list[Any] = await self.client.zpopmin(REDIS_INDEX, count - self.max_count)
                if evicted:
                    await self.client.delete(*[REDIS_PREFIX + _text(pair[0]) for pair in evicted])
        except (RedisError, OSError) as exc:
            raise StoreError(f"Redis: {type(exc).__name__}") from None

    async def aclose(self) -> None:
        await self.client.aclose()


def _text(name: Any) -> str:
    return name.decode() if isinstance(name, bytes) else str(name)


class Conversations:
    """The process's stored responses: read and written as conversations, bounded as configured."""

    def __init__(self, settings: ResponsesSettings) -> None:
        self.max_bytes = settings.store_max_bytes
        self.shared = settings.store_url is not None
        self.store: Store = (RedisStore(settings.store_url, settings.store_max, settings.store_ttl)
                             if settings.store_url is not None else
                             MemoryStore(settings.store_max, settings.store_ttl))

    async def load(self, response_id: str) -> Conversation | None:
        """The conversation stored under `response_id`; None when there is none. StoreError when the
        shared store cannot be reached."""
        record = await self.store.get(response_id)
        return decode(record) if record is not None else None

    def fit(self, conversation: Conversation) -> tuple[Conversation, bytes] | None:
        """`fit` to RESPONSES_STORE_MAX_BYTES."""
        return fit(conversation, self.max_bytes)

    async def save(self, response_id: str, record: bytes) -> None:
        """Keep a record (`fit` made it) under `response_id`; StoreError when the shared store cannot be
        reached."""
        await self.store.put(response_id, record)

    async def aclose(self) -> None:
        await self.store.aclose()
