"""One place for JSON encoding, so the hot path uses the fast encoder everywhere."""

from __future__ import annotations

from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON text; raises JSONDecodeError (a ValueError) on bad input."""
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Encode to compact UTF-8 JSON bytes (non-ASCII kept as-is, not escaped)."""
    return orjson.dumps(obj)


def dumps_str(obj: Any) -> str:
    """Encode to a compact JSON str."""
    return orjson.dumps(obj).decode()
