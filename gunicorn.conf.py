"""gunicorn settings for the Procfile: `gunicorn --config gunicorn.conf.py`.

WEB_CONCURRENCY worker processes (default: one per CPU) share $HOST:$PORT; each is a
bridge.worker.BridgeWorker running bridge.server:create_app on its own event loop. The
configuration is validated here, in the master, so a bad variable stops the deploy with
one clear line before any worker starts (a worker that still fails to build the app is a
boot error: gunicorn stops rather than respawning it).
"""

from __future__ import annotations

import math
import os
import sys

import bridge.server  # noqa: F401  loaded once here: workers fork with it (quick boot, shared pages)
from bridge.config import ConfigError, Settings
from bridge.upstreams import build_upstreams

try:
    _settings = Settings.from_env()
    build_upstreams(_settings)  # names, URLs and specs (connections open lazily, in the workers)
except ConfigError as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

# gunicorn reads WEB_CONCURRENCY itself when set; otherwise one worker per CPU.
workers = int(os.environ.get("WEB_CONCURRENCY") or os.cpu_count() or 1)
wsgi_app = "bridge.server:create_app"
worker_class = "bridge.worker.BridgeWorker"
bind = [f"[{_settings.host}]:{_settings.port}" if ":" in _settings.host else f"{_settings.host}:{_settings.port}"]
# SIGTERM: workers drain in-flight streams for DRAIN_TIMEOUT seconds; the master waits a
# little longer before it kills them.
graceful_timeout = math.ceil(_settings.drain_timeout) + 5
timeout = 30  # a worker whose event loop is stuck this long is restarted
accesslog = None  # the bridge writes its own JSON line per request
errorlog = "-"
loglevel = "warning" if _settings.log_level in ("WARNING", "ERROR") else "info"
control_socket_disable = True  # no gunicornc socket in $HOME: a dyno has no use for it
