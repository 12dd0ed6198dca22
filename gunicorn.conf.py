"""gunicorn settings for the Procfile: `gunicorn --config gunicorn.conf.py`.

WEB_CONCURRENCY worker processes (default: one per CPU) share $HOST:$PORT; each is a
bridge.process.worker.BridgeWorker running bridge.process.app:create_app on its own event loop. The
configuration is validated here, in the master, so a bad variable stops the deploy with
one clear line before any worker starts (a worker that still fails to build the app is a
boot error: gunicorn stops rather than respawning it).

Metrics: every worker writes its figures to PROMETHEUS_MULTIPROC_DIR (a private temporary
folder unless set), so one scrape of /metrics shows all workers.
"""

from __future__ import annotations

import math
import os
import shutil
import sys
import tempfile
from typing import Any

# Before prometheus_client is imported (by bridge.process.app below): it picks its storage then.
if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir = tempfile.mkdtemp(prefix="bridge-metrics-")
else:
    _metrics_dir = ""

import bridge.process.app  # noqa: F401  loaded once here: workers fork with it (quick boot, shared pages)
from bridge.config import ConfigError, read_settings
from bridge.pipeline.agents import check_configuration

try:
    _settings = read_settings()
    check_configuration(_settings)  # every agent's settings, files and upstreams (connections open in the workers)
except ConfigError as exc:
    print(f"configuration error: {exc}", file=sys.stderr)
    raise SystemExit(2) from None

_server = _settings.server
workers = _server.web_concurrency or os.cpu_count() or 1
wsgi_app = "bridge.process.app:create_app"
worker_class = "bridge.process.worker.BridgeWorker"
bind = [f"[{_server.host}]:{_server.port}" if ":" in _server.host else f"{_server.host}:{_server.port}"]
backlog = _server.listen_backlog
# SIGTERM: each worker drains and exits within DRAIN_TIMEOUT + 1 s (bridge/process/lifecycle.py); the
# master waits a little longer before it would kill one.
graceful_timeout = math.ceil(_server.drain_timeout) + 2
timeout = 30  # a worker whose event loop is stuck this long is restarted
accesslog = None  # the bridge writes its own JSON line per request
errorlog = "-"
loglevel = "warning" if _server.log_level in ("WARNING", "ERROR") else "info"
control_socket_disable = True  # no gunicornc socket in $HOME: a dyno has no use for it


def when_ready(server: Any) -> None:
    """SIGHUP to the master reloads BRIDGE_AGENTS in each worker, instead of restarting them."""
    from bridge.compat import forward_sighup

    forward_sighup(server)


def child_exit(server: Any, worker: Any) -> None:
    """A worker is gone: its in-flight gauge no longer counts."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """The master stops: remove the metrics folder it made (never one the operator set)."""
    if _metrics_dir:
        shutil.rmtree(_metrics_dir, ignore_errors=True)
