"""Settings read from environment variables and validated once, at start-up.

Every problem is reported as a `ConfigError` whose message names the variable and what is
wrong with it, so a misconfigured deploy fails loudly instead of answering callers badly.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bridge import jsonutil

T = TypeVar("T")

DEFAULT_MODEL = "gpt-4o-mini"
DEFAULT_FALLBACK_TEXT = "Sorry, I can't answer right now. Please try again in a moment."
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_WAITING_PHRASES = ("Just a moment, I'm thinking...", "稍等，我想一想……")


class ConfigError(Exception):
    """A setting is missing or invalid; the message names the variable."""


@dataclass(frozen=True, slots=True)
class FallbackUpstream:
    """One entry of UPSTREAM_FALLBACKS: another upstream to try when the primary fails."""

    upstream: str
    base_url: str | None = None
    api_key: str | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service needs, parsed and checked."""

    host: str = "0.0.0.0"
    port: int = 8080
    tokens: tuple[str, ...] = ()
    upstream: str = "echo"
    openai_base_url: str | None = None
    openai_api_key: str | None = None
    openai_client: str = "aiohttp"
    upstream_base_url: str | None = None
    upstream_api_key: str | None = None
    upstream_model: str | None = None
    system_prompt: str | None = None
    max_history: int = 20
    log_level: str = "INFO"
    max_body_bytes: int = 4 * 1024 * 1024
    max_concurrency: int = 1000
    connect_timeout: float = 3.0
    ttft_timeout: float = 10.0
    idle_timeout: float = 15.0
    total_timeout: float = 120.0
    fallbacks: tuple[FallbackUpstream, ...] = ()
    form_fallback_text: str | None = DEFAULT_FALLBACK_TEXT
    openai_fallback_text: str | None = None
    drain_timeout: float = 25.0
    metrics_token: str | None = None
    knowledge_dir: str | None = None
    knowledge_index: str | None = None
    rag_waiting_phrases: tuple[str, ...] = DEFAULT_WAITING_PHRASES
    rag_top_k: int = 3
    rag_max_context_chars: int = 2000
    audio_transcript_file: str | None = None
    audio_pcm_file: str | None = None
    env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def default_model(self) -> str:
        """The model for requests that name none (the form endpoint's)."""
        return self.upstream_model or DEFAULT_MODEL

    def secrets(self) -> list[str]:
        """Every configured secret value, for log and error-text redaction."""
        values = [*self.tokens, self.openai_api_key, self.upstream_api_key, self.metrics_token]
        values += [fb.api_key for fb in self.fallbacks]
        values += [v for k, v in self.env.items() if _looks_secret(k)]
        return sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Build settings from `env` (default: os.environ); raise ConfigError on bad values."""
        env = dict(os.environ if env is None else env)
        get = _Reader(env)
        openai_base_url = get.text("OPENAI_BASE_URL")
        openai_api_key = get.text("OPENAI_API_KEY")
        default_upstream = "openai" if (openai_base_url or openai_api_key) else "echo"
        # FALLBACK_TEXT unset: the form endpoint speaks the default phrase, the OpenAI endpoint
        # answers an error. Set: both speak it. Set but empty: neither does.
        fallback_text = get.text("FALLBACK_TEXT")
        form_fallback = fallback_text if "FALLBACK_TEXT" in env else DEFAULT_FALLBACK_TEXT
        return cls(
            host=get.text("HOST") or "0.0.0.0",
            port=get.number("PORT", int, 8080, lo=1, hi=65535),
            tokens=tuple(t.strip() for t in (get.text("BRIDGE_TOKENS") or "").split(",") if t.strip()),
            upstream=get.text("UPSTREAM") or default_upstream,
            openai_base_url=get.url("OPENAI_BASE_URL"),
            openai_api_key=openai_api_key,
            openai_client=get.choice("OPENAI_CLIENT", ("AIOHTTP", "SDK"), "AIOHTTP").lower(),
            upstream_base_url=get.url("UPSTREAM_BASE_URL"),
            upstream_api_key=get.text("UPSTREAM_API_KEY"),
            upstream_model=get.text("UPSTREAM_MODEL"),
            system_prompt=get.text("SYSTEM_PROMPT"),
            max_history=get.number("MAX_HISTORY", int, 20, lo=1, hi=1000),
            log_level=get.choice("LOG_LEVEL", LOG_LEVELS, "INFO"),
            max_body_bytes=get.number("MAX_BODY_BYTES", int, 4 * 1024 * 1024, lo=1024, hi=1 << 30),
            max_concurrency=get.number("MAX_CONCURRENCY", int, 1000, lo=1, hi=100_000),
            connect_timeout=get.number("UPSTREAM_CONNECT_TIMEOUT", float, 3.0, lo=0.01, hi=600),
            ttft_timeout=get.number("UPSTREAM_TTFT_TIMEOUT", float, 10.0, lo=0.01, hi=600),
            idle_timeout=get.number("UPSTREAM_IDLE_TIMEOUT", float, 15.0, lo=0.01, hi=600),
            total_timeout=get.number("UPSTREAM_TOTAL_TIMEOUT", float, 120.0, lo=0.01, hi=3600),
            fallbacks=_parse_fallbacks(get.text("UPSTREAM_FALLBACKS")),
            form_fallback_text=form_fallback,
            openai_fallback_text=fallback_text,
            drain_timeout=get.number("DRAIN_TIMEOUT", float, 25.0, lo=0, hi=3600),
            metrics_token=get.text("METRICS_TOKEN"),
            **_agora_settings(get),
            env=env,
        )


def _looks_secret(name: str) -> bool:
    upper = name.upper()
    return any(word in upper for word in ("KEY", "TOKEN", "SECRET", "PASSWORD", "_SK", "_AK"))


class _Reader:
    """Typed access to environment variables, raising ConfigError that names the variable."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def text(self, name: str) -> str | None:
        value = self.env.get(name, "").strip()
        return value or None

    def number(self, name: str, kind: Callable[[str], T], default: T, *, lo: float, hi: float) -> T:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a {kind.__name__}, got {raw!r}") from None
        if not (lo <= value <= hi) or (isinstance(value, float) and math.isnan(value)):  # type: ignore[operator]
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


