"""Who may open a socket, and which agent answers it.

ConversationRelay (`/conversation-relay`): when the agent's TWILIO_AUTH_TOKEN is set, the
handshake's `X-Twilio-Signature` must be Twilio's signature of the URL it was given, the way
Twilio's helper libraries check it: base64 of HMAC-SHA1 (or HMAC-SHA256, when
`X-Twilio-Webhooks-Signature-Settings` names it) keyed with the token, over `wss://`, the
host of PUBLIC_URL (else the request's Host), and the path and query as requested; the URL is
also tried with the default port added and removed, as the libraries do. A handshake that
fails is refused with 403. Otherwise the URL carries a bridge token as `?token=...`, which
chooses the agent as on every route (401 when BRIDGE_TOKENS has no such token).

Which agent's token: on `/agents/<name>/conversation-relay` the named agent's; on the plain
path, that of the agent the `token` parameter chooses, else the default agent's.

Retell (`/retell/{token}/{call_id}`): the path segment before the call id is the bridge token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from aiohttp import web

from bridge.errors import BridgeError, ErrorKind
from bridge.inbound.context import SERVICES, agent_for, use_agent
from bridge.pipeline.agents import Agent

REFUSED = "Invalid or missing token: put a bridge token in the socket URL."
FORBIDDEN = "X-Twilio-Signature does not match this URL and TWILIO_AUTH_TOKEN."
SIGNATURE = "X-Twilio-Signature"
SIGNATURE_SETTINGS = "X-Twilio-Webhooks-Signature-Settings"
_HASHES = {"HMAC_SHA1": hashlib.sha1, "HMAC_SHA256": hashlib.sha256}


def relay_agent(request: web.Request) -> Agent:
    """The agent a ConversationRelay handshake reaches; BridgeError 401/403/404 when refused."""
    token = request.query.get("token")
    candidate = _candidate(request, token)
    if candidate is None or candidate.settings.sockets.twilio_auth_token is None:
        return agent_for(request, token, REFUSED)
    public_url = request.app[SERVICES].settings.server.public_url
    if not signed(request, candidate.settings.sockets.twilio_auth_token, public_url):
        raise BridgeError(ErrorKind.FORBIDDEN, FORBIDDEN)
    return use_agent(request, candidate)


def retell_agent(request: web.Request) -> Agent:
    """The agent a Retell socket reaches: its URL's token chooses it; BridgeError 401/404 when refused."""
    return agent_for(request, request.match_info.get("token"), REFUSED)


def _candidate(request: web.Request, token: str | None) -> Agent | None:
    """The agent whose TWILIO_AUTH_TOKEN applies: the named one, the token's, else the default."""
    services = request.app[SERVICES]
    name = request.match_info.get("agent")
    if name is not None:
        return services.roster.get(name)
    return services.gate.choose(token) if token else services.roster.default


def signed(request: web.Request, auth_token: str, public_url: str | None) -> bool:
    """Whether the handshake's X-Twilio-Signature is Twilio's for this URL (constant-time compare)."""
    # (a header or Host that is not UTF-8 arrives with surrogates: it matches nothing, and raises nothing)
    signature = request.headers.get(SIGNATURE, "").encode("utf-8", "surrogateescape")
    digest = _HASHES.get(_algorithm(request.headers.get(SIGNATURE_SETTINGS)))
    if not signature or digest is None:
        return False
    host = urlsplit(public_url).netloc if public_url else request.host
    url = f"wss://{host}{request.raw_path}"
    key = auth_token.encode()
    ok = False
    for candidate in _port_variants(url):
        mac = hmac.new(key, candidate.encode("utf-8", "surrogateescape"), digest).digest()
        ok |= hmac.compare_digest(base64.b64encode(mac), signature)
    return ok


def _algorithm(settings: str | None) -> str:
    """The algorithm X-Twilio-Webhooks-Signature-Settings names (`key=...,algorithm=...`); HMAC_SHA1 without."""
    for part in (settings or "").split(","):
        name, _, value = part.partition("=")
        if name.strip() == "algorithm" and value.strip():
            return value.strip().upper()
    return "HMAC_SHA1"


def _port_variants(url: str) -> tuple[str, str]:
    """The URL without its port and with one (443 for https, else 80, as Twilio's libraries add it)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a Host header with a port that is not a number: no variant signs it
        return url, url
    bare = parts.netloc.rsplit(":", 1)[0] if port is not None else parts.netloc
    port = port if port is not None else (443 if parts.scheme == "https" else 80)
    return parts._replace(netloc=bare).geturl(), parts._replace(netloc=f"{bare}:{port}").geturl()
