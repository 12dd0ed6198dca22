"""The speech filter: what a caller should hear of a model's markdown answer.

The caller hears every character through TTS, so markup, emoji and reasoning are taken out
and words, numbers and punctuation are left:

- Removed: emphasis and strike markers (**b** *i* __b__ _i_ ~~s~~), heading hashes, bullet
  markers (- * + •, indented too), blockquote >, code fence lines and backticks (inline code
  keeps its text), link targets ([text](url) -> text), images, table pipes and alignment
  rows (| a | b | -> "a, b"), rule lines (--- *** ___), <br> (a line break), emoji
  (pictographs, dingbats, flags, skin tones, ZWJ sequences, variation selectors), and
  <think>...</think> (an unclosed <think> drops the rest of the answer, a stray </think>
  itself only).
- Kept, byte for byte: everything else: list numbers, CJK, 3 * 4, 2*3, snake_case, $5, C#,
  ~5, 10:30, ^_^, bare URLs, and IMS commands (any tag starting with <imsagent_, up to its
  closing >). Inside `inline code` * _ ~ [ ! < are literal. When in doubt a character stays.
- Whitespace: one space for a run of spaces, one newline (a TTS pause) for line breaks and
  blank lines, none at either end (see bridge.speech.output).

Streaming: feed() returns at once what is decided; only a possible marker at the end of the
text fed is held back, and every marker is decided within HOLD_LIMIT characters (a longer
construct, such as a "[link text" of 64 characters, is plain text). The rules are rules on
the text, never on the pieces: however an answer is split, the joined results of feed() and
finish() equal speakable(answer). Text inside a think block or a link target is dropped as
it arrives.
"""

from __future__ import annotations

from collections.abc import Callable

from bridge.speech import rules
from bridge.speech.output import CELL, LINE, SOFT, SPACE, Spoken

__all__ = ["HOLD_LIMIT", "SpeechFilter", "speakable"]

HOLD_LIMIT = 64  # every construct is decided within this many characters

# What the text at the current position belongs to.
_TEXT, _THINK, _URL, _TAG = range(4)