def check_url(name: str, raw: str) -> None:
    """Raise ConfigError unless `raw` is an absolute http(s) URL."""
    if not raw.startswith(("http://", "https://")) or len(raw.split("://", 1)[1]) == 0:
        raise ConfigError(f"{name}: must be an http:// or https:// URL, got {raw!r}")


def _parse_fallbacks(raw: str | None) -> tuple[FallbackUpstream, ...]:
    if raw is None:
        return ()
    name = "UPSTREAM_FALLBACKS"
    try:
        items: Any = jsonutil.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name}: not valid JSON ({exc})") from None
    if not isinstance(items, list):
        raise ConfigError(f"{name}: must be a JSON list of objects")
    fallbacks = []
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
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
        fallbacks.append(FallbackUpstream(**item))
    return tuple(fallbacks)


def _agora_settings(get: _Reader) -> dict[str, Any]:
    """KNOWLEDGE_*, RAG_* and AUDIO_* for Agora's retrieval and audio routes."""
    knowledge_dir, knowledge_index = get.text("KNOWLEDGE_DIR"), get.text("KNOWLEDGE_INDEX")
    if knowledge_dir is not None and not os.path.isdir(knowledge_dir):
        raise ConfigError(f"KNOWLEDGE_DIR: {knowledge_dir!r} is not a directory")
    if knowledge_index is not None and knowledge_dir is None:
        raise ConfigError("KNOWLEDGE_INDEX: set KNOWLEDGE_DIR too (the folder the index is built from)")
    phrases = tuple(p.strip() for p in (get.text("RAG_WAITING_PHRASES") or "").split("|") if p.strip())
    transcript, pcm = get.text("AUDIO_TRANSCRIPT_FILE"), get.text("AUDIO_PCM_FILE")
    if (transcript is None) != (pcm is None):
        raise ConfigError("AUDIO_TRANSCRIPT_FILE and AUDIO_PCM_FILE: set both (a transcript and its PCM) or neither")
    for name, path in (("AUDIO_TRANSCRIPT_FILE", transcript), ("AUDIO_PCM_FILE", pcm)):
        if path is not None and not os.path.isfile(path):
            raise ConfigError(f"{name}: {path!r} is not a file")
    if pcm is not None and os.path.getsize(pcm) % 2:
        raise ConfigError(f"AUDIO_PCM_FILE: {pcm!r} has an odd size; expected 16-bit samples")
    return {
        "knowledge_dir": knowledge_dir,
        "knowledge_index": knowledge_index,
        "rag_waiting_phrases": phrases or DEFAULT_WAITING_PHRASES,
        "rag_top_k": get.number("RAG_TOP_K", int, 3, lo=1, hi=20),
        "rag_max_context_chars": get.number("RAG_MAX_CONTEXT_CHARS", int, 2000, lo=200, hi=100_000),
        "audio_transcript_file": transcript,
        "audio_pcm_file": pcm,
    }
