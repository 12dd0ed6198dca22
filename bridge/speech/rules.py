"""What the speech filter recognises: character classes and the patterns of markup.

Every decision is made at a marker character and looks at most HOLD_LIMIT characters ahead
(the patterns' quantifiers are bounded, or the filter matches them with that end position),
so no pattern can backtrack over more than that window. A pattern that needs to see a line
end uses `\\n`: the filter appends a newline to the text at the end of the answer, so the end
of the answer ends a line too. Each `*_HOLD` pattern fullmatches (or, ending in `\\Z`,
matches) the text at the end of what has arrived that could still become markup once more
text arrives; the filter holds that text back until it knows.
"""

from __future__ import annotations

import re

HOLD_LIMIT = 64  # every construct is decided within this many characters

# Emoji: the characters shown as pictures by default (Unicode's Emoji_Presentation in the
# symbol blocks, U+2000-U+2BFF) and everything in U+1F000-U+1FAFF (emoji, regional
# indicators of flags, skin-tone modifiers).
EMOJI_PRESENTATION = (
    "\u231a\u231b\u23e9-\u23ec\u23f0\u23f3\u25fd\u25fe\u2614\u2615\u2648-\u2653\u267f\u2693"
    "\u26a1\u26aa\u26ab\u26bd\u26be\u26c4\u26c5\u26ce\u26d4\u26ea\u26f2\u26f3\u26f5\u26fa\u26fd"
    "\u2705\u270a\u270b\u2728\u274c\u274e\u2753-\u2755\u2757\u2795-\u2797\u27b0\u27bf"
    "\u2b1b\u2b1c\u2b50\u2b55\U0001f000-\U0001faff"
)
# Symbols that are text by default (★ ✓ ✗ ♥ ☎ ⚠ ➜ ⬅): words to a reader, kept as written,
# unless an emoji glue character follows (❤️ is an emoji, ❤ a symbol). The circled digits
# ❶-➓ (U+2776-U+2793) read as numbers and are not in the list.
TEXT_SYMBOLS = (
    "\u2328\u23cf\u23ed-\u23ef\u23f1\u23f2\u23f8-\u23fa\u2600-\u2613\u2616-\u2647\u2654-\u267e"
    "\u2680-\u2692\u2694-\u26a0\u26a2-\u26a9\u26ac-\u26bc\u26bf-\u26c3\u26c6-\u26cd\u26cf-\u26d3"
    "\u26d5-\u26e9\u26eb-\u26f1\u26f4\u26f6-\u26f9\u26fb\u26fc\u26fe-\u2704\u2706-\u2709"
    "\u270c-\u2727\u2729-\u274b\u274d\u274f-\u2752\u2756\u2758-\u2775\u2794\u2798-\u27af"
    "\u27b1-\u27be\u2b05-\u2b07"
)
# Invisible emoji glue: variation selectors, the keycap mark, the tag letters of flags.
JOINERS = "\ufe0e\ufe0f\u20e3\U000e0020-\U000e007f"
# The zero-width joiner glues emoji (👨‍👩‍👧) but also letters of some scripts: it is dropped
# only right after an emoji (or after another joiner).
ZWJ = "\u200d"
_GLUE = f"\ufe0f{ZWJ}\U0001f3fb-\U0001f3ff"  # what makes a text symbol an emoji
_EMOJI_RUN = f"(?:[{EMOJI_PRESENTATION}{JOINERS}{ZWJ}]++|[{TEXT_SYMBOLS}](?=[{_GLUE}]))++"
_EMOJI_START = f"(?:[{EMOJI_PRESENTATION}{JOINERS}]|[{TEXT_SYMBOLS}](?=[{_GLUE}]))"
# A run of emoji, spaces between them included (what follows the last one decides the gap).
EMOJI = re.compile(f"{_EMOJI_RUN}(?:[ \\t]++{_EMOJI_START}(?:{_EMOJI_RUN})?)*+")
EMOJI_CHAR = re.compile(f"[{EMOJI_PRESENTATION}{JOINERS}{ZWJ}{TEXT_SYMBOLS}]")

