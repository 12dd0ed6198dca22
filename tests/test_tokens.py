"""Token estimates: a text counted piece by piece gives the estimate of the whole text."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from bridge.events import TokenCount, estimate_tokens


@given(st.lists(st.text(), max_size=8))
def test_counting_pieces_equals_estimating_the_whole(pieces: list[str]) -> None:
    count = TokenCount()
    for piece in pieces:
        count.add(piece)
    assert count.tokens == estimate_tokens("".join(pieces))


def test_the_estimate_counts_cjk_characters_one_token_each() -> None:
    count = TokenCount()
    count.add("你好")
    count.add("世界")
    assert count.tokens == 4
    assert estimate_tokens("hello world!") == 3
