"""The docs' examples as the doc-tests read them: one convention for every page.

Every fenced block in the docs (README.md, docs/, docs/platforms/, specs/README.md, bench/) says
what it is in its info string: a language, a kind, and options (```` ```sh curl fixture=vapi ````).
`KINDS` lists every kind and the test module that runs it; a block of any other kind fails
tests/test_docs_examples.py. The placeholder rule is the same everywhere:

- `http://localhost:8080` (or `ws://localhost:8080`) is the bridge that `.venv/bin/python app.py`
  starts; a doc-test points it at the bridge it started, with the settings of the last
  `sh start` block above it in the same file;
- `change-me-0123456789` is the token those start blocks put in BRIDGE_TOKENS;
- `...` in a value (`OPENAI_API_KEY=sk-...`) is the reader's own secret: the doc-test fills in
  `docs-example-0123456789`;
- `your-app.example.com` is the bridge's public host, in console fields (never called);
- `…` in printed output stands for what varies (ids, times): it matches any text.
"""

from __future__ import annotations

import functools
import re
import shlex
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DOCS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs" / "platforms").glob("*.md")),
        ROOT / "specs" / "README.md", *sorted((ROOT / "bench").glob("*.md")))
BRIDGE_URL = "http://localhost:8080"
TOKEN = "change-me-0123456789"
SECRET = "docs-example-0123456789"  # what `...` stands for when a doc-test runs a command
ANY = "…"  # in printed output: any text

# kind -> (the test module that runs it, how). Every kind a doc may use is here.
KINDS: dict[str, tuple[str, str]] = {
    "sh install": ("test_docs_examples", "not run (it installs packages): compared with .ci/run, which runs it "
                                         "from a clean clone"),
    "sh start": ("test_docs_examples", "its settings read and the app built; later curls in the file run against "
                                       "a bridge started with them"),
    "sh start-fails": ("test_docs_examples", "run as a process: it must stop with the `text error` line printed "
                                             "after it"),
    "sh curl": ("test_docs_examples", "run with curl against the bridge; its output matched against the block "
                                      "after it, its `Logged:` line against the log"),
    "sh command": ("test_docs_examples", "run with bash in a scratch folder, output matched"),
    "python run": ("test_docs_examples", "run with the venv's python against the bridge, output matched"),
    "sh deploy": ("test_docs_examples", "not run (needs a Heroku account, a Docker engine or a cluster): its "
                                        "settings, names and tags checked against app.json and the manifests"),
    "sh bench": ("test_docs_examples", "not run (a benchmark takes minutes): the script's --help runs"),
    "json output": ("test_docs_examples", "the JSON the command before it prints, every field shown"),
    "text output": ("test_docs_examples", "what the command before it prints, `…` matching any text"),
    "sse output": ("test_docs_examples", "the stream the command before it prints, `…` matching any text"),
    "text error": ("test_docs_examples", "the line the `sh start-fails` block before it prints"),
    "sse sketch": ("test_docs_examples", "a stream the echo model cannot produce: its `scenario=` run against a "
                                         "fake upstream, the stream matched"),
    "text bench-output": ("test_docs_examples", "skipped: a benchmark's recorded figures, which vary from run to "
                                                "run (bench/README.md says when they were taken)"),
    "text tree": ("test_docs_examples", "every path exists and every package of bridge/ is listed"),
    "json agora-llm": ("test_docs_examples", "Agora's `llm` block: its URL is an Agora route of the bridge"),
    "xml twiml": ("test_docs_examples", "TwiML/TeXML: parsed, its ConversationRelay URL a route of the bridge"),
    "json relay-end": ("test_docs_examples", "the `end` message the bridge sends"),
    "json tools": ("test_tools_doc", "loaded by the real loader and run end to end"),
    "sse worked-example": ("test_tools_doc", "the stream of the worked example, run end to end"),
    "json worked-example-log": ("test_tools_doc", "the log line of the worked example"),
    "text tools-errors": ("test_tools_doc", "each line reproduced by loading a tools file with that mistake"),
    "json agents": ("test_agents", "loaded into a running deployment of its agents"),
    **{f"json {kind}": ("test_specs_readme", "compiled inside a spec and run against a fake provider")
       for kind in ("spec", "field", "converter", "resp", "payload", "condition", "filter", "finish_reasons",
                    "original-filter", "log")},
    "sh try": ("test_specs_readme", "the worked spec run end to end"),
    "text errors": ("test_specs_readme", "each line reproduced by loading the broken spec"),
}
OUTPUTS = ("json output", "text output", "sse output", "text error")


