"""Where the bridge's own files are: the checkout it runs from (README, "Quick start").

Specs and the gunicorn settings ship beside the `bridge` package, not inside it; this is the
one place that knows so.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the checkout, two folders above this file
SPECS_DIR = ROOT / "specs"
GUNICORN_CONFIG = ROOT / "gunicorn.conf.py"
