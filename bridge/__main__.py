"""`python -m bridge`: the Procfile's web process, gunicorn running the bridge's workers.

The configuration is checked first: gunicorn reads WEB_CONCURRENCY itself when it is
imported and stops with a traceback on a value that is not a number, before any
configuration file of ours could say what is wrong. Then gunicorn runs with
gunicorn.conf.py (the workers, the listen backlog, the drain, metrics across workers).
"""

from __future__ import annotations

import sys

from bridge.config import ConfigError, read_settings
from bridge.config.paths import GUNICORN_CONFIG


def main() -> int:
    try:
        read_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from gunicorn.app.wsgiapp import run

    sys.argv = [sys.argv[0], "--config", str(GUNICORN_CONFIG), *sys.argv[1:]]
    run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
