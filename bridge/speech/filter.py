"""The speech filter: what a caller should hear of a model's markdown answer.

The caller hears every character through TTS, so markup, emoji and reasoning are taken out
and words, numbers and punctuation are left:

- Removed: emphasis and strike markers (**b** *i* __b c__ _i_ ~~s~~), heading hashes, bullet
  markers (- * + •, indented too), blockquote >, code fence lines and backticks (inline code
  keeps its text), link targets ([text](url) -> text), images, table pipes and alignment
  rows (| a | b | -> "a, b"), rule lines (--- *** ___), <br> (a line break), emoji
  (pictographs, symbols followed by an emoji selector, flags, skin tones, ZWJ sequences,
  variation selectors), and reasoning: a <think>...</think> block at the start of the
  answer (an unclosed one drops the rest of the answer), and everything before a </think>
  that has no <think> before it (see "Reasoning" below).
- Kept, byte for byte: everything else: list numbers, CJK, 3 * 4, 2*3, 5 *3, snake_case,
  __init__, $5, C#, # of items, ~5, 10:30, ^_^, bare URLs, symbols that are text by default
  (★ ✓ ♥ ➜ → © °), a <think> tag in the middle of an answer, [text](no target), and IMS
  commands (any tag starting with <imsagent_, up to its closing >). Inside `inline code`
  * _ ~ [ ! < are literal. When in doubt a character stays.
- Whitespace: one space for a run of spaces, one newline (a TTS pause) for line breaks and
  blank lines, none at either end (see bridge.speech.output).

Streaming: feed() returns at once what is decided; only a possible marker at the end of the
text fed is held back, and every marker is decided within HOLD_LIMIT characters (a longer
construct, such as a "[link text" of 64 characters, is plain text). The rules are rules on
the text, never on the pieces: however an answer is split, the joined results of feed() and
finish() equal speakable(answer) -- the one exception being an orphan </think>, below.
Text inside a think block or a long link target is dropped as it arrives.

Reasoning: a model's <think> block comes first in its answer, so <think> is a tag only
there (after optional whitespace). Some chat templates write the <think> themselves (R1
distills, Qwen3 on vLLM without a reasoning parser): the model's text then starts inside the
reasoning and only a </think> shows where it ends. With `think_prefilled=True` the filter
starts inside a think block and drops everything up to the first </think> (an answer
without one is dropped whole: `spoke` stays False). Without it, an orphan </think> (none
of <think> before it) drops everything not yet returned -- the whole reasoning when the
answer is fed at once, what is held back and the rest of that piece when streaming, since
text already returned cannot be unsaid -- and sets `orphan_think_close` so the caller can
log it; a line break separates what went out from the answer that follows.

Cost: linear in the text, whatever it holds. Plain text and markers that are certainly text
(runs of <, [, ![, * between spaces, |, symbols) are taken by one regex per stretch; each
other marker costs one step that looks at most HOLD_LIMIT characters ahead, with bounded
patterns; held text (under HOLD_LIMIT characters) is looked at again only when the next
piece arrives.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import ClassVar, cast

from bridge.speech import rules
from bridge.speech.output import CELL, LINE, SOFT, SPACE, Spoken
from bridge.speech.rules import HOLD_LIMIT

__all__ = ["HOLD_LIMIT", "SpeechFilter", "speakable"]

# What the text at the current position belongs to.
_TEXT, _OPEN, _THINK, _URL, _TAG = range(5)
# Inline states: bits of SpeechFilter._flags, which is also the index of its plain pattern.
_ROW, _LINK, _CODE = 1, 2, 4
_START = "\n\n"  # the two source characters before an answer (rules look one or two back)


_Match = Callable[..., re.Match[str]]  # the match method of a pattern that always matches


def _always(pattern: re.Pattern[str]) -> _Match:
    return cast(_Match, pattern.match)


_NEWLINES, _BLANKS, _OPENING = _always(rules.NEWLINES), _always(rules.BLANKS), _always(rules.OPENING)
_PIPES = _always(rules.PIPES)
_RUNS = {mark: _always(run) for mark, run in rules.RUNS.items()}


def plain_matchers(literal_markers: bool = True) -> tuple[_Match, ...]:
    """The plain-text pattern of each inline state (see rules.plain), indexed by _flags."""
    return tuple(_always(rules.plain(bool(flags & _CODE), bool(flags & _LINK), bool(flags & _ROW), literal_markers))
                 for flags in range(8))


class SpeechFilter:
    """One answer's filter: feed() each streamed text piece, finish() at the end.

    `think_prefilled`: the chat template wrote <think> before the model's first token, so the
    answer starts inside the reasoning. After the answer (finish()), `spoke` and
    `orphan_think_close` describe it until the next feed() starts a new one.
    """

    __slots__ = ("_buf", "_depth", "_done", "_fast", "_flags", "_line_start", "_mode", "_prev", "_quote",
                 "_spoken", "_think_seen", "orphan_think_close", "think_prefilled")

    _plain: ClassVar[tuple[_Match, ...]] = plain_matchers()

    def __init__(self, *, think_prefilled: bool = False) -> None:
        self.think_prefilled = think_prefilled
        self._reset()

    def _reset(self) -> None:
        self._buf = ""  # text fed but not yet decided
        self._prev = _START  # ends with the two source characters before the text held
        self._fast = False  # nothing held or owed: a plain piece passes through as it is
        self._done = False  # finish() was called: the next feed() starts a new answer
        self._mode = _THINK if self.think_prefilled else _OPEN
        self._think_seen = self.think_prefilled  # a </think> now ends no pre-filled reasoning
        self._line_start = True  # at the start of a source line (markers of lines allowed)
        self._flags = 0  # _ROW on a table row, _LINK inside a link's [text], _CODE in `code`
        self._depth = 0  # open parentheses inside a link target
        self._quote = False  # inside a quoted attribute of an IMS tag
        self._spoken = Spoken()
        self.orphan_think_close = False  # a </think> with no <think> before it ended reasoning

    @property
    def held(self) -> int:
        """How many characters fed so far are held back (always fewer than HOLD_LIMIT)."""
        return len(self._buf)

    @property
    def spoke(self) -> bool:
        """Whether anything came out of this answer (words, or an IMS command)."""
        return self._spoken.started

    def said_before(self) -> None:
        """Something was said ahead of this answer's text (the bridge's filler, between tool rounds):
        a space at the text's start is then a gap to keep ("check." + " It's"), not an edge to trim."""
        if self._done:
            self._reset()
        self._spoken.after = True

    def feed(self, text: str) -> str:
        """Returns what can be spoken now of `text` (and of what was held before it)."""
        if self._fast and rules.SPECIAL.search(text) is None:
            if text:
                self._prev = text if len(text) > 1 else self._prev[-1] + text  # its end counts
                self._spoken.last = text[-1]
            return text
        return self._run(text)

    def finish(self) -> str:
        """Flushes everything held back at the end of the answer. The end of the answer ends
        a line: what is held is decided as if a newline followed (with nothing held, that
        newline would only owe a line break, dropped at the end)."""
        out = self._run("\n") if self._buf else self._spoken.take()
        self._done, self._fast = True, False
        return out

    # -- the scan ---------------------------------------------------------------------------

    def _run(self, text: str) -> str:
        if self._done:
            self._reset()
        buf = self._prev[-2:] + self._buf + text
        pos, end = 2, len(buf)
        while pos < end:
            if self._mode:
                step = _MODES[self._mode](self, buf, pos)
            elif self._line_start:
                step = self._line(buf, pos)
            else:
                step = self._inline(buf, pos)
            if step == pos:  # undecided until more text arrives
                break
            pos = step
        self._prev = buf[pos - 2 : pos]
        self._buf = buf[pos:]
        spoken = self._spoken
        self._fast = not (self._buf or self._mode or self._line_start or spoken.gap) and spoken.started
        return spoken.take()

    def _line(self, buf: str, i: int) -> int:
        """At a line start: indentation, and the markers of headings, lists, quotes, rules,
        fences and tables."""
        char = buf[i]
        if char == "\n":
            return self._newline(buf, i)
        if char in " \t\r\f\v":
            return self._space(buf, i)
        if char not in rules.LINE_MARKERS:
            self._line_start = False
            return self._inline(buf, i)
        if char == "|":
            self._line_start = False
            self._flags |= _ROW
            return self._pipe(buf, i)
        if len(buf) < i + HOLD_LIMIT and rules.LINE_HOLD.fullmatch(buf, i):
            return i
        marker = rules.LINE.match(buf, i, i + HOLD_LIMIT)
        if marker is None:
            self._line_start = False
            return self._inline(buf, i)
        self._line_start = char == ">"  # a quoted line may hold a list item or a heading
        return marker.end()

    def _inline(self, buf: str, i: int) -> int:
        """Plain text up to the next character that may be markup, then that character; on
        while the text stays inline (a marker costs one handler call, no trip round _run)."""
        size = len(buf)
        while True:
            end = self._plain[self._flags](buf, i).end()
            if end > i:
                self._spoken.say(buf[i:end])
            if end == size:
                return end
            i = _HANDLERS.get(buf[end], SpeechFilter._emoji)(self, buf, end)
            if i == end or self._mode or self._line_start:
                return i

    # -- modes ------------------------------------------------------------------------------

    def _open(self, buf: str, i: int) -> int:
        """The start of the answer: a <think> here opens the model's reasoning."""
        if buf[i] not in " \t\r\f\v\n<":  # most answers: no reasoning, decided at once
            self._mode = _TEXT
            return self._line(buf, i)
        start = _OPENING(buf, i).end()
        if buf.startswith(rules.THINK_OPEN, start):
            self._mode, self._think_seen = _THINK, True
            return start + len(rules.THINK_OPEN)
        if len(buf) - start < len(rules.THINK_OPEN) and rules.THINK_OPEN.startswith(buf[start:]):
            return start
        self._mode = _TEXT
        if start > i and self._spoken.after:  # the bridge spoke first: the blank between is kept
            self._owe(LINE if "\n" in buf[i:start] else SPACE)
        return start if start > i else self._line(buf, i)

    def _think(self, buf: str, i: int) -> int:
        close = buf.find(rules.THINK_CLOSE, i)
        if close >= 0:  # the answer starts after the reasoning
            self._mode, self._line_start = _TEXT, True
            return close + len(rules.THINK_CLOSE)
        tail = buf.rfind("<", max(i, len(buf) - len(rules.THINK_CLOSE) + 1))
        if tail >= 0 and rules.THINK_CLOSE.startswith(buf[tail:]):  # keep a possible </think>
            return tail
        return len(buf)

    def _url(self, buf: str, i: int) -> int:
        for stop in rules.URL_STOP.finditer(buf, i):
            char = stop.group()
            if char == "(":
                self._depth += 1
            elif char != ")":
                return self._url_blank(buf, stop.start())
            elif self._depth:
                self._depth -= 1
            else:
                self._mode = _TEXT
                return stop.end()
        return len(buf)

    def _url_blank(self, buf: str, i: int) -> int:
        """A space or line break in a long link target: a title follows, or the target ends
        (an unclosed target eats no words)."""
        if buf[i] != "\n":
            title = rules.TITLE.match(buf, i, i + HOLD_LIMIT)
            if title:
                self._mode = _TEXT
                return title.end()
            if len(buf) < i + HOLD_LIMIT and rules.TITLE_HOLD.fullmatch(buf, i):
                return i
        self._mode = _TEXT
        return self._inline(buf, i)

    def _tag(self, buf: str, i: int) -> int:
        for stop in rules.TAG_STOP.finditer(buf, i):
            at = stop.start()
            if stop.group() == '"':  # only a quote opening a value (="...") hides a >
                self._quote = not self._quote and buf[at - 1] == "="
            elif not self._quote:
                self._mode = _TEXT
                self._spoken.emit(buf[i : at + 1])
                return at + 1
        self._spoken.emit(buf[i:])
        return len(buf)

    # -- inline markers ---------------------------------------------------------------------

    def _owe(self, gap: int) -> None:
        self._spoken.gap = max(self._spoken.gap, gap)

    def _newline(self, buf: str, i: int) -> int:
        self._spoken.gap = LINE
        self._line_start = True
        self._flags = 0
        return _NEWLINES(buf, i).end()

    def _space(self, buf: str, i: int) -> int:
        self._owe(SPACE)
        return _BLANKS(buf, i).end()

    def _emphasis(self, buf: str, i: int) -> int:
        """A run of * _ ~ that the plain pattern left (rules.KEEP): markup, or undecided."""
        if self._flags & _CODE:
            self._spoken.emit(buf[i])
            return i + 1
        run = _RUNS[buf[i]](buf, i, i + HOLD_LIMIT).end()
        if len(buf) < i + HOLD_LIMIT and (run == len(buf) or rules.MARK_HOLD.match(buf, i)):
            return i
        return run

    def _backtick(self, buf: str, i: int) -> int:
        run = _RUNS["`"](buf, i, i + HOLD_LIMIT).end()
        if run == len(buf) < i + HOLD_LIMIT:
            return i
        self._flags ^= _CODE
        return run

    def _bracket(self, buf: str, i: int) -> int:
        if not self._flags & _CODE:
            if rules.LINK.match(buf, i, i + HOLD_LIMIT):
                self._flags |= _LINK
                return i + 1
            if len(buf) < i + HOLD_LIMIT and rules.LINK_HOLD.fullmatch(buf, i):
                return i
        self._spoken.emit("[")
        return i + 1

    def _close(self, buf: str, i: int) -> int:
        if self._flags & _LINK:
            step = self._target(buf, i, i + HOLD_LIMIT)
            if step == 0:
                return i
            self._flags &= ~_LINK
            if step > 0:
                return step
            self._owe(SOFT)  # no target: "[the policy](section 4" -> "the policy (section 4"
            return i + 1
        self._spoken.emit("]")
        return i + 1

    def _bang(self, buf: str, i: int) -> int:
        if not self._flags & _CODE:
            end = i + HOLD_LIMIT
            image = rules.IMAGE.match(buf, i, end)
            step = self._target(buf, image.end(), end) if image else -1
            if step > 0:
                self._owe(SOFT)
                return step
            if step == 0 or (len(buf) < end and rules.IMAGE_HOLD.fullmatch(buf, i)):
                return i
        self._spoken.emit("!")
        return i + 1

    def _target(self, buf: str, at: int, end: int) -> int:
        """At the `]` of a link or image, deciding by the text up to `end`: where its target
        ends (a long one is dropped as it streams), 0 to wait for more text, -1 for none."""
        target = rules.TARGET.match(buf, at, end)
        if target:
            return target.end()
        if not rules.TARGET_HOLD.fullmatch(buf, at, end):
            return -1
        if len(buf) < end:
            return 0
        if end - at < 2:  # the window ends at the `]`: too long to be an image
            return -1
        self._mode, self._depth = _URL, 0
        return at + 2

    def _angle(self, buf: str, i: int) -> int:
        end = i + HOLD_LIMIT
        tag = rules.ANGLE.match(buf, i, end)
        kind = tag.lastgroup if tag else None
        if kind == "ims":
            self._spoken.emit("<")
            self._mode, self._quote = _TAG, False
            return i + 1
        if tag is None:
            if len(buf) < end and rules.ANGLE_HOLD.fullmatch(buf, i):
                return i
        elif kind == "open":
            self._think_seen = True  # a <think> in the middle of an answer is text
        elif not self._flags & _CODE:
            return self._markup_tag(kind, i, tag.end())
        self._spoken.emit("<")
        return i + 1

    def _markup_tag(self, kind: str | None, i: int, end: int) -> int:
        if kind == "br":
            self._owe(LINE)
            return end
        if self._think_seen:  # a </think> after a <think> is text
            self._spoken.emit("<")
            return i + 1
        # An orphan </think>: the reasoning was pre-filled; drop what has not gone out.
        self.orphan_think_close = self._think_seen = True
        self._spoken.unsay()
        self._line_start, self._flags = True, 0
        return end

    def _pipe(self, buf: str, i: int) -> int:
        if not self._flags & _ROW:
            self._spoken.emit("|")
            return i + 1
        last = buf.rfind("|", i + 1, _PIPES(buf, i).end())
        if last > 0:
            self._owe(CELL)
            return last
        rule_cell = rules.RULE_CELL.match(buf, i, i + HOLD_LIMIT)
        if rule_cell:
            return rule_cell.end()
        if len(buf) < i + HOLD_LIMIT and rules.RULE_CELL_HOLD.fullmatch(buf, i):
            return i
        self._owe(CELL)
        return i + 1

    def _emoji(self, buf: str, i: int) -> int:
        char = buf[i]
        if char == rules.ZWJ and not rules.EMOJI_CHAR.match(buf, i - 1):
            self._spoken.emit(char)
            return i + 1
        emoji = rules.EMOJI.match(buf, i)
        if emoji:  # a space before the emoji is up to what follows it
            spoken = self._spoken
            spoken.gap = SOFT if spoken.gap <= SPACE else spoken.gap
            return emoji.end()
        if i + 1 == len(buf):  # a text symbol, unless an emoji selector follows
            return i
        self._spoken.emit(char)
        return i + 1


_Handler = Callable[[SpeechFilter, str, int], int]
_MODES: dict[int, _Handler] = {
    _OPEN: SpeechFilter._open, _THINK: SpeechFilter._think, _URL: SpeechFilter._url, _TAG: SpeechFilter._tag,
}
_HANDLERS: dict[str, _Handler] = {
    "\n": SpeechFilter._newline,
    **dict.fromkeys("\t\r\f\v", SpeechFilter._space),
    **dict.fromkeys("*_~", SpeechFilter._emphasis),
    "`": SpeechFilter._backtick,
    "[": SpeechFilter._bracket,
    "]": SpeechFilter._close,
    "!": SpeechFilter._bang,
    "<": SpeechFilter._angle,
    "|": SpeechFilter._pipe,
}


def speakable(text: str, *, think_prefilled: bool = False) -> str:
    """The whole answer at once: SpeechFilter().feed(text) + .finish()."""
    speech = SpeechFilter(think_prefilled=think_prefilled)
    return speech.feed(text) + speech.finish()