@dataclass
class Block:
    doc: Path
    kind: str  # language and kind: "sh curl"
    options: dict[str, str]  # key=value words after the kind
    text: str
    before: str  # the prose between the previous block and this one
    line: int
    after: str = ""  # the prose up to the next block
    index: int = 0  # its place in the file's blocks
    blocks: list[Block] = field(default_factory=list, repr=False)  # the file's blocks

    @property
    def name(self) -> str:
        return f"{self.doc.relative_to(ROOT)}:{self.line}"

    @property
    def next(self) -> Block | None:
        return self.blocks[self.index + 1] if self.index + 1 < len(self.blocks) else None

    def earlier(self, kind: str) -> list[Block]:
        return [b for b in self.blocks[: self.index] if b.kind == kind]


@functools.cache
def blocks(doc: Path) -> list[Block]:
    """Every fenced block of `doc`, in order."""
    source = doc.read_text(encoding="utf-8")
    found: list[Block] = []
    pos = 0
    for match in re.finditer(r"^( *)```([^\n]*)\n(.*?)^\1```$", source, re.S | re.M):
        words = match.group(2).split()
        kind = " ".join(w for w in words[:2] if "=" not in w)
        options = dict(w.split("=", 1) for w in words[2:] if "=" in w)
        text = textwrap.dedent(match.group(3)) if match.group(1) else match.group(3)
        found.append(Block(doc, kind, options, text, source[pos:match.start()],
                           source.count("\n", 0, match.start()) + 1))
        if len(found) > 1:
            found[-2].after = found[-1].before
        pos = match.end()
    if found:
        found[-1].after = source[pos:]
    for i, block in enumerate(found):
        block.index, block.blocks = i, found
    return found


def all_blocks() -> list[Block]:
    return [b for doc in DOCS for b in blocks(doc)]


def of(*kinds: str) -> list[Block]:
    return [b for b in all_blocks() if b.kind in kinds]


# -- commands ----------------------------------------------------------------------------------------

def filled(value: str) -> str:
    """A setting's value as the doc-test uses it: `...` is the reader's secret."""
    return value.replace("...", SECRET)


def start_environment(text: str) -> dict[str, str]:
    """The settings of a start block: `export` lines and the words before `.venv/bin/python app.py`."""
    env: dict[str, str] = {}
    joined = text.replace("\\\n", " ").splitlines()
    lines = [line for line in joined if line.strip() and not line.lstrip().startswith("#")]
    *exports, command = lines
    for line in exports:
        words = shlex.split(line)
        assert words[0] == "export", f"a start block's lines before the command are exports: {line!r}"
        env.update(word.split("=", 1) for word in words[1:])
    words = shlex.split(command)
    assert words[-2:] == [".venv/bin/python", "app.py"], f"end with `.venv/bin/python app.py`: {command!r}"
    env.update(word.split("=", 1) for word in words[:-2])
    return {name: filled(value) for name, value in env.items()}


# -- printed output ------------------------------------------------------------------------------

def text_matches(expected: str, actual: str) -> bool:
    """`actual` is `expected`, each `…` standing for any text (across lines); trailing space ignored."""
    pattern = ".*?".join(re.escape(part) for part in expected.rstrip().split(ANY))
    return re.fullmatch(pattern, actual.rstrip(), re.S) is not None


def json_matches(expected: Any, actual: Any) -> bool:
    """Every field `expected` shows is in `actual` with that value; a string's `…` matches any text."""
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(k in actual and json_matches(v, actual[k]) for k, v in expected.items())
    if isinstance(expected, list):
        return (isinstance(actual, list) and len(expected) == len(actual)
                and all(json_matches(e, a) for e, a in zip(expected, actual, strict=True)))
    if isinstance(expected, str) and ANY in expected:
        return isinstance(actual, str) and text_matches(expected, actual)
    return bool(expected == actual) and type(expected) is type(actual)


def logged_names(prose: str) -> list[str] | None:
    """The backticked names of the `Logged:` paragraph in `prose`, leaving out (parenthesised) asides."""
    return labelled_names(prose, "Logged:")


def labelled_names(prose: str, label: str) -> list[str] | None:
    match = re.search(rf"^{label}(.*?)(?:\n\n|\Z)", prose, re.S | re.M)
    if match is None:
        return None
    return re.findall(r"`([^`]+)`", re.sub(r"\([^)]*\)", "", match.group(1)))

