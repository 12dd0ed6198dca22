"""The speech filter: what a caller should hear of a model's markdown answer."""

from bridge.speech.filter import HOLD_LIMIT, SpeechFilter, speakable

__all__ = ["HOLD_LIMIT", "SpeechFilter", "speakable"]
