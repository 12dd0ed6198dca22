"""Settings read from environment variables and validated once, at start-up.

Every problem is reported as a `ConfigError` whose message names the variable and what is
wrong with it, so a misconfigured deploy fails loudly instead of answering callers badly.
"""

from bridge.config.env import check_url, read_settings
from bridge.config.files import check_files
from bridge.config.model import (
    DEFAULT_FAILURE_TEXT,
    DEFAULT_MODEL,
    AnswerSettings,
    AudioSettings,
    BackupUpstream,
    ConfigError,
    Deadlines,
    RagSettings,
    ServerSettings,
    Settings,
    SocketSettings,
    UpstreamSettings,
)

__all__ = [
    "DEFAULT_FAILURE_TEXT",
    "DEFAULT_MODEL",
    "AnswerSettings",
    "AudioSettings",
    "BackupUpstream",
    "ConfigError",
    "Deadlines",
    "RagSettings",
    "ServerSettings",
    "Settings",
    "SocketSettings",
    "UpstreamSettings",
    "check_files",
    "check_url",
    "read_settings",
]
