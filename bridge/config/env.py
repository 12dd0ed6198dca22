"""Reading the settings from environment variables: every problem names its variable.

Parsing never touches the disk (files named by settings are checked at start-up by
`bridge.config.files`), so reading config is cheap and the same in the gunicorn master
and in each worker.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Mapping
from typing import Any

from bridge import jsonutil
from bridge.config.model import (
    CALL_TOOLS,
    DEFAULT_FAILURE_TEXT,
    DEFAULT_FILLER_PHRASES,
    DEFAULT_HANGUP_WORDS,
    DEFAULT_WAITING_PHRASES,
    AnswerSettings,
    AudioSettings,
    BackupUpstream,
    ConfigError,
    Deadlines,
    RagSettings,
    ResponsesSettings,
    ServerSettings,
    Settings,
    SocketSettings,
    UpstreamSettings,
)

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def read_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build settings from `env` (default: os.environ); raise ConfigError on bad values."""
    return _read(Reader(dict(os.environ if env is None else env)))


@functools.cache
def setting_names() -> frozenset[str]:
    """Every environment variable the bridge reads as a setting."""
    reader = Reader({})
    _read(reader)
    return frozenset(reader.read)


def _read(get: Reader) -> Settings:
    env = get.env
    return Settings(
        server=_server(get),
        upstream=_upstream(get),
        deadlines=Deadlines(
            connect=get.number("UPSTREAM_CONNECT_TIMEOUT", 3.0, lo=0.01, hi=600),
            first_token=get.number("UPSTREAM_TTFT_TIMEOUT", 10.0, lo=0.01, hi=600),
            idle=get.number("UPSTREAM_IDLE_TIMEOUT", 15.0, lo=0.01, hi=600),
            total=get.number("UPSTREAM_TOTAL_TIMEOUT", 120.0, lo=0.01, hi=3600),
        ),
        answer=_answer(get, env),
        rag=_rag(get),
        audio=_audio(get),
        sockets=SocketSettings(
            idle_timeout=get.number("SESSION_IDLE_TIMEOUT", 300.0, lo=0.1, hi=86_400),
            twilio_auth_token=get.text("TWILIO_AUTH_TOKEN"),
        ),
        responses=_responses(get),
        tokens=_tokens(get),
        tools_file=get.text("BRIDGE_TOOLS"),
        env=env,
    )


def _rag(get: Reader) -> RagSettings:
    if get.text("KNOWLEDGE_INDEX") is not None and get.text("KNOWLEDGE_DIR") is None:
        raise ConfigError("KNOWLEDGE_INDEX: set KNOWLEDGE_DIR too (the folder the index is built from)")
    return RagSettings(
        knowledge_dir=get.text("KNOWLEDGE_DIR"),
        knowledge_index=get.text("KNOWLEDGE_INDEX"),
        waiting_phrases=get.phrases("RAG_WAITING_PHRASES", DEFAULT_WAITING_PHRASES),
        top_k=get.integer("RAG_TOP_K", 3, lo=1, hi=20),
        max_context_chars=get.integer("RAG_MAX_CONTEXT_CHARS", 2000, lo=200, hi=100_000),
    )


def _server(get: Reader) -> ServerSettings:
    drain_timeout = get.number("DRAIN_TIMEOUT", 25.0, lo=0, hi=3600)
    drain_delay = get.number("DRAIN_DELAY", 0.0, lo=0, hi=3600)
    if drain_delay > drain_timeout:
        raise ConfigError(f"DRAIN_DELAY: must not exceed DRAIN_TIMEOUT ({drain_timeout:g}), got {drain_delay:g}")
    workers = get.integer("WEB_CONCURRENCY", 0, lo=1, hi=256)
    return ServerSettings(
        host=get.text("HOST") or "0.0.0.0",
        port=get.integer("PORT", 8080, lo=1, hi=65535),
        listen_backlog=get.integer("LISTEN_BACKLOG", 2048, lo=16, hi=65535),
        web_concurrency=workers or None,
        max_body_bytes=get.integer("MAX_BODY_BYTES", 4 * 1024 * 1024, lo=1024, hi=1 << 30),
        body_timeout=get.number("BODY_TIMEOUT", 10.0, lo=0.1, hi=600),
        max_concurrency=get.integer("MAX_CONCURRENCY", 1000, lo=1, hi=100_000),
        drain_timeout=drain_timeout,
        drain_delay=drain_delay,
        metrics_token=get.text("METRICS_TOKEN"),
        log_level=get.choice("LOG_LEVEL", LOG_LEVELS, "INFO"),
        agents_file=get.text("BRIDGE_AGENTS"),
        public_url=_public_url(get.text("PUBLIC_URL")),
        playground=get.choice("PLAYGROUND", ("ON", "OFF"), "ON") == "ON",
    )


