"""Turning text into search terms, for passages (indexing) and questions (querying).

SQLite's FTS5 tokenizers split on spaces and punctuation, which leaves a run of Chinese
characters as one giant token. The trigram tokenizer (SQLite >= 3.34) would help, but it
cannot match anything shorter than three characters, and most Chinese words are two
characters long (退货, 政策, 时间). So Chinese, Japanese and Korean runs are rewritten here into
overlapping character bigrams ("退货政策" -> "退货 货政 政策"), plus single characters for
one-character words, the approach of Lucene's CJK analyzer, before FTS5 sees them;
everything else is left to FTS5's `porter unicode61` tokenizer (case folding, diacritics,
English stemming). This works on any SQLite with FTS5.

Questions get the same treatment, minus stop words: English function words, and Chinese
bigrams that contain a function character (的, 是, 什, 么, ...), so "退货政策是什么？" asks
for 退货 OR 货政 OR 政策 and a question sharing only filler with the knowledge base finds nothing.
A character with function characters on both sides ("猫" in "猫能吃什么") is asked for alone.
"""

from __future__ import annotations

import re

# CJK ideographs (with extension A and compatibility forms), kana, Hangul syllables: the
# characters a regex character class `[{CJK_CHARS}]` matches. Also used by `bridge.inbound.audio_source`.
CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
_CJK_RUN = re.compile(f"[{CJK_CHARS}]+")
WORD = re.compile(f"[^\\W_{CJK_CHARS}]+")  # a run of letters or digits that are not CJK

MAX_QUERY_TERMS = 32

STOP_WORDS = frozenset(
    """a about above after again against all am an and any are aren as at be because been before being
    below between both but by can cannot could did didn do does doesn doing don down during each few for
    from further had has have having he her here hers herself him himself his how i if in into is isn it
    its itself just let me more most my myself no nor not of off on once only or other our ours
    ourselves out over own please same she should so some such than that the their theirs them
    themselves then there these they this those through to too under until up very was we were what
    when where which while who whom why will with would you your yours yourself yourselves s t ll re
    ve d m tell know like want get got thanks thank hi hello hey ok okay yes""".split()
)

# Function characters: a question bigram containing one of these is filler, not a keyword.
STOP_CHARS = frozenset(
    "的了是吗呢吧啊呀哦嗯么什怎哪谁为我你您他她它们在有和与及或就都也很还又请问这那个些吧把被给让"
    "着过得地一不没要会能可想说告诉知道吗嘛呗哈喂好啦"
)
_STOP_PAD = min(STOP_CHARS)  # stands for the edge of a run, which counts as a stop character


def cjk_bigrams(run: str) -> list[str]:
    """Overlapping bigrams of a CJK run; a single character stands alone."""
    if len(run) == 1:
        return [run]
    return [run[i : i + 2] for i in range(len(run) - 1)]


def index_text(text: str) -> str:
    """Text for the FTS5 column: CJK runs replaced by their bigrams and their content
    characters (for one-character words); the rest untouched."""
    return _CJK_RUN.sub(_index_run, text)


def _index_run(match: re.Match[str]) -> str:
    run = match.group()
    singles = [c for c in run if c not in STOP_CHARS] if len(run) > 1 else []
    return " " + " ".join(cjk_bigrams(run) + singles) + " "


def query_terms(question: str) -> list[str]:
    """The distinct keywords of a question, in order, at most MAX_QUERY_TERMS."""
    terms: dict[str, None] = {}
    for run in _CJK_RUN.findall(question):
        terms.update(dict.fromkeys(gram for gram in cjk_bigrams(run) if not STOP_CHARS.intersection(gram)))
        terms.update(dict.fromkeys(_lone_chars(run)))
    for word in WORD.findall(question):
        word = word.lower()
        if word not in STOP_WORDS and (len(word) > 1 or word.isdigit()):
            terms[word] = None
    return list(terms)[:MAX_QUERY_TERMS]


def _lone_chars(run: str) -> list[str]:
    """The characters of a CJK run that stand between stop characters (a one-character word:
    "退" in "我要退了"); a run of one character has none (its bigram-less self is too common)."""
    if len(run) < 2:
        return []
    padded = f"{_STOP_PAD}{run}{_STOP_PAD}"
    return [char for i, char in enumerate(run, 1)
            if char not in STOP_CHARS and padded[i - 1] in STOP_CHARS and padded[i + 1] in STOP_CHARS]


def match_expression(terms: list[str]) -> str:
    """An FTS5 MATCH expression: any of the terms, each quoted so none is read as syntax."""
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def has_cjk(text: str) -> bool:
    """True when the text contains Chinese, Japanese or Korean characters."""
    return _CJK_RUN.search(text) is not None
