"""`python -m bridge.knowledge build|search`: (re)build the index, or try a question.

Folder and index default to KNOWLEDGE_DIR and KNOWLEDGE_INDEX, as the server reads them.

    python -m bridge.knowledge build                  # always rebuilds
    python -m bridge.knowledge search "退货政策是什么？"   # builds first if stale
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import time
from pathlib import Path

from bridge.knowledge.index import KnowledgeError, build_index, default_index_path, ensure_index
from bridge.knowledge.search import KnowledgeBase


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bridge.knowledge", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "search"))
    parser.add_argument("question", nargs="?", default="", help="for search")
    parser.add_argument("--dir", default=os.environ.get("KNOWLEDGE_DIR"), help="default: $KNOWLEDGE_DIR")
    parser.add_argument("--index", default=os.environ.get("KNOWLEDGE_INDEX"), help="default: $KNOWLEDGE_INDEX, "
                        "else .knowledge-index.sqlite3 in the folder (if read-only: in <temp>/voice-bridge-<uid>)")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args(argv)
    if not args.dir:
        parser.error("no knowledge folder: pass --dir or set KNOWLEDGE_DIR")
    folder = Path(args.dir)
    try:
        index = Path(args.index) if args.index else default_index_path(folder)
        if args.command == "build":
            started = time.perf_counter()
            count = build_index(folder, index)
            print(f"indexed {count} passages from {folder} into {index} in {time.perf_counter() - started:.2f}s")
            return 0
        ensure_index(folder, index)
        for hit in KnowledgeBase(index).search(args.question, args.top_k):
            print(f"[{hit.score:.2f}] {hit.passage.label}\n{hit.passage.text}\n")
    except (KnowledgeError, OSError, sqlite3.Error) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