def _public_url(raw: str | None) -> str | None:
    """PUBLIC_URL: an absolute http(s) or ws(s) URL with a host (the scheme platforms use varies)."""
    if raw is not None:
        scheme, _, rest = raw.partition("://")
        if scheme not in ("http", "https", "ws", "wss") or not rest.split("/", 1)[0]:
            raise ConfigError(f"PUBLIC_URL: must be an https:// (or wss://) URL with a host, got {raw!r}")
    return raw


def _upstream(get: Reader) -> UpstreamSettings:
    openai_base_url = get.url("OPENAI_BASE_URL")
    if openai_base_url and openai_base_url.rstrip("/").endswith("/chat/completions"):
        raise ConfigError("OPENAI_BASE_URL: give the base URL, without /chat/completions (e.g. "
                          "https://api.openai.com/v1): the bridge adds the path itself")
    openai_api_key = get.text("OPENAI_API_KEY")
    chat_path = get.text("OPENAI_CHAT_PATH") or "/chat/completions"
    if not chat_path.startswith("/") or any(c in chat_path for c in "?# "):
        raise ConfigError(f"OPENAI_CHAT_PATH: must be a path starting with '/', got {chat_path!r}")
    extra = get.items("UPSTREAM_EXTRA_PARAMS")
    for name in extra:
        if not name.replace("_", "").replace("-", "").isalnum():
            raise ConfigError(f"UPSTREAM_EXTRA_PARAMS: {name!r} is not a parameter name")
    return UpstreamSettings(
        name=get.text("UPSTREAM") or ("openai" if (openai_base_url or openai_api_key) else "echo"),
        openai_base_url=openai_base_url,
        openai_api_key=openai_api_key,
        openai_client=get.choice("OPENAI_CLIENT", ("AIOHTTP", "SDK"), "AIOHTTP").lower(),
        openai_chat_path=chat_path,
        base_url=get.url("UPSTREAM_BASE_URL"),
        api_key=get.text("UPSTREAM_API_KEY"),
        model=get.text("UPSTREAM_MODEL"),
        extra_params=extra,
        probe=get.choice("UPSTREAM_PROBE", ("ON", "OFF"), "ON") == "ON",
        backups=_backups(get.text("UPSTREAM_FALLBACKS")),
    )


def _answer(get: Reader, env: Mapping[str, str]) -> AnswerSettings:
    # FALLBACK_TEXT unset: the form route speaks the default phrase, the OpenAI routes answer an
    # error. Set: both speak it. Set but empty: neither does.
    failure_text = get.text("FALLBACK_TEXT")
    filler_ms = get.integer("FILLER_AFTER_MS", 0, lo=50, hi=60_000)
    call_tools = tuple(name.lower() for name in get.items("CALL_TOOLS"))
    for name in call_tools:
        if name not in CALL_TOOLS:
            raise ConfigError(f"CALL_TOOLS: unknown tool {name!r}; known: {', '.join(CALL_TOOLS)}")
    return AnswerSettings(
        system_prompt=get.text("SYSTEM_PROMPT"),
        max_history=get.integer("MAX_HISTORY", 20, lo=1, hi=1000),
        form_failure_text=failure_text if "FALLBACK_TEXT" in env else DEFAULT_FAILURE_TEXT,
        openai_failure_text=failure_text,
        speech_filter=get.choice("SPEECH_FILTER", ("ON", "OFF"), "ON") == "ON",
        think_prefilled=get.choice("THINK_PREFILLED", ("ON", "OFF"), "OFF") == "ON",
        filler_after_ms=filler_ms or None,
        filler_phrases=get.phrases("FILLER_PHRASES", DEFAULT_FILLER_PHRASES),
        call_tools=call_tools,
        hangup_words=get.text("HANGUP_WORDS") or DEFAULT_HANGUP_WORDS,
        transfer_numbers=get.items("TRANSFER_NUMBERS"),
        max_tool_calls=get.integer("MAX_TOOL_CALLS", 16, lo=1, hi=128),
        reasoning=get.choice("REASONING", ("DROP", "PASS"), "DROP") == "PASS",
        max_tool_argument_chars=get.integer("MAX_TOOL_ARGUMENT_CHARS", 65_536, lo=1024, hi=8 << 20),
        max_answer_chars=get.integer("MAX_ANSWER_CHARS", 1_048_576, lo=4096, hi=64 << 20),
        greeting=get.text("GREETING"),
    )


def _audio(get: Reader) -> AudioSettings:
    transcript, pcm = get.text("AUDIO_TRANSCRIPT_FILE"), get.text("AUDIO_PCM_FILE")
    if (transcript is None) != (pcm is None):
        raise ConfigError("AUDIO_TRANSCRIPT_FILE and AUDIO_PCM_FILE: set both (a transcript and its PCM) or neither")
    return AudioSettings(transcript_file=transcript, pcm_file=pcm)


