"""Voice platforms as data: how each one's request is recognised and what its identifiers mean.

Every platform with an OpenAI-style custom-LLM hook posts a chat body plus fields and
headers of its own. A `Platform` says which of them mark it (`detect`), where its call,
session and turn identifiers are (`ids`, logged under their own names and offered to specs
as `${extend.NAME}`), and how it spells standard parameters (`aliases`). Adding a platform
is adding an entry; the sources are cited in tests/fixtures/platforms/.

A source is `body:a.b` (a path in the JSON body), `header:Name` or `query:name`. A `detect`
marker is a source that is present; `header:Name~text` is one whose value contains `text` (a
plain substring test, never a pattern).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bridge.log import mask_number, short


@dataclass(frozen=True, slots=True)
class Platform:
    """One voice platform's request, as its documentation shows it."""

    name: str
    detect: tuple[str, ...] = ()  # any of these present: the request is this platform's
    ids: tuple[tuple[str, tuple[str, ...]], ...] = ()  # log name, sources (the first present wins)
    aliases: Mapping[str, str] = field(default_factory=dict)  # its spelling -> the standard parameter
    phone_numbers: frozenset[str] = frozenset()  # ids that are phone numbers: masked in the log


def _ids(**sources: str | tuple[str, ...]) -> tuple[tuple[str, tuple[str, ...]], ...]:
    return tuple((name, (src,) if isinstance(src, str) else src) for name, src in sources.items())


PLATFORMS: tuple[Platform, ...] = (
    Platform("alibaba_ims", detect=("body:extendData",), ids=_ids(
        instance_id="body:extendData.instanceId", channel_id="body:extendData.channelId",
        sentence_id="body:extendData.sentenceId", caller="body:extendData.callerNumber",
        callee="body:extendData.calleeNumber", user_data="body:extendData.userData",
        task_id="query:task_id", room_id="query:room_id"),
        phone_numbers=frozenset({"caller", "callee"})),
    Platform("tencent_trtc", detect=("header:X-Task-Id", "header:X-Sdk-App-Id"), ids=_ids(
        task_id="header:X-Task-Id", request_id=("header:X-Request-Id", "header:X-Rquest-Id"),
        sdk_app_id="header:X-Sdk-App-Id", user_id="header:X-User-Id", room_id="header:X-Room-Id",
        invoke_llm="header:X-Invoke-LLM")),
    # LiveKit's Responses client (livekit.plugins.openai.responses.LLM) puts the model on its
    # WebSocket's URL for any host but OpenAI's: `?model=` on the upgrade.
    Platform("livekit", detect=("header:X-LiveKit-Room-ID", "header:X-LiveKit-Job-ID", "query:model"), ids=_ids(
        room_id="header:X-LiveKit-Room-ID", job_id="header:X-LiveKit-Job-ID",
        agent_id="header:X-LiveKit-Agent-ID", session_id="header:X-LiveKit-Session-ID")),
    # Pipecat's OpenAIResponsesLLMService opens its WebSocket with the `websockets` library's own
    # User-Agent (the OpenAI SDK sends its own instead): a heuristic, the only mark it leaves.
    Platform("pipecat", detect=("header:User-Agent~ websockets/",)),
    Platform("vapi", detect=("body:call", "body:phoneNumber"), ids=_ids(
        call_id="body:call.id", customer=("body:customer.number", "body:call.customer.number"),
        phone_number="body:phoneNumber.number"),
        phone_numbers=frozenset({"customer", "phone_number"})),
    Platform("elevenlabs", detect=("body:elevenlabs_extra_body", "body:user_id"), ids=_ids(user_id="body:user_id")),
    Platform("agora", detect=("body:interruptable", "body:turn_id", "body:context"), ids=_ids(
        turn_id="body:turn_id", turn_timestamp="body:timestamp", app_id=("body:context.appId", "body:app_id"),
        channel=("body:context.channel", "body:channel"), user_id=("body:context.userId", "body:user_uid"),
        agent_id="body:agent_uid")),
    Platform("volcengine", detect=("body:maxTokens", "body:round_id", "body:custom"), ids=_ids(
        turn_id="body:round_id"), aliases={"maxTokens": "max_tokens"}),
    Platform("alibaba_aiccs", detect=("body:biz_params", "body:out_id", "body:session_id"), ids=_ids(
        session_id="body:session_id", out_id="body:out_id"), aliases={"topP": "top_p"}),
    Platform("d-id", detect=("body:options",)),
)
OPENAI = Platform("openai")  # plain OpenAI clients: the SDK, Pipecat, LangChain, ...
# Every platform's spelling of a standard parameter: applied whoever sent it (they never collide).
ALIASES: dict[str, str] = {alias: name for p in PLATFORMS for alias, name in p.aliases.items()}


def _split(markers: tuple[str, ...], kind: str) -> tuple[tuple[str, str], ...]:
    """The markers of one kind, as (name, the text its value must contain; "" for any)."""
    found = [m.removeprefix(kind + ":").partition("~") for m in markers if m.startswith(kind + ":")]
    return tuple((name, text) for name, _, text in found)


# The markers, split once: (platform, its body fields, its headers, its query parameters).
_MARKERS = tuple((p, tuple(m[5:] for m in p.detect if m.startswith("body:")), _split(p.detect, "header"),
                  _split(p.detect, "query")) for p in PLATFORMS)


def recognise(body: Mapping[str, Any], headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> Platform:
    """The platform that sent this request (plain OpenAI when none is recognised); `query` markers
    are looked for only where the route passes its query (the Responses API's)."""
    for platform, fields, header_names, query_names in _MARKERS:
        if any(name in body for name in fields) or _marked(headers, header_names) or \
                (query is not None and _marked(query, query_names)):
            return platform
    return OPENAI


def _marked(values: Mapping[str, str], markers: tuple[tuple[str, str], ...]) -> bool:
    for name, text in markers:
        value = values.get(name)
        if value is not None and text in value:
            return True
    return False


def identifiers(platform: Platform, body: Mapping[str, Any], headers: Mapping[str, str],
                query: Mapping[str, str]) -> dict[str, Any]:
    """The platform's identifiers in this request, by their log names (values as sent)."""
    found: dict[str, Any] = {}
    for name, sources in platform.ids:
        for source in sources:
            value = _lookup(source, body, headers, query)
            if value is not None and value != "":
                found[name] = value
                break
    return found


def log_ids(platform: Platform, ids: Mapping[str, Any]) -> dict[str, Any]:
    """Identifiers as they go on the log line: shortened, phone numbers masked."""
    return {name: mask_number(value) if name in platform.phone_numbers else short(value)
            for name, value in ids.items()}


def _lookup(source: str, body: Mapping[str, Any], headers: Mapping[str, str], query: Mapping[str, str]) -> Any:
    kind, _, path = source.partition(":")
    if kind == "header":
        return headers.get(path)
    if kind == "query":
        return query.get(path)
    value: Any = body
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value
