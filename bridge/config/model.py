"""The settings, as typed records: one per concern, all frozen, built once at start-up."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_FAILURE_TEXT = "Sorry, I can't answer right now. Please try again in a moment."
DEFAULT_WAITING_PHRASES = ("Just a moment, I'm thinking...", "稍等，我想一想……")
DEFAULT_FILLER_PHRASES = ("One moment.", "稍等一下。")
DEFAULT_HANGUP_WORDS = "Goodbye."
CALL_TOOLS = ("hangup", "transfer")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class BackupUpstream:
    """One entry of UPSTREAM_FALLBACKS: another upstream to try when the primary fails."""

    upstream: str
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class UpstreamSettings:
    """Which model answers, and how it is reached."""

    name: str = "echo"  # UPSTREAM
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_client: str = "aiohttp"
    openai_chat_path: str = "/chat/completions"
    base_url: str | None = None  # UPSTREAM_BASE_URL, for a spec upstream
    api_key: str | None = None  # UPSTREAM_API_KEY, for a spec upstream
    model: str | None = None  # UPSTREAM_MODEL
    extra_params: tuple[str, ...] = ()  # UPSTREAM_EXTRA_PARAMS: provider extensions forwarded as-is
    probe: bool = True  # UPSTREAM_PROBE: ask an OpenAI-compatible upstream for its models once at start-up
    backups: tuple[BackupUpstream, ...] = ()  # UPSTREAM_FALLBACKS


@dataclass(frozen=True, slots=True)
class Deadlines:
    """Seconds allowed for each part of one upstream answer (docs/operations.md, "Deadlines")."""

    connect: float = 3.0
    first_token: float = 10.0
    idle: float = 15.0
    total: float = 120.0


@dataclass(frozen=True, slots=True)
class ServerSettings:
    """The listening process: address, limits, shutdown."""

    host: str = "0.0.0.0"
    port: int = 8080
    listen_backlog: int = 2048
    web_concurrency: int | None = None  # gunicorn workers; None: one per CPU
    max_body_bytes: int = 4 * 1024 * 1024
    body_timeout: float = 10.0
    max_concurrency: int = 1000
    drain_timeout: float = 25.0
    drain_delay: float = 0.0
    metrics_token: str | None = None
    log_level: str = "INFO"
    agents_file: str | None = None  # BRIDGE_AGENTS
    public_url: str | None = None  # PUBLIC_URL: where platforms reach the bridge (the Twilio signature's host)
    playground: bool = True  # PLAYGROUND: GET /playground and the X-Bridge-Trace header (docs/playground.md)


@dataclass(frozen=True, slots=True)
class AnswerSettings:
    """What the bridge makes of an answer before the caller hears it."""

    system_prompt: str | None = None
    max_history: int = 20
    form_failure_text: str | None = DEFAULT_FAILURE_TEXT  # spoken on the form route when every upstream failed
    openai_failure_text: str | None = None  # the same on the OpenAI routes (FALLBACK_TEXT set)
    speech_filter: bool = True
    think_prefilled: bool = False  # THINK_PREFILLED: the model's answers start inside reasoning (an open <think>)
    filler_after_ms: int | None = None
    filler_phrases: tuple[str, ...] = DEFAULT_FILLER_PHRASES
    call_tools: tuple[str, ...] = ()
    hangup_words: str = DEFAULT_HANGUP_WORDS
    transfer_numbers: tuple[str, ...] = ()
    max_tool_calls: int = 16  # bridge tool calls run in one round
    reasoning: bool = False  # REASONING=pass: OpenAI chat callers receive the model's reasoning (never spoken)
    max_tool_argument_chars: int = 65_536  # of one tool call's arguments, as the model streams them
    max_answer_chars: int = 1_048_576  # one upstream answer: text, reasoning passed on, tool names, arguments
    greeting: str | None = None  # GREETING: what a socket session says first (None: wait for the caller)


@dataclass(frozen=True, slots=True)
class SocketSettings:
    """The WebSocket platforms' sessions (Twilio/Telnyx ConversationRelay, Retell)."""

    idle_timeout: float = 300.0  # SESSION_IDLE_TIMEOUT: a session that hears nothing this long is closed
    twilio_auth_token: str | None = None  # TWILIO_AUTH_TOKEN: checks ConversationRelay's X-Twilio-Signature


@dataclass(frozen=True, slots=True)
class RagSettings:
    """Agora's retrieval route: the knowledge folder and how passages are injected."""

    knowledge_dir: str | None = None
    knowledge_index: str | None = None
    waiting_phrases: tuple[str, ...] = DEFAULT_WAITING_PHRASES
    top_k: int = 3
    max_context_chars: int = 2000


@dataclass(frozen=True, slots=True)
class AudioSettings:
    """Agora's audio route: an optional fixed clip."""

    transcript_file: str | None = None
    pcm_file: str | None = None


@dataclass(frozen=True, slots=True)
class ResponsesSettings:
    """The Responses API's stored conversations (`previous_response_id`): where, how many, how long."""

    store_url: str | None = None  # RESPONSES_STORE_URL: a shared Redis; None keeps them in the process
    store_max: int = 1000  # RESPONSES_STORE_MAX: conversations kept (the oldest go first)
    store_ttl: float = 3600.0  # RESPONSES_STORE_TTL: seconds one is kept
    store_max_bytes: int = 262_144  # RESPONSES_STORE_MAX_BYTES: of one conversation, its oldest turns dropped past it


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs, parsed and checked."""

    server: ServerSettings = field(default_factory=ServerSettings)
    upstream: UpstreamSettings = field(default_factory=UpstreamSettings)
    deadlines: Deadlines = field(default_factory=Deadlines)
    answer: AnswerSettings = field(default_factory=AnswerSettings)
    rag: RagSettings = field(default_factory=RagSettings)
    audio: AudioSettings = field(default_factory=AudioSettings)
    sockets: SocketSettings = field(default_factory=SocketSettings)
    responses: ResponsesSettings = field(default_factory=ResponsesSettings)
    tokens: tuple[str, ...] = ()
    tools_file: str | None = None  # BRIDGE_TOOLS
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def default_model(self) -> str:
        """The model for requests that name none (the form route's)."""
        return self.upstream.model or DEFAULT_MODEL

    def secrets(self) -> list[str]:
        """Every configured secret value, for log and error-text redaction."""
        up = self.upstream
        values = [*self.tokens, up.openai_api_key, up.api_key, self.server.metrics_token,
                  self.sockets.twilio_auth_token]
        values += [backup.api_key for backup in up.backups]
        values.append(_url_password(self.responses.store_url))
        values += [v for k, v in self.env.items() if looks_secret(k)]
        return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)


def _url_password(url: str | None) -> str | None:
    """The password in a URL (`redis://:secret@host`), if any."""
    try:
        return urlsplit(url).password if url else None
    except ValueError:
        return None


def looks_secret(name: str) -> bool:
    """An environment variable whose value must never be shown."""
    upper = name.upper()
    return any(word in upper for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "_SK", "_AK"))