class SpeechFilter:
    """One answer's filter: feed() each streamed text piece, finish() at the end."""

    __slots__ = ("_buf", "_code", "_depth", "_fast", "_line_start", "_link", "_mode", "_prev", "_quote", "_row",
                 "_spoken")

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._buf = ""  # text fed but not yet decided
        self._fast = False  # nothing held or owed: a plain piece passes through as it is
        self._mode = _TEXT
        self._line_start = True  # at the start of a source line (markers of lines allowed)
        self._prev = "\n"  # the source character before the text held (or to come)
        self._row = False  # on a table row
        self._link = False  # inside a link's [text], its `](` ahead
        self._code = False  # inside `inline code`
        self._depth = 0  # open parentheses inside a link target
        self._quote = False  # inside a quoted attribute of an IMS tag
        self._spoken = Spoken()

    @property
    def held(self) -> int:
        """How many characters fed so far are held back (always fewer than HOLD_LIMIT)."""
        return len(self._buf)

    def said_before(self) -> None:
        """Something was said ahead of this answer's text (the bridge's filler, between tool rounds):
        a space at the text's start is then a gap to keep ("check." + " It's"), not an edge to trim."""
        self._spoken.started = True

    def feed(self, text: str) -> str:
        """Returns what can be spoken now of `text` (and of what was held before it)."""
        if self._fast and rules.SPECIAL.search(text) is None:
            if text:
                self._prev = self._spoken.last = text[-1]
            return text
        return self._run(self._buf + text, final=False)

    def finish(self) -> str:
        """Flushes everything held back at the end of the answer; the filter starts afresh."""
        out = self._run(self._buf, final=True)
        self._reset()
        return out

    # -- the scan ---------------------------------------------------------------------------

    def _run(self, buf: str, final: bool) -> str:
        pos, end = 0, len(buf)
        while pos < end:
            if self._mode:
                step = _MODES[self._mode](self, buf, pos, final)
            else:
                step = (self._line if self._line_start else self._inline)(buf, pos, final)
            if step == pos:  # undecided until more text arrives
                break
            pos = step
        if pos:
            self._prev = buf[pos - 1]
        self._buf = buf[pos:]
        spoken = self._spoken
        self._fast = not (self._buf or self._mode or self._line_start or spoken.gap) and spoken.started
        return spoken.take()

    def _before(self, buf: str, i: int) -> str:
        """The source character before `i`."""
        return buf[i - 1] if i else self._prev

    @staticmethod
    def _window(buf: str, i: int, final: bool) -> tuple[str, bool]:
        """The text a decision at `i` may look at, and whether more of it may still arrive."""
        window = buf[i : i + HOLD_LIMIT]
        if len(window) == HOLD_LIMIT:
            return window, False
        return (window + "\n", False) if final else (window, True)

    def _line(self, buf: str, i: int, final: bool) -> int:
        """At a line start: indentation, and the markers of headings, lists, quotes, rules,
        fences and tables."""
        char = buf[i]
        if char == "\n":
            return self._newline(buf, i, final)
        if char in " \t\r\f\v":
            self._owe(SPACE)
            blanks = rules.BLANKS.match(buf, i)
            return blanks.end() if blanks else i + 1
        if char not in rules.LINE_MARKERS:
            self._line_start = False
            return self._inline(buf, i, final)
        if char == "|":
            self._line_start, self._row = False, True
            return self._pipe(buf, i, final)
        window, more = self._window(buf, i, final)
        if more and rules.LINE_PREFIX.fullmatch(window):
            return i
        marker = rules.LINE.match(window)
        if marker is None:
            self._line_start = False
            return self._inline(buf, i, final)
        self._line_start = char == ">"  # a quoted line may hold a list item or a heading
        return i + marker.end()

    def _inline(self, buf: str, i: int, final: bool) -> int:
        """Plain text up to the next marker, then the marker."""
        found = rules.TRIGGER.search(buf, i)
        if found is None:
            self._spoken.say(buf[i:])
            return len(buf)
        at = found.start()
        if at > i:
            self._spoken.say(buf[i:at])
        return _HANDLERS.get(buf[at], SpeechFilter._emoji)(self, buf, at, final)

    # -- modes ------------------------------------------------------------------------------

    def _think(self, buf: str, i: int, final: bool) -> int:
        close = buf.find(rules.THINK_CLOSE, i)
        if close >= 0:
            self._mode = _TEXT
            return close + len(rules.THINK_CLOSE)
        if not final:  # keep what may be the start of </think>
            for size in range(min(len(rules.THINK_CLOSE) - 1, len(buf) - i), 0, -1):
                if buf.endswith(rules.THINK_CLOSE[:size]):
                    return len(buf) - size
        return len(buf)

    def _url(self, buf: str, i: int, final: bool) -> int:
        for stop in rules.URL_STOP.finditer(buf, i):
            char = stop.group()
            if char == "(":
                self._depth += 1
            elif char == ")" and self._depth:
                self._depth -= 1
            else:
                self._mode = _TEXT
                return stop.end() if char == ")" else self._newline(buf, stop.start(), final)
        return len(buf)

    def _tag(self, buf: str, i: int, final: bool) -> int:
        for stop in rules.TAG_STOP.finditer(buf, i):
            if stop.group() == '"':  # only a quote opening a value (="...") hides a >
                self._quote = not self._quote and self._before(buf, stop.start()) == "="
            elif not self._quote:
                self._mode = _TEXT
                self._spoken.emit(buf[i : stop.end()])
                return stop.end()
        self._spoken.emit(buf[i:])
        return len(buf)

    # -- inline markers ---------------------------------------------------------------------

    def _owe(self, gap: int) -> None:
        self._spoken.gap = max(self._spoken.gap, gap)

    def _newline(self, buf: str, i: int, final: bool) -> int:
        self._spoken.gap = LINE
        self._line_start = True
        self._row = self._link = self._code = False
        return i + 1

    def _space(self, buf: str, i: int, final: bool) -> int:
        self._owe(SPACE)
        return i + 1

    def _emphasis(self, buf: str, i: int, final: bool) -> int:
        window, more = self._window(buf, i, final)
        mark = window[0]
        run = len(window) - len(window.lstrip(mark))
        if run == len(window) and more:
            return i
        after = window[run] if run < len(window) else mark
        if self._code or not rules.is_markup(mark, run, self._before(buf, i), after):
            self._spoken.emit(window[:run])
        return i + run

    def _backtick(self, buf: str, i: int, final: bool) -> int:
        window, more = self._window(buf, i, final)
        run = len(window) - len(window.lstrip("`"))
        if run == len(window) and more:
            return i
        self._code = not self._code
        return i + run

    def _bracket(self, buf: str, i: int, final: bool) -> int:
        if not self._code:
            window, more = self._window(buf, i, final)
            if rules.LINK.match(window):
                self._link = True
                return i + 1
            if more and rules.LINK_PREFIX.fullmatch(window):
                return i
        self._spoken.emit("[")
        return i + 1

    def _close(self, buf: str, i: int, final: bool) -> int:
        if self._link:
            window = self._window(buf, i, final)[0]
            if len(window) < 2:
                return i
            self._link = False
            if window[1] == "(":
                self._mode, self._depth = _URL, 0
                return i + 2
        self._spoken.emit("]")
        return i + 1

    def _bang(self, buf: str, i: int, final: bool) -> int:
        if not self._code:
            window, more = self._window(buf, i, final)
            image = rules.IMAGE.match(window)
            if image:
                self._mode, self._depth = _URL, 0
                self._owe(SOFT)
                return i + image.end()
            if more and rules.IMAGE_PREFIX.fullmatch(window):
                return i
        self._spoken.emit("!")
        return i + 1

    def _angle(self, buf: str, i: int, final: bool) -> int:
        window, more = self._window(buf, i, final)
        if rules.IMS_TAG.match(window):
            self._spoken.emit("<")
            self._mode, self._quote = _TAG, False
            return i + 1
        if not self._code:
            if window.startswith(rules.THINK_OPEN):
                self._mode = _THINK
                self._owe(SOFT)
                return i + len(rules.THINK_OPEN)
            if window.startswith(rules.THINK_CLOSE):
                return i + len(rules.THINK_CLOSE)
            line_break = rules.BREAK.match(window)
            if line_break:
                self._owe(LINE)
                return i + line_break.end()
        if more and rules.angle_prefix(window):
            return i
        self._spoken.emit("<")
        return i + 1

    def _pipe(self, buf: str, i: int, final: bool) -> int:
        if not self._row:
            self._spoken.emit("|")
            return i + 1
        window, more = self._window(buf, i, final)
        rule_cell = rules.RULE_CELL.match(window)
        if rule_cell:
            return i + rule_cell.end()
        if more and rules.RULE_CELL_PREFIX.fullmatch(window):
            return i
        self._owe(CELL)
        return i + 1

    def _emoji(self, buf: str, i: int, final: bool) -> int:
        if buf[i] == rules.ZWJ and not rules.EMOJI_CHAR.match(self._before(buf, i)):
            self._spoken.emit(rules.ZWJ)
            return i + 1
        spoken = self._spoken  # a space before the emoji is up to what follows it
        spoken.gap = SOFT if spoken.gap == SPACE else max(spoken.gap, SOFT)
        emoji = rules.EMOJI.match(buf, i)
        return emoji.end() if emoji else i + 1


_Handler = Callable[[SpeechFilter, str, int, bool], int]
_MODES: dict[int, _Handler] = {_THINK: SpeechFilter._think, _URL: SpeechFilter._url, _TAG: SpeechFilter._tag}
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


def speakable(text: str) -> str:
    """The whole answer at once: SpeechFilter().feed(text) + .finish()."""
    speech = SpeechFilter()
    return speech.feed(text) + speech.finish()
