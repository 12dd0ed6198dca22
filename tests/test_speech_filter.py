"""The speech filter: markdown, emoji and reasoning out; words, numbers, punctuation and IMS
commands in; and the same result however the answer is split into streamed pieces."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.speech.filter import HOLD_LIMIT, SpeechFilter, speakable
from tests.support.speech_cases import ANSWERS, CORPUS, MARKDOWNISH, RULES, splits


def feed_all(pieces: list[str], **options: bool) -> str:
    speech = SpeechFilter(**options)
    return "".join(speech.feed(piece) for piece in pieces) + speech.finish()


def assert_streams_like_the_whole(pieces: list[str]) -> None:
    """The joined results of feed() and finish() equal speakable(answer), however the answer is
    split. The one exception: an orphan </think> (pre-filled reasoning) cannot unsay what
    earlier feed() calls returned; what follows it is still exactly speakable(answer), after a
    line break."""
    speech, said, gone = SpeechFilter(), [], None
    for piece in pieces:
        said.append(speech.feed(piece))
        if gone is None and speech.orphan_think_close:
            gone = "".join(said[:-1])
    said.append(speech.finish())
    joined, whole = "".join(said), speakable("".join(pieces))
    if gone is None:
        assert joined == whole
    else:
        assert joined == gone + ("\n" if gone and whole else "") + whole


@pytest.mark.parametrize("name", CORPUS)
def test_corpus_answers_are_spoken_as_expected(name: str) -> None:
    answer, spoken = CORPUS[name]
    assert speakable(answer) == spoken


@pytest.mark.parametrize("text, spoken", RULES)
def test_rule(text: str, spoken: str) -> None:
    assert speakable(text) == spoken


@pytest.mark.parametrize("text, spoken", RULES + list(CORPUS.values()))
def test_one_character_pieces_give_the_same_speech(text: str, spoken: str) -> None:
    assert_streams_like_the_whole(list(text))


@pytest.mark.parametrize("answer", ANSWERS, ids=list(CORPUS))
@given(data=st.data())
def test_corpus_split_anywhere_gives_the_same_speech(answer: str, data: st.DataObject) -> None:
    assert_streams_like_the_whole(data.draw(splits(answer)))


@settings(max_examples=500)
@given(data=st.data(), text=MARKDOWNISH)
def test_markdownish_text_split_anywhere_gives_the_same_speech(text: str, data: st.DataObject) -> None:
    assert_streams_like_the_whole(data.draw(splits(text)))


@settings(max_examples=300)
@given(data=st.data(), text=st.one_of(MARKDOWNISH, st.sampled_from(ANSWERS)))
def test_held_back_text_stays_under_the_bound(text: str, data: st.DataObject) -> None:
    speech, fed, said = SpeechFilter(), "", ""
    for piece in data.draw(splits(text)):
        said += speech.feed(piece)
        fed += piece
        assert speech.held < HOLD_LIMIT
        if speech.orphan_think_close:
            continue  # what went out before it is not in speakable(fed)
        whole = speakable(fed)  # what the text so far would give if it ended here
        assert whole.startswith(said)
        assert len(whole) - len(said) <= 2 * speech.held + 2


def test_unterminated_link_text_is_released_at_the_bound() -> None:
    speech = SpeechFilter()
    text = "[" + "a" * 100
    said = [speech.feed(char) for char in text]
    assert "".join(said[: HOLD_LIMIT - 1]) == ""  # could still become [text](url)
    assert "".join(said[:HOLD_LIMIT]) == text[:HOLD_LIMIT]  # too long for a link: plain text
    assert all(said[i] == text[i] for i in range(HOLD_LIMIT, len(text)))
    assert speech.finish() == ""


def test_long_emphasis_is_decided_within_the_bound() -> None:
    bold = "**" + "b" * 100 + "**"
    assert speakable(bold) == "b" * 100
    speech = SpeechFilter()
    assert speech.feed(bold[:3]) == "b"  # the opening ** is decided by the letter after it


@st.composite
def plain_answers(draw: st.DrawFn) -> str:
    letters = st.characters(categories=("L", "N"), max_codepoint=0xFFFF)
    punctuation = st.sampled_from(["", ".", ",", "?", "'s", ":", ";", "%", "°", "€", "，", "。", "？"])
    words = draw(st.lists(st.tuples(st.text(letters, min_size=1, max_size=8), punctuation), min_size=1))
    return " ".join(word + mark for word, mark in words)


@given(data=st.data(), text=plain_answers())
def test_plain_text_is_returned_at_once(text: str, data: st.DataObject) -> None:
    speech, fed, said = SpeechFilter(), "", ""
    for piece in data.draw(splits(text)):
        said += speech.feed(piece)
        fed += piece
        assert said == fed.rstrip(" ")  # a space at a piece's end waits for the next word
        assert speech.held == 0
    assert said + speech.finish() == text


def test_think_block_is_dropped_as_it_streams() -> None:
    speech = SpeechFilter()
    assert speech.feed("\n <think>") == ""
    for _ in range(200):
        assert speech.feed("reasoning *step* [a](b) ") == ""
        assert speech.held == 0
    assert speech.feed("</thi") == ""
    assert speech.held == len("</thi")
    assert speech.feed("nk> Answer") + speech.finish() == "Answer"


def test_think_tag_counts_only_at_the_start_of_the_answer() -> None:
    speech = SpeechFilter()
    assert speech.feed("The model emits a <thi") == "The model emits a"
    assert speech.feed("nk> tag. Your refund is approved.") == " <think> tag. Your refund is approved."
    assert speech.finish() == ""


def test_link_target_is_dropped_as_it_streams() -> None:
    speech = SpeechFilter()
    assert speech.feed("See [docs](") == "See docs"
    for _ in range(100):
        assert speech.feed("https://example.com/a_(b)/") == ""
        assert speech.held < HOLD_LIMIT
    assert speech.held == 0  # a target this long is a URL: dropped as it arrives
    assert speech.feed(") now") + speech.finish() == " now"


def test_unclosed_link_target_eats_no_words_as_it_streams() -> None:
    speech = SpeechFilter()
    assert speech.feed("See [the policy](sect") == "See the policy"
    assert speech.feed("ion 4 of the handbook") == " (section 4 of the handbook"
    assert speech.feed(" for details.") + speech.finish() == " for details."


def test_ims_command_streams_verbatim() -> None:
    speech = SpeechFilter()
    assert speech.feed("Bye! <imsagent_") == "Bye! <imsagent_"
    assert speech.feed('hangup endword="**bye_now**"') == 'hangup endword="**bye_now**"'
    assert speech.feed("/>") + speech.finish() == "/>"


def test_markers_at_a_piece_end_wait_for_the_next_piece() -> None:
    speech = SpeechFilter()
    assert speech.feed("This is **") == "This is"
    assert speech.held == 2
    assert speech.feed("key") == " key"
    assert speech.feed("** and 3 *") == " and 3"
    assert speech.feed(" 4") == " * 4"
    assert speech.feed(", 5* ") == ", 5"
    assert speech.feed("3 and ★") == "* 3 and"
    assert speech.feed("\ufe0f.") == "."  # ★ and an emoji selector: an emoji
    assert speech.finish() == ""


def test_finish_starts_a_fresh_answer() -> None:
    speech = SpeechFilter()
    assert speech.feed("<think>unclosed") == ""
    assert speech.finish() == ""
    assert speech.feed("# New answer") + speech.finish() == "New answer"


def test_empty_pieces_and_answers() -> None:
    speech = SpeechFilter()
    assert speech.feed("") == ""
    assert speech.feed("Hello") == "Hello"
    assert speech.feed("") == ""
    assert speech.finish() == ""
    assert speakable("") == ""


def test_a_space_at_the_start_is_trimmed_unless_something_was_said_before() -> None:
    speech = SpeechFilter()
    assert speech.feed(" It's sunny.") + speech.finish() == "It's sunny."
    speech.said_before()  # the bridge's filler went ahead of this text: its leading space joins the two
    assert speech.feed(" It's sunny.") + speech.finish() == " It's sunny."


# -- pre-filled reasoning: a </think> with no <think> before it ----------------------------------

REASONING = "Okay, the user asks about the refund. Policy says **14 days**; it is day 3.\n"
ANSWER = "\n\nYour refund is *approved*."


def test_orphan_close_drops_everything_before_it_in_a_whole_answer() -> None:
    speech = SpeechFilter()
    assert speech.feed(REASONING + "</think>" + ANSWER) + speech.finish() == "Your refund is approved."
    assert speech.orphan_think_close
    assert speakable(REASONING + "</think>" + ANSWER) == "Your refund is approved."


def test_orphan_close_while_streaming_cannot_unsay_what_went_out() -> None:
    speech = SpeechFilter()
    leaked = speech.feed(REASONING[:37])
    assert leaked == "Okay, the user asks about the refund."  # it looked like an answer
    assert not speech.orphan_think_close
    rest = speech.feed(REASONING[37:] + "</think>" + ANSWER) + speech.finish()
    assert speech.orphan_think_close  # the pipeline logs it
    assert rest == "\nYour refund is approved."  # the rest of the reasoning is not spoken


def test_orphan_close_drops_what_is_held_back() -> None:
    speech = SpeechFilter()
    assert speech.feed("The plan: **") == "The plan:"
    assert speech.held == 2
    assert speech.feed("x</think>Answer") + speech.finish() == "\nAnswer"


def test_orphan_close_is_reported_once_and_is_text_after_a_think_tag() -> None:
    speech = SpeechFilter()
    assert speech.feed("plan</think>Answer </think> end") + speech.finish() == "Answer </think> end"
    assert speech.orphan_think_close
    assert speakable("Use <think> then </think> to wrap it") == "Use <think> then </think> to wrap it"
    speech = SpeechFilter()
    assert speech.feed("<think>plan</think>ok") + speech.finish() == "ok"
    assert not speech.orphan_think_close


@pytest.mark.parametrize("pieces", [
    [REASONING + "</think>" + ANSWER],
    list(REASONING + "</think>" + ANSWER),
    [REASONING[:20], REASONING[20:], "</thi", "nk>", ANSWER],
])
def test_think_prefilled_starts_inside_the_reasoning(pieces: list[str]) -> None:
    speech = SpeechFilter(think_prefilled=True)
    said = [speech.feed(piece) for piece in pieces]
    assert "".join(said) + speech.finish() == "Your refund is approved."
    assert not speech.orphan_think_close
    assert speech.spoke
    assert speakable("".join(pieces), think_prefilled=True) == "Your refund is approved."


def test_think_prefilled_answer_without_a_close_is_unspeakable() -> None:
    speech = SpeechFilter(think_prefilled=True)
    assert speech.feed("Hello! How can I help?") == ""
    assert speech.finish() == ""
    assert not speech.spoke


def test_think_prefilled_with_the_model_writing_think_too() -> None:
    assert speakable("<think>plan</think>\nHi", think_prefilled=True) == "Hi"


# -- an answer with nothing speakable ------------------------------------------------------------

@pytest.mark.parametrize("answer", ["👍", "---", "🎉🎉 😀", "   \n ", "", "<think>only reasoning</think>",
                                    "![logo](https://x.io/l.png)", "***\n___", "| --- |", "<br>"])
def test_an_unspeakable_answer_is_signalled(answer: str) -> None:
    speech = SpeechFilter()
    assert speech.feed(answer) + speech.finish() == ""
    assert not speech.spoke
    assert speakable(answer) == ""


@pytest.mark.parametrize("answer", ["ok", "👍 Done", '<imsagent_hangup endword="Bye"/>', "★"])
def test_a_speakable_answer_is_signalled(answer: str) -> None:
    speech = SpeechFilter()
    said = speech.feed(answer)
    said += speech.finish()
    assert said and speech.spoke


def test_spoke_follows_each_answer() -> None:
    speech = SpeechFilter()
    assert speech.feed("Hi") == "Hi" and speech.spoke  # known as soon as text went out
    speech.finish()
    assert speech.spoke  # still describes the answer just finished
    assert speech.feed("👍") == "" and not speech.spoke  # the next answer
    speech.finish()
    assert not speech.spoke
