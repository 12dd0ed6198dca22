"""JSON answers: one helper for every JSON body the bridge sends, in UTF-8 (Chinese and emoji as-is)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from bridge import jsonutil


def json_reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response with an explicit UTF-8 charset."""
    return web.Response(body=jsonutil.dumps(body), status=status, content_type="application/json", charset="utf-8",
                        headers=headers)