def _responses(get: Reader) -> ResponsesSettings:
    url = get.text("RESPONSES_STORE_URL")
    if url is not None and not url.startswith(("redis://", "rediss://", "unix://")):
        scheme = url.partition("://")[0][:20] if "://" in url else "none"
        raise ConfigError(f"RESPONSES_STORE_URL: must be a redis://, rediss:// or unix:// URL, got scheme {scheme!r}")
    return ResponsesSettings(
        store_url=url,
        store_max=get.integer("RESPONSES_STORE_MAX", 1000, lo=1, hi=10_000_000),
        store_ttl=get.number("RESPONSES_STORE_TTL", 3600.0, lo=1, hi=30 * 86400),
        store_max_bytes=get.integer("RESPONSES_STORE_MAX_BYTES", 262_144, lo=1024, hi=64 << 20),
    )


def _tokens(get: Reader) -> tuple[str, ...]:
    """BRIDGE_TOKENS: comma-separated; a token with a space inside is a list mistyped ("a b")."""
    tokens = get.items("BRIDGE_TOKENS")
    for token in tokens:
        if any(c.isspace() for c in token):
            raise ConfigError("BRIDGE_TOKENS: a token contains whitespace; separate tokens with commas "
                              "(BRIDGE_TOKENS=token1,token2)")
    return tokens


class Reader:
    """Typed access to environment variables, raising ConfigError that names the variable.

    `read` collects every name asked for: reading an empty environment lists the settings
    (`setting_names`), which is how an agents file tells a setting from a misspelling.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.read: set[str] = set()

    def text(self, name: str) -> str | None:
        """The stripped value; unset and empty are both None."""
        self.read.add(name)
        value = self.env.get(name, "").strip()
        return value or None

    def _raw_number(self, name: str) -> str | None:
        self.read.add(name)
        if name not in self.env:
            return None
        raw = self.env[name].strip()
        if not raw:
            raise ConfigError(f"{name}: is set but empty; unset it to use the default, or give a value")
        return raw

    def integer(self, name: str, default: int, *, lo: int, hi: int) -> int:
        raw = self._raw_number(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a whole number, got {raw!r}") from None
        if not lo <= value <= hi:
            raise ConfigError(f"{name}: must be between {lo} and {hi}, got {raw!r}")
        return value

    def number(self, name: str, default: float, *, lo: float, hi: float) -> float:
        raw = self._raw_number(name)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number of seconds, got {raw!r}") from None
        if math.isnan(value) or not lo <= value <= hi:
            raise ConfigError(f"{name}: must be between {lo:g} and {hi:g}, got {raw!r}")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        raw = (self.text(name) or default).upper()
        if raw not in choices:
            raise ConfigError(f"{name}: must be one of {', '.join(choices)}, got {raw!r}")
        return raw

    def url(self, name: str) -> str | None:
        raw = self.text(name)
        if raw is not None:
            check_url(name, raw)
        return raw

    def items(self, name: str) -> tuple[str, ...]:
        """A comma-separated list, blanks dropped."""
        return tuple(item.strip() for item in (self.text(name) or "").split(",") if item.strip())

    def phrases(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        """A `|`-separated list of phrases, blanks dropped."""
        found = tuple(p.strip() for p in (self.text(name) or "").split("|") if p.strip())
        return found or default


def check_url(name: str, raw: str) -> None:
    """Raise ConfigError unless `raw` is an absolute http(s) URL."""
    if not raw.startswith(("http://", "https://")) or len(raw.split("://", 1)[1]) == 0:
        raise ConfigError(f"{name}: must be an http:// or https:// URL, got {raw!r}")


def _backups(raw: str | None) -> tuple[BackupUpstream, ...]:
    if raw is None:
        return ()
    name = "UPSTREAM_FALLBACKS"
    try:
        items: Any = jsonutil.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(items, list):
        raise ConfigError(f"{name}: must be a JSON list of objects")
    return tuple(_backup(f"{name}[{i}]", item) for i, item in enumerate(items))


def _backup(where: str, item: Any) -> BackupUpstream:
    """One entry of UPSTREAM_FALLBACKS: {"upstream", "base_url"?, "api_key"?, "model"?}."""
    if not isinstance(item, dict) or not isinstance(item.get("upstream"), str):
        raise ConfigError(f"{where}: must be an object with a string 'upstream'")
    unknown = set(item) - {"upstream", "base_url", "api_key", "model"}
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    for key in ("base_url", "api_key", "model"):
        if key in item and not isinstance(item[key], str):
            raise ConfigError(f"{where}.{key}: must be a string")
    if item.get("base_url"):
        check_url(f"{where}.base_url", item["base_url"])
    return BackupUpstream(**item)
