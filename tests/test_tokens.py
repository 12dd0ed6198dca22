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


def test_usage_of_several_rounds_sums_counts_and_numeric_extras():
    """A tool loop's usage is every round's: DeepSeek's cache hits, OpenRouter's cost, detail objects."""
    from bridge.events import Usage

    total = Usage(0, 0)
    total.add(Usage(10, 2, details={"prompt_cache_hit_tokens": 8, "cost": 0.5,
                                    "completion_tokens_details": {"reasoning_tokens": 1}}))
    total.add(Usage(30, 4, estimated=True, details={"prompt_cache_hit_tokens": 20, "cost": 0.25,
                                                    "completion_tokens_details": {"reasoning_tokens": 3}}))
    assert total.as_dict() == {"prompt_tokens": 40, "completion_tokens": 6, "total_tokens": 46,
                               "prompt_cache_hit_tokens": 28, "cost": 0.75,
                               "completion_tokens_details": {"reasoning_tokens": 4}}
    assert total.estimated is True
