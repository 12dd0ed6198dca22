"""Searching an index file: BM25 ranking by FTS5, plus a relevance cut.

A question matches passages sharing any of its keywords (`text.query_terms`); FTS5 ranks
them by BM25. Kept are the best `top_k` scoring at least RELATIVE_CUT of the best one.

In a knowledge base of MIN_PASSAGES_FOR_FLOOR passages or more, keywords found in over half
of all passages are dropped from the question: BM25 gives them no weight (FTS5 clamps their
IDF to ~0), so a match on them alone says nothing about relevance, and scoring the thousands
of passages they match is what would make a search slow. Document frequencies come from
the index (a cheap count per keyword) and are cached until the index file changes.

Searches run in worker threads (`asearch`) so the event loop never waits on SQLite; each
thread has its own read-only connection, reopened when the index file is rebuilt.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from bridge.knowledge.index import FORMAT_VERSION, KnowledgeError
from bridge.knowledge.passages import Passage
from bridge.knowledge.text import match_expression, query_terms

RELATIVE_CUT = 0.35
SCORE_FLOOR = 1e-3
MIN_PASSAGES_FOR_FLOOR = 20
DF_CACHE_SIZE = 100_000

_QUERY = """
SELECT p.source, p.title, p.text, -f.rank FROM
  (SELECT rowid, rank FROM fts WHERE fts MATCH ? ORDER BY rank LIMIT ?) AS f
  JOIN passages AS p ON p.id = f.rowid
ORDER BY f.rank
"""


@dataclass(frozen=True, slots=True)
class Hit:
    """A passage found for a question, with its BM25 score (higher is better)."""

    passage: Passage
    score: float


class KnowledgeBase:
    """Read-only access to one index file."""

    def __init__(self, index: Path) -> None:
        self.index = index
        self._local = threading.local()
        self.passages = 0
        self._df: dict[str, int] = {}
        self._df_signature: tuple[int, int] | None = None
        try:
            self._connection()  # fail now, not on the first question, if the file is unusable
        except sqlite3.Error as exc:
            raise KnowledgeError(f"cannot open knowledge index {index}: {exc}") from None

    def search(self, question: str, top_k: int) -> list[Hit]:
        """The passages most relevant to `question`, best first; [] when none is.

        Raises KnowledgeError when the index file is missing, damaged or unreadable.
        """
        terms = query_terms(question)
        if not terms:
            return []
        try:
            return self._search(terms, top_k)
        except (sqlite3.Error, OSError) as exc:
            raise KnowledgeError(f"knowledge index {self.index} cannot be searched: {exc}") from None

    def _search(self, terms: list[str], top_k: int) -> list[Hit]:
        conn = self._connection()
        floor = 0.0
        if self.passages >= MIN_PASSAGES_FOR_FLOOR:
            floor = SCORE_FLOOR
            terms = [t for t in terms if self._doc_frequency(conn, t) * 2 <= self.passages]
            if not terms:
                return []
        rows = conn.execute(_QUERY, (match_expression(terms), top_k)).fetchall()
        if not rows:
            return []
        best = rows[0][3]
        return [Hit(Passage(source, title, text), score) for source, title, text, score in rows
                if score >= best * RELATIVE_CUT and score > floor]

    def _doc_frequency(self, conn: sqlite3.Connection, term: str) -> int:
        """How many passages contain `term` (as the index's tokenizer sees it)."""
        df = self._df.get(term)
        if df is None:
            df = conn.execute("SELECT count(*) FROM fts WHERE fts MATCH ?", (match_expression([term]),)).fetchone()[0]
            if len(self._df) >= DF_CACHE_SIZE:
                self._df.clear()
            self._df[term] = df
        return df

    async def asearch(self, question: str, top_k: int) -> list[Hit]:
        """`search` in a worker thread."""
        return await asyncio.to_thread(self.search, question, top_k)

    def _connection(self) -> sqlite3.Connection:
        try:
            stat = os.stat(self.index)
        except OSError as exc:
            raise KnowledgeError(f"knowledge index {self.index} is missing ({exc.strerror})") from None
        signature = (stat.st_ino, stat.st_mtime_ns)
        local = self._local
        if getattr(local, "signature", None) != signature:
            if getattr(local, "conn", None) is not None:
                local.conn.close()
            local.conn = _open(self.index)
            local.signature = signature
            self.passages = local.conn.execute("SELECT count(*) FROM passages").fetchone()[0]
            if self._df_signature != signature:
                self._df, self._df_signature = {}, signature
        conn: sqlite3.Connection = local.conn
        return conn


def _open(index: Path) -> sqlite3.Connection:
    try:
        conn = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True, check_same_thread=False)
        version = conn.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
    except sqlite3.Error as exc:
        raise KnowledgeError(f"cannot open knowledge index {index}: {exc}") from None
    if version is None or version[0] != FORMAT_VERSION:
        conn.close()
        raise KnowledgeError(f"knowledge index {index} has another format; rebuild it")
    return conn
