"""Reading a knowledge folder and splitting its .md/.txt files into passages.

A passage is a few paragraphs under one heading: paragraphs (blank-line separated) are
merged while they fit in TARGET_CHARS; a paragraph longer than MAX_CHARS is cut at sentence
ends, and a sentence longer than that at MAX_CHARS. Each passage remembers its file and its
heading trail ("Returns > Refund policy"), which is searched along with the text.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

EXTENSIONS = (".md", ".markdown", ".txt")
TARGET_CHARS = 600
MAX_CHARS = 1000

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_SENTENCE_END = re.compile(r"(?<=[.!?。！？；;])\s*")


@dataclass(frozen=True, slots=True)
class Passage:
    """One searchable piece of the knowledge base."""

    source: str  # the file, relative to the knowledge folder
    title: str  # the heading trail, "" when none
    text: str

    @property
    def label(self) -> str:
        return f"{self.source} > {self.title}" if self.title else self.source


def source_files(folder: Path) -> list[Path]:
    """The .md/.txt files under `folder`, sorted, skipping hidden files and folders.

    A link is followed only when it stays inside the folder: a link to a file elsewhere
    (another user's notes, /etc) never reaches the index and so never reaches a prompt.
    Links to folders are not walked.
    """
    root_real = os.path.realpath(folder)
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in files:
            path = Path(root, name)
            if name.startswith(".") or not name.lower().endswith(EXTENSIONS):
                continue
            if path.is_symlink() and not _inside(os.path.realpath(path), root_real):
                continue
            found.append(path)
    return sorted(found)


def _inside(path: str, folder: str) -> bool:
    return os.path.commonpath([path, folder]) == folder


def fingerprint(folder: Path, version: str) -> str:
    """A digest of every source file's name, size and modification time: changes when they do."""
    digest = hashlib.sha256(version.encode())
    for path in source_files(folder):
        stat = path.stat()
        digest.update(f"\0{path.relative_to(folder).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def read_passages(folder: Path) -> Iterator[Passage]:
    """Every passage of every source file under `folder`."""
    for path in source_files(folder):
        text = path.read_text(encoding="utf-8-sig", errors="replace")
        yield from split_passages(path.relative_to(folder).as_posix(), text)


def split_passages(source: str, text: str) -> Iterator[Passage]:
    """Split one document into passages (Markdown headings give them titles)."""
    markdown = not source.lower().endswith(".txt")
    titles = _Titles()
    packer = _Packer(source)
    for block in _blocks(_strip_front_matter(text) if markdown else text, markdown):
        if block[0] == "#":
            yield from packer.flush(titles.title)
            titles.heading(block)
            continue
        for piece in _cut(block[1:]):
            yield from packer.add(piece, titles.title)
    yield from packer.flush(titles.title)


class _Packer:
    """Pieces of text packed into passages of about TARGET_CHARS."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.current: list[str] = []
        self.size = 0

    def add(self, piece: str, title: str) -> list[Passage]:
        done = self.flush(title) if self.current and self.size + len(piece) > TARGET_CHARS else []
        self.current.append(piece)
        self.size += len(piece) + 2
        return done

    def flush(self, title: str) -> list[Passage]:
        if not self.current:
            return []
        passage = Passage(self.source, title, "\n\n".join(self.current))
        self.current, self.size = [], 0
        return [passage]


class _Titles:
    """The trail of headings above the text: "Returns > Refunds"."""

    def __init__(self) -> None:
        self.trail: list[str] = []
        self.title = ""

    def heading(self, block: str) -> None:
        level, heading = block[1:].split(" ", 1)
        del self.trail[int(level) - 1 :]
        self.trail += [""] * (int(level) - 1 - len(self.trail)) + [heading]
        self.title = " > ".join(t for t in self.trail if t)


def _blocks(text: str, markdown: bool) -> Iterator[str]:
    """Paragraphs as "|text" and headings as "#<level> title", in document order."""
    lines: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        heading = _HEADING.match(line) if markdown else None
        if heading or not line:
            if lines:
                yield "|" + "\n".join(lines)
                lines = []
            if heading and heading.group(2):
                yield f"#{len(heading.group(1))} {heading.group(2)}"
            continue
        lines.append(line)
    if lines:
        yield "|" + "\n".join(lines)


def _cut(paragraph: str) -> Iterator[str]:
    """A paragraph in pieces of at most MAX_CHARS, cut at sentence ends where possible."""
    if len(paragraph) <= MAX_CHARS:
        yield paragraph
        return
    piece = ""
    for sentence in _sentences(paragraph):
        if piece and len(piece) + 1 + len(sentence) > MAX_CHARS:
            yield piece
            piece = ""
        if piece and sentence:
            piece += ("" if piece[-1] in "。！？；" else " ") + sentence
        else:
            piece = piece or sentence
    if piece:
        yield piece


def _sentences(paragraph: str) -> Iterator[str]:
    """The paragraph's sentences; one longer than MAX_CHARS comes in MAX_CHARS slices."""
    for sentence in _SENTENCE_END.split(paragraph):
        while len(sentence) > MAX_CHARS:
            yield sentence[:MAX_CHARS]
            sentence = sentence[MAX_CHARS:]
        yield sentence


def _strip_front_matter(text: str) -> str:
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[end + 4 :]
    return text