# Characters the filter has to look at; everything between them is spoken as it is.
_TRIGGERS = f"\t\n\r\f\v*_~`\\[\\]!<|{ZWJ}{JOINERS}{EMOJI_PRESENTATION}{TEXT_SYMBOLS}"
# A piece without any of these (nor a double or trailing space) passes through untouched.
SPECIAL = re.compile(f"[{_TRIGGERS}]| (?![^ ])")
BLANKS = re.compile("[ \t\r\f\v]+")
NEWLINES = re.compile("\n[ \t\r\f\v\n]*")
OPENING = re.compile("[ \t\r\f\v\n]*")  # what may precede <think> at the start of an answer

# At a line start: heading hashes (not "# of items": a lone # before a lower-case word is
# the number sign), a rule line (--- *** ___, spaces allowed), a code fence line (``` or
# ~~~ with its info string), a bullet marker; or a blockquote marker.
LINE_MARKERS = frozenset("#-*_+•>|`~")
LINE = re.compile(
    r"(?:#(?![ \t]+[a-z])|#{2,6})(?=[ \t\r\n])"
    r"|([-*_])[ \t\r]*(?:\1[ \t\r]*){2,}(?=\n)"
    r"|(?:`{3,}|~{3,})[^`\n]*(?=\n)"
    r"|[-*+•](?=[ \t\r\n])"
    r"|>(?=[ \t\r\n>])"
)
LINE_HOLD = re.compile(
    r"#[ \t]*|#{1,6}|([-*_])[ \t\r]*(?:\1[ \t\r]*)*|`{1,2}|~{1,2}|(?:`{3,}|~{3,})[^`\n]*|[+•>]"
)

# Emphasis. Whether a run of * _ ~ is markup is decided by the characters touching it
# (CommonMark's flanking, simplified). KEEP matches the runs that are text: between spaces
# (3 * 4), inside a Latin word or number (2*3, x**2, snake_case), _ and a single * or ~
# between punctuation (^_^, (*)), a lone ~ (~5), a * between digits across one space
# (5 *3, 5* 3), and a double-underscore name of up to 25 characters (__init__, __name__).
# Every other run is markup (**b**, *it*, ~~s~~, 这是**重点**). Runs are at most 63 characters.
_WORD = "[^\\W_\u2e80-\U0010ffff]"  # a letter or digit, not CJK (U+2E80 onwards)
_PUNCT = r"(?:[^\w\s]|_)"
# Each branch starts with its mark, so that the regex engine skips it at once elsewhere.
KEEP = re.compile(
    f"\\*(?:(?<=\\s\\*)\\*{{0,62}}+(?=\\s)|(?<={_WORD}\\*)\\*{{0,62}}+(?={_WORD})|(?<={_PUNCT}\\*)(?=[^\\w\\s*]|_)"
    r"|(?<=\d \*)(?=\d)|(?<=\d\*)(?= \d))"
    f"|_(?:(?<=\\s_)_{{0,62}}+(?=\\s)|(?<={_WORD}_)_{{0,62}}+(?={_WORD})|(?<={_PUNCT}_)_{{0,62}}+(?=[^\\w\\s])"
    r"|(?<![^\W_]_)_[^\W_]\w{0,24}?__(?=\W))"
    f"|~(?:(?<=\\s~)~{{0,62}}+(?=\\s)|(?<={_WORD}~)~{{0,62}}+(?={_WORD})|(?=[^~]))"
)
# At the end of what has arrived: what KEEP may still match once more text comes.
MARK_HOLD = re.compile(r"(?<=\d)\* \Z|(?<![^\W_])__[^\W_]\w{0,26}\Z")
RUNS = {mark: re.compile(re.escape(mark) + "+") for mark in "*_~`"}

