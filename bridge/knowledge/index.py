"""The index file: an SQLite FTS5 database built from a knowledge folder.

Tables: `passages` (id, source, title, text), `fts` (a contentless FTS5 index of each
passage's title and text, see `text.index_text`), `meta` (format version, the folder's
fingerprint, the passage count). A build writes a temporary file and renames it over the
index, under a lock file, so worker processes starting together build once and a running
server never sees a half-built index.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import stat
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bridge.knowledge.passages import fingerprint, read_passages
from bridge.knowledge.text import index_text

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: builds are not serialized across processes
    fcntl = None  # type: ignore[assignment]

FORMAT_VERSION = "2"
INDEX_NAME = ".knowledge-index.sqlite3"
TOKENIZER = "porter unicode61 remove_diacritics 2"


class KnowledgeError(Exception):
    """The knowledge base cannot be built or opened; the message says why."""


@dataclass(frozen=True, slots=True)
class BuildResult:
    """What `ensure_index` did."""

    path: Path
    passages: int
    built: bool
    seconds: float


def default_index_path(folder: Path) -> Path:
    """Inside the knowledge folder when it is writable, else in this user's private temp folder."""
    if os.access(folder, os.W_OK):
        return folder / INDEX_NAME
    tag = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
    return private_temp_dir() / f"knowledge-{tag}.sqlite3"


def private_temp_dir() -> Path:
    """`<temp folder>/voice-bridge-<uid>`, created with mode 0700.

    The system temp folder is shared: an index (or lock file) at a name anyone can predict
    could be planted by another user, and a planted index is a prompt injection. So the
    folder must be a real directory (not a link), owned by us, that no one else can enter.
    """
    if not hasattr(os, "getuid"):  # pragma: no cover - not POSIX
        raise KnowledgeError("KNOWLEDGE_DIR is read-only: set KNOWLEDGE_INDEX to where the index goes")
    path = Path(tempfile.gettempdir()) / f"voice-bridge-{os.getuid()}"
    try:
        path.mkdir(mode=0o700, exist_ok=True)
        info = os.lstat(path)
    except OSError as exc:
        raise KnowledgeError(f"cannot create {path} for the knowledge index ({exc}); "
                             "set KNOWLEDGE_INDEX") from None
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise KnowledgeError(f"{path} is not a private folder of this user (it is a link, someone else's, "
                             "or open to others): remove it, or set KNOWLEDGE_INDEX")
    return path


def check_fts5() -> None:
    """Raise KnowledgeError when this Python's SQLite was built without FTS5."""
    try:
        sqlite3.connect(":memory:").execute(f"CREATE VIRTUAL TABLE t USING fts5(x, tokenize='{TOKENIZER}')")
    except sqlite3.Error as exc:
        raise KnowledgeError(f"SQLite {sqlite3.sqlite_version} lacks FTS5 ({exc})") from None


def stored_state(index: Path) -> tuple[str, int] | None:
    """(fingerprint, passage count) recorded in an index file, or None if unusable."""
    if not index.is_file():
        return None
    try:
        conn = sqlite3.connect(f"{index.resolve().as_uri()}?mode=ro", uri=True)
        try:
            meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        finally:
            conn.close()
    except sqlite3.Error:
        return None
    if meta.get("version") != FORMAT_VERSION:
        return None
    return meta.get("fingerprint", ""), int(meta.get("passages", 0))


def build_index(folder: Path, index: Path) -> int:
    """(Re)build `index` from `folder`; return the number of passages."""
    check_fts5()
    if not folder.is_dir():
        raise KnowledgeError(f"knowledge folder {folder} does not exist")
    digest = fingerprint(folder, FORMAT_VERSION)
    index.parent.mkdir(parents=True, exist_ok=True)
    tmp = index.with_name(f"{index.name}.tmp-{os.getpid()}")
    tmp.unlink(missing_ok=True)
    try:
        conn = sqlite3.connect(tmp)
        try:
            count = _fill(conn, folder, digest)
        finally:
            conn.close()
        os.replace(tmp, index)
    finally:
        tmp.unlink(missing_ok=True)
    return count


def _fill(conn: sqlite3.Connection, folder: Path, digest: str) -> int:
    conn.executescript(
        f"""PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF;
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE passages (id INTEGER PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL,
                               text TEXT NOT NULL);
        CREATE VIRTUAL TABLE fts USING fts5(terms, content='', tokenize='{TOKENIZER}');"""
    )
    count = 0
    batch: list[tuple[int, str, str, str]] = []
    for count, passage in enumerate(read_passages(folder), 1):
        batch.append((count, passage.source, passage.title, passage.text))
        if len(batch) == 1000:
            _insert(conn, batch)
    _insert(conn, batch)
    conn.execute("INSERT INTO fts(fts) VALUES ('optimize')")
    conn.executemany("INSERT INTO meta VALUES (?, ?)",
                     [("version", FORMAT_VERSION), ("fingerprint", digest), ("passages", str(count))])
    conn.commit()
    return count


def _insert(conn: sqlite3.Connection, batch: list[tuple[int, str, str, str]]) -> None:
    conn.executemany("INSERT INTO passages VALUES (?, ?, ?, ?)", batch)
    conn.executemany("INSERT INTO fts(rowid, terms) VALUES (?, ?)",
                     [(row[0], index_text(f"{row[2]}\n{row[3]}")) for row in batch])
    batch.clear()


def ensure_index(folder: Path, index: Path) -> BuildResult:
    """Build the index if it is missing or older than the folder's files; else leave it."""
    started = time.perf_counter()
    if not folder.is_dir():
        raise KnowledgeError(f"knowledge folder {folder} does not exist")
    try:
        state = stored_state(index)
        if state is not None and state[0] == fingerprint(folder, FORMAT_VERSION):
            return BuildResult(index, state[1], False, time.perf_counter() - started)
        with _build_lock(index):
            state = stored_state(index)  # another process may have built it while we waited
            if state is not None and state[0] == fingerprint(folder, FORMAT_VERSION):
                return BuildResult(index, state[1], False, time.perf_counter() - started)
            count = build_index(folder, index)
    except (OSError, sqlite3.Error) as exc:
        raise KnowledgeError(f"cannot build the knowledge index {index}: {exc}") from None
    return BuildResult(index, count, True, time.perf_counter() - started)


@contextmanager
def _build_lock(index: Path) -> Iterator[None]:
    index.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)  # never write through a planted link
    with open(os.open(index.with_name(index.name + ".lock"), flags, 0o600), "w") as handle:
        if fcntl is not None:
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            if fcntl is not None:
                fcntl.flock(handle, fcntl.LOCK_UN)
