"""The spoken side of the speech filter: the text kept, with the gaps between it merged.

Removing markup leaves holes: doubled spaces, blank lines, a space before a comma where an
emoji was. Spaces and line breaks are therefore never written as they come; each becomes a
gap owed before the next spoken character, and gaps merge into the strongest one. A gap owed
at the start or at the end of the answer is dropped.
"""

from __future__ import annotations

import re

from bridge.speech.rules import CJK_START

# Gaps, weakest first: max() merges two. SOFT is what a removed emoji or image leaves: a
# space between Latin words ("Great🎉Thanks" -> "Great Thanks"), nothing before closing
# punctuation or next to CJK. CELL is a table cell boundary, LINE a line break.
NONE, SOFT, SPACE, CELL, LINE = range(5)

_CLAUSE_END = frozenset(",.;:!?，。；：！？、")  # a table cell after these needs no comma
_CLOSING = frozenset(",.;:!?)]}%，。；：！？、）」』】")  # a soft gap before these is nothing
_SPACES = re.compile(" {2,}")


class Spoken:
    """What has been spoken of one answer: `parts` to send, and the gap owed after them."""

    __slots__ = ("after", "gap", "last", "parts", "said", "started")

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.gap = NONE  # owed before the next character spoken
        self.last = ""  # the last character spoken
        self.started = False  # something has been spoken
        self.said = False  # something has been taken: it has gone out and cannot be unsaid
        self.after = False  # the bridge said something ahead of this answer: a gap at its start is kept

    def take(self) -> str:
        """The text spoken since the last take()."""
        text = "".join(self.parts)
        self.parts.clear()
        self.said = self.started
        return text

    def unsay(self) -> None:
        """Forgets what was spoken since the last take(); what went out before is followed by
        a line break."""
        self.parts.clear()
        self.started = self.said
        self.gap = LINE if self.said else NONE

    def say(self, text: str) -> None:
        """Speaks source text: runs of spaces become one, its edge spaces become gaps."""
        trailing = False
        if text[0] == " " or text[-1] == " ":
            if text[0] == " ":
                self.gap = max(self.gap, SPACE)
            trailing = text[-1] == " "
            text = text.strip(" ")
            if not text:
                return
        if "  " in text:
            text = _SPACES.sub(" ", text)
        self.emit(text)
        if trailing:
            self.gap = SPACE

    def emit(self, text: str) -> None:
        """Speaks `text` as it is (spaces too), after the gap owed."""
        if self.gap:
            if self.started or self.after:
                self.parts.append(self._gap(text[0]))
            self.gap = NONE
        self.started = True
        self.parts.append(text)
        self.last = text[-1]

    def _gap(self, following: str) -> str:
        gap, last = self.gap, self.last
        if gap == LINE:
            return "\n"
        if gap == CELL:
            return " " if last in _CLAUSE_END else "，" if last >= CJK_START else ", "
        if gap == SPACE:
            return " "
        cjk = following >= CJK_START or last >= CJK_START
        return "" if cjk or following in _CLOSING else " "
