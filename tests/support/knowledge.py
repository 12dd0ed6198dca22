"""Damage done to a knowledge index on purpose, to test what the bridge does with a broken one."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def corrupt_the_search_table(index: Path) -> None:
    """Overwrite the FTS5 data's root page with garbage, in place: the file still opens."""
    conn = sqlite3.connect(index)
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    page = conn.execute("SELECT rootpage FROM sqlite_schema WHERE name = 'fts_data'").fetchone()[0]
    conn.close()
    with open(index, "r+b") as handle:
        handle.seek((page - 1) * page_size)
        handle.write(b"\xff" * page_size)
