"""GET /playground: a page to hear an agent before wiring a phone number (docs/playground.md).

The page (HTML, JS and CSS beside this module; no build step, nothing from elsewhere) talks
to the bridge through the OpenAI SSE route as a platform does, with the trace header on, and
draws each turn's timeline from the trace. Its files are read once, when the app is built;
with PLAYGROUND=off they are not read and the paths answer 404 as an unknown path does.
The page holds nothing a caller without a token could not see: the agent, its tools and its
answers come only through the chat route, under the caller's token.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from bridge.inbound.context import SERVICES

_FOLDER = Path(__file__).parent
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
PAGE = "index.html"
# Scripts, styles, images and fetches from the bridge's own origin only: no inline script, no
# other site, no frame around it.
POLICY = ("default-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; "
          "frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str


ASSETS = web.AppKey("playground_assets", dict[str, Asset])  # absent: PLAYGROUND=off


def read_assets() -> dict[str, Asset]:
    """The page's files, by name."""
    return {path.name: Asset(path.read_bytes(), _TYPES[path.suffix])
            for path in sorted(_FOLDER.iterdir()) if path.suffix in _TYPES}


def setup(app: web.Application) -> None:
    if app[SERVICES].settings.server.playground:
        app[ASSETS] = read_assets()


async def handle_page(request: web.Request) -> web.Response:
    """GET /playground (and /agents/<name>/playground: the page then talks to that agent)."""
    return _serve(request, PAGE)


async def handle_asset(request: web.Request) -> web.Response:
    """GET /playground/<file>: the page's script, style and icon."""
    return _serve(request, request.match_info["file"])


def _serve(request: web.Request, name: str) -> web.Response:
    asset = request.app.get(ASSETS, {}).get(name)
    if asset is None:
        raise web.HTTPNotFound()  # answered as any unknown path is (bridge/process/access.py)
    return web.Response(body=asset.body, headers={**HEADERS, "Content-Type": asset.content_type})
