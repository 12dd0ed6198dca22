"""Audio for Agora's audio route: 16 kHz, 16-bit little-endian, mono PCM.

Two sources. A configured clip (AUDIO_TRANSCRIPT_FILE + AUDIO_PCM_FILE) is played as-is for
every request, like Agora's sample server. Otherwise the bridge has no speech synthesis, so
it generates a placeholder as long as the answer would take to speak (`speech_seconds`):
a soft 400 Hz tone at about -30 dBFS with 20 ms fades, which proves audio flows through the
engine with realistic timing without pretending to be speech.
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bridge.knowledge.text import CJK_CHARS, WORD

SAMPLE_RATE = 16_000
SAMPLE_BYTES = 2
FRAME_MS = 40
FRAME_BYTES = SAMPLE_RATE * SAMPLE_BYTES * FRAME_MS // 1000  # 1,280

TONE_HZ = 400  # divides 16 kHz: one cycle is exactly 40 samples, so frames repeat seamlessly
TONE_AMPLITUDE = 1000  # of 32767: about -30 dBFS, audible but soft
FADE_SAMPLES = SAMPLE_RATE * 20 // 1000

SECONDS_PER_CJK_CHAR = 0.22  # Mandarin speech: about 4.5 characters a second
SECONDS_PER_WORD = 0.4  # English speech: about 150 words a minute
MIN_SECONDS = 0.5
MAX_SECONDS = 300.0
INLINE_SECONDS = 30.0  # longer placeholders are built in a worker thread (~0.3 ms per 30 s inline)

_CJK = re.compile(f"[{CJK_CHARS}]")


@dataclass(frozen=True, slots=True)
class AudioClip:
    """A transcript and the PCM that speaks it."""

    transcript: str
    pcm: bytes


def load_clip(transcript_file: str, pcm_file: str) -> AudioClip:
    """Read a configured transcript (UTF-8 text) and its raw PCM file."""
    transcript = Path(transcript_file).read_text(encoding="utf-8-sig").strip()
    return AudioClip(transcript, Path(pcm_file).read_bytes())


def speech_seconds(text: str) -> float:
    """Roughly how long `text` takes to say: per character for CJK, per word otherwise."""
    cjk = len(_CJK.findall(text))
    words = len(WORD.findall(text))
    if not cjk and not words:
        return 0.0
    seconds = cjk * SECONDS_PER_CJK_CHAR + words * SECONDS_PER_WORD
    return min(max(seconds, MIN_SECONDS), MAX_SECONDS)


def synthesize(text: str) -> bytes:
    """Placeholder PCM as long as `text` would take to speak (empty text: no audio).

    One period of the tone is repeated as bytes (the 5-minute cap takes a few ms); only
    the fades are computed sample by sample.
    """
    samples = round(speech_seconds(text) * SAMPLE_RATE)
    if samples == 0:
        return b""
    cycle = SAMPLE_RATE // TONE_HZ
    period = array("h", [round(TONE_AMPLITUDE * math.sin(2 * math.pi * i / cycle)) for i in range(cycle)])
    pcm = bytearray(_little_endian(period) * (samples // cycle + 1))
    del pcm[samples * SAMPLE_BYTES :]
    fade = min(FADE_SAMPLES, samples // 2)
    edge = fade * SAMPLE_BYTES
    head, tail = _samples(pcm[:edge]), _samples(pcm[len(pcm) - edge :])
    for i in range(fade):
        head[i] = head[i] * i // fade
        tail[fade - 1 - i] = tail[fade - 1 - i] * i // fade
    pcm[:edge] = _little_endian(head)
    pcm[len(pcm) - edge :] = _little_endian(tail)
    return bytes(pcm)


async def asynthesize(text: str) -> bytes:
    """`synthesize`, in a worker thread when the clip is long enough to hold up the event loop."""
    if speech_seconds(text) <= INLINE_SECONDS:
        return synthesize(text)
    return await asyncio.to_thread(synthesize, text)


def _samples(data: bytes | bytearray) -> array[int]:
    """Little-endian 16-bit PCM bytes as an array of samples."""
    out = array("h", data)
    if sys.byteorder == "big":
        out.byteswap()
    return out


def _little_endian(samples: array[int]) -> bytes:
    if sys.byteorder == "big":
        samples = array("h", samples)
        samples.byteswap()
    return samples.tobytes()


def frames(pcm: bytes) -> Iterator[bytes]:
    """40 ms frames of 1,280 bytes; the last may be shorter."""
    view = memoryview(pcm)
    for start in range(0, len(pcm), FRAME_BYTES):
        yield bytes(view[start : start + FRAME_BYTES])
