"""The knowledge base behind the retrieval-augmented route: SQLite FTS5, no server.

`ensure_index(folder, index)` builds the index file from a folder of .md/.txt files when it
is missing or stale; `KnowledgeBase(index).search(question, top_k)` finds passages.
`python -m bridge.knowledge build` (re)builds the index from the command line.
"""

from bridge.knowledge.index import (
    BuildResult,
    KnowledgeError,
    build_index,
    default_index_path,
    ensure_index,
)
from bridge.knowledge.passages import Passage, split_passages
from bridge.knowledge.search import Hit, KnowledgeBase

__all__ = [
    "BuildResult",
    "Hit",
    "KnowledgeBase",
    "KnowledgeError",
    "Passage",
    "build_index",
    "default_index_path",
    "ensure_index",
    "split_passages",
]
