"""What the speech filter recognises: character classes, markdown patterns, emphasis rules.

Every pattern is applied to a window that starts at a marker character. A pattern that
needs to see a line end uses the lookahead `(?=\\n)`: the filter appends a virtual newline
to the window at the end of the answer, so the end of the answer ends a line too. Each
`*_PREFIX` pattern fullmatches the windows that could still become a match (or a different
match) once more text arrives; the filter holds those back until it knows.
"""

from __future__ import annotations

import re

# Pictographs: watch and media keys, misc symbols and dingbats (not the circled digits
# ❶-➓, which read as numbers), the emoji arrows and shapes of U+2B00 (⬅ ⬛ ⭐ ⭕), and
# U+1F000-U+1FAFF (emoji, regional indicators of flags, skin-tone modifiers). Symbols
# such as © ° € % → ™ and all CJK characters and punctuation are outside these ranges.
PICTOGRAPHS = (
    "\u231a\u231b\u2328\u23cf\u23e9-\u23f3\u23f8-\u23fa\u2600-\u2775\u2794-\u27bf"
    "\u2b05-\u2b07\u2b1b\u2b1c\u2b50\u2b55\U0001f000-\U0001faff"
)
# Invisible emoji glue: variation selectors, the keycap mark, the tag letters of flags.
JOINERS = "\ufe0e\ufe0f\u20e3\U000e0020-\U000e007f"
# The zero-width joiner glues emoji (👨‍👩‍👧) but also letters of some scripts: it is dropped
# only right after an emoji (or after another joiner).
ZWJ = "\u200d"
EMOJI = re.compile(f"[{PICTOGRAPHS}{JOINERS}{ZWJ}]+")
EMOJI_CHAR = re.compile(f"[{PICTOGRAPHS}{JOINERS}{ZWJ}]")

# Characters the filter has to look at; everything between them is spoken as it is.
_TRIGGERS = f"\t\n\r\f\v*_~`\\[\\]!<|{ZWJ}{JOINERS}{PICTOGRAPHS}"
TRIGGER = re.compile(f"[{_TRIGGERS}]")
# A piece without any of these (nor a double or trailing space) passes through untouched.
SPECIAL = re.compile(f"[{_TRIGGERS}]| (?![^ ])")
BLANKS = re.compile("[ \t\r\f\v]+")

# At a line start: heading hashes, a rule line (--- *** ___, spaces allowed), a code fence
# line (``` or ~~~ with its info string), a bullet marker; or a blockquote marker.
LINE_MARKERS = frozenset("#-*_+•>|`~")
LINE = re.compile(
    r"#{1,6}(?=[ \t\r\n])"
    r"|([-*_])[ \t\r]*(?:\1[ \t\r]*){2,}(?=\n)"
    r"|(?:`{3,}|~{3,})[^`\n]*(?=\n)"
    r"|[-*+•](?=[ \t\r\n])"
    r"|>(?=[ \t\r\n>])"
)
LINE_PREFIX = re.compile(
    r"#{1,6}|([-*_])[ \t\r]*(?:\1[ \t\r]*)*|`{1,2}|~{1,2}|(?:`{3,}|~{3,})[^`\n]*|[+•>]"
)

# Inline: a link's `[text](`, an image's `![alt](`, a line break tag, IMS commands.
LINK = re.compile(r"\[[^\[\]\n]*\]\(")
LINK_PREFIX = re.compile(r"\[[^\[\]\n]*\]?")
IMAGE = re.compile(r"!\[[^\[\]\n]*\]\(")
IMAGE_PREFIX = re.compile(r"!(?:\[[^\[\]\n]*\]?)?")
BREAK = re.compile(r"<br[ \t]*/?>", re.IGNORECASE)
BREAK_PREFIX = re.compile(r"<(?:b(?:r[ \t]*/?)?)?", re.IGNORECASE)
IMS_TAG = re.compile(r"</?imsagent_")
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_TAG_WORDS = (THINK_OPEN, THINK_CLOSE, "<imsagent_", "</imsagent_")
URL_STOP = re.compile(r"[()\n]")
TAG_STOP = re.compile(r'[">]')

# A table's alignment cell (`|---`, `| :---: `), dropped with its pipe.
RULE_CELL = re.compile(r"\|[ \t]*:?-+:?[ \t]*(?=[|\n])")
RULE_CELL_PREFIX = re.compile(r"\|[ \t]*:?-*:?[ \t]*")

CJK_START = "\u2e80"  # CJK radicals onwards: ideographs, kana, Hangul, full-width forms

_BLANK, _PUNCT, _WORD = range(3)


def angle_prefix(window: str) -> bool:
    """Whether a window starting with `<` could still become a tag the filter knows."""
    return any(word.startswith(window) for word in _TAG_WORDS) or bool(BREAK_PREFIX.fullmatch(window))


def _side(char: str) -> int:
    return _BLANK if char.isspace() else _WORD if char.isalnum() else _PUNCT


def is_markup(mark: str, run: int, before: str, after: str) -> bool:
    """Whether a run of `run` * _ or ~ between the characters `before` and `after` is
    emphasis or strike markup, from what touches it (CommonMark's flanking, simplified).

    Markup: a run touching a word or punctuation on one side only (**bold**, *it*, ~~s~~,
    "**Note:**"), and a run inside a word next to a CJK character (这是**重点**). Kept: a
    lone ~ (~5 min); a run between spaces (3 * 4); a run inside other words (2*3, x**2,
    snake_case); _ and a single * between punctuation (^_^, (*)).
    """
    if mark == "~" and run < 2:
        return False
    side_before, side_after = _side(before), _side(after)
    if side_before == side_after == _WORD:
        return before >= CJK_START or after >= CJK_START
    if side_before == side_after:
        return side_before == _PUNCT and mark != "_" and run > 1
    return True
