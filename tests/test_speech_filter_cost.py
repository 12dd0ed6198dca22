"""The speech filter's cost is linear in its input, whatever the input holds (issue 20, item 3).

Time is measured by bench/speech_bench.py, not here: these tests count work instead. Every
call the filter makes, to its own methods and to C (regex matches, string methods), is
counted with sys.setprofile; each call looks at a bounded window or consumes what it scans
(see bridge/speech/filter.py), so calls per character bounded and flat from 2,000 to 8,000
characters is linear cost. Adversarial inputs are runs of every character the filter has to
look at, and long held prefixes fed one character at a time.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.speech.filter import SpeechFilter, plain_matchers, speakable
from tests.support.speech_cases import ANSWERS, MARKDOWNISH, RULES, splits

# A unit repeated to the input's length.
ADVERSARIAL = {
    "<": "<", "[": "[", "![": "![", "* ": "* ", "|": "|", "row pipes": "\n| a |---|", "emoji": "😀 ",
    "</thin": "</thin", "**a": "**a", "_a_": "_a_ ", "backtick": "` ", "bullets": "\n- ", "<br>": "<br>",
    "[a](": "[a](", "held [aaa": "[" + "a" * 62, "★": "★", "zwj": "a\u200d", "~~a": "~~a", "tab": "a\t",
    "__x": "__" + "x" * 60 + " ", "links": "[a](b) ", "stars": "*" * 100, "plain": "hello world ",
    "<think>": "<think>", "</think>": "</think>", "parens in a target": "[a](" + "(" * 50,
    "long target": "[a](http://x.io/" + "p" * 100 + " ", "newlines": "\n", "#": "# ", "<imsagent_": "<imsagent_",
}


def calls(text: str, piece: int) -> int:
    """The calls made while `text` is fed in pieces of `piece` characters and finished."""
    count = 0

    def profile(frame: FrameType, event: str, arg: Any) -> None:
        nonlocal count
        if event in ("call", "c_call"):
            count += 1

    speech = SpeechFilter()
    pieces = [text[i : i + piece] for i in range(0, len(text), piece)]
    sys.setprofile(profile)
    try:
        for chunk in pieces:
            speech.feed(chunk)
        speech.finish()
    finally:
        sys.setprofile(None)
    return count


@pytest.mark.parametrize("unit", ADVERSARIAL.values(), ids=list(ADVERSARIAL))
@pytest.mark.parametrize("piece", [0, 1], ids=["one piece", "1-char pieces"])
def test_cost_per_character_is_bounded_and_flat(unit: str, piece: int) -> None:
    per_char = []
    for size in (2_000, 8_000):
        text = (unit * (size // len(unit) + 1))[:size]
        per_char.append(calls(text, piece or size) / size)
    small, large = per_char
    assert large <= small * 1.05 + 0.05  # linear: four times the text, four times the calls
    assert large <= (10 if piece == 0 else 40)  # and a small constant


def test_a_megabyte_of_markers_in_one_piece_takes_a_bounded_number_of_calls() -> None:
    unit = "a << b [[c] ![ * | ★ "
    text = unit * (2**20 // len(unit))  # 1 MiB of markers that are text
    assert calls(text, len(text)) < 100  # taken by one regex, not step by step
    assert speakable(text) == text.strip()


class HandlersOnly(SpeechFilter):
    """The filter without its bulk path: every marker is decided by its handler."""

    _plain = plain_matchers(literal_markers=False)


@settings(max_examples=500)
@given(data=st.data(), text=st.one_of(MARKDOWNISH, st.sampled_from(ANSWERS + [text for text, _ in RULES])))
def test_markers_taken_in_bulk_are_spoken_as_their_handlers_decide(text: str, data: st.DataObject) -> None:
    reference = HandlersOnly()
    pieces = data.draw(splits(text))
    expected = "".join(reference.feed(piece) for piece in pieces) + reference.finish()
    speech = SpeechFilter()
    assert "".join(speech.feed(piece) for piece in pieces) + speech.finish() == expected
    assert speakable(text) == reference.feed(text) + reference.finish()