# Links and images: `[text](target)` speaks its text, `![alt](target)` nothing. A target
# is a destination without spaces (balanced parentheses allowed) and an optional quoted
# title; `[the policy](section 4 of it)` has no target and is spoken as text.
LINK = re.compile(r"\[[^\[\]\n]*\]\(")
LINK_HOLD = re.compile(r"\[[^\[\]\n]*\]?")
IMAGE = re.compile(r"!\[[^\[\]\n]*(?=\])")
IMAGE_HOLD = re.compile(r"!(?:\[[^\[\]\n]*)?")
_DEST = r"(?:[^\s()]++|\([^\s()]*+\))*+"
TARGET = re.compile(f"\\]\\({_DEST}(?:[ \\t]+(?:\"[^\"\\n]*\"|'[^'\\n]*'))?[ \\t]*\\)")
TARGET_HOLD = re.compile(
    f"\\](?:\\({_DEST}(?:\\([^\\s()]*+)?(?:[ \\t]+(?:(?:\"[^\"\\n]*+\"?|'[^'\\n]*+'?)[ \\t]*)?)?)?"
)
# Inside a long target, a space ends it unless a title follows.
URL_STOP = re.compile(r"[()\s]")
TITLE = re.compile("[ \\t]+(?:\"[^\"\\n]*\"|'[^'\\n]*')[ \\t]*\\)")
TITLE_HOLD = re.compile("[ \\t]+(?:(?:\"[^\"\\n]*+\"?|'[^'\\n]*+'?)[ \\t]*)?")

# Tags: a line break, the reasoning tags, IMS commands (any tag starting with <imsagent_).
THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
ANGLE = re.compile(r"(?P<ims></?imsagent_)|(?P<br><(?i:br)[ \t]*/?>)|(?P<open><think>)|(?P<close></think>)")
ANGLE_HOLD = re.compile(
    r"</?(?:i(?:m(?:s(?:a(?:g(?:e(?:n(?:t)?)?)?)?)?)?)?|t(?:h(?:i(?:n(?:k)?)?)?)?)?|<(?i:b(?:r[ \t]*/?)?)"
)
TAG_STOP = re.compile(r'[">]')

# A table's alignment cell (`|---`, `| :---: `), dropped with its pipe; the pipes of a row
# before its last one (`| |`, `||`), one cell boundary.
RULE_CELL = re.compile(r"\|[ \t]*:?-+:?[ \t]*(?=[|\n])")
RULE_CELL_HOLD = re.compile(r"\|[ \t]*:?-*:?[ \t]*")
PIPES = re.compile(r"\|[ \t|]*+")  # a row's run of pipes and blanks: all before the last pipe

CJK_START = "\u2e80"  # CJK radicals onwards: ideographs, kana, Hangul, full-width forms


def plain(code: bool, link: bool, row: bool, literal_markers: bool = True) -> re.Pattern[str]:
    """Text spoken as it is from a position in a line, up to the next character that may be
    markup: plain characters, KEEP's runs, and (`literal_markers`) markers that are text
    whatever follows: a `<` that starts no known tag, a `[` or `![` with no `](` ahead, a `]`
    outside a link, a `|` outside a table, a text symbol, a joiner after a letter. One regex,
    so a long run of such markers costs no step of the filter's loop; the filter's handlers
    decide each of these markers the same way (tests/test_speech_filter.py checks)."""
    free = []
    if not code:
        free.append(KEEP.pattern)
    if literal_markers:
        free.append(r"<(?=[^/itbB])")
        free.append(r"[*_~\[!]" if code else
                    r"\[(?![^\[\]\n]{0,62}(?:\]\(|\]?\Z))|!(?!\Z|\[[^\[\]\n]{0,62}(?:\]\(|\]?\Z))")
        free += [] if link else [r"\]"]
        free += [] if row else [r"\|"]
        free += [f"{ZWJ}(?<![{EMOJI_PRESENTATION}{JOINERS}{ZWJ}{TEXT_SYMBOLS}]{ZWJ})",
                 f"[{TEXT_SYMBOLS}](?=[^{_GLUE}])"]
    text = f"[^{_TRIGGERS}]*+"
    return re.compile(f"{text}(?:(?:{'|'.join(free)}){text})*+" if free else text)
