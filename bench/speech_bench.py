"""Cost of the speech filter: per streamed chunk beside the chunk's encoding, and per KB by size.

Standalone. Two tables, each figure the median of several runs:

1. Per chunk: splits plain English, plain Chinese and markdown-heavy answers into chunks the
   way an LLM streams them (3-8 characters, and 5-30 for longer tokens), then times, in the
   same run, one `SpeechFilter` per answer fed every chunk (and finished), and one
   `ChunkEncoder` per answer encoding every chunk as an SSE event (the bridge's existing
   per-chunk work). Microseconds per chunk.
2. Per KB by size (issue 20: the filter must be linear): one chunk of 1 KB, 100 KB and 3 MB
   (characters) of plain text, markdown-heavy text and adversarial runs of every character
   the filter has to look at, fed at once and finished; and 100 KB fed one character at a
   time, where a long held prefix is read again on every piece. Microseconds of CPU per KB
   (process time, so other processes on the machine count less). Flat across a row is linear.

    python bench/speech_bench.py [--runs 7] [--seconds 0.2] [--sizes-only | --chunks-only]
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bridge.render.openai import ChunkEncoder
from bridge.speech.filter import SpeechFilter

PLAIN_EN = [
    "Your appointment is confirmed for Tuesday at half past ten in the morning. The clinic is on "
    "the second floor of the Riverside building, next to the pharmacy. Please arrive ten minutes "
    "early and bring your insurance card and a photo ID. If you need to reschedule, call us at "
    "least a day in advance so we can offer the slot to another patient. Parking is free for the "
    "first two hours, and the number twelve bus stops right outside. Is there anything else I can "
    "help you with today?",
    "The total for your order comes to forty five dollars and fifty cents, including tax and "
    "delivery. Your package will ship tomorrow morning and should arrive by Friday. You will get "
    "a text message with a tracking link as soon as it leaves our warehouse.",
]
PLAIN_ZH = [
    "您好，您的预约已经确认，时间是本周二上午十点半。诊所位于滨江大厦二楼，药店旁边。请提前十分钟到达，"
    "并携带您的医保卡和身份证件。如需改期，请至少提前一天致电我们，以便我们把时段安排给其他患者。"
    "停车前两个小时免费，十二路公交车就在门口停靠。请问还有什么可以帮您的吗？",
    "您的订单总计四十五元五角，已包含税费和运费。包裹将于明天上午发出，预计周五送达。"
    "商品离开仓库后，您会收到一条附有物流链接的短信。",
]
MARKDOWN = [
    "Sure! Here are three tips for better sleep 😴:\n\n"
    "- **Keep a schedule**: go to bed at the same time every day.\n"
    "- *Limit screens* an hour before bed.\n"
    "- Avoid caffeine after 2 p.m. ☕\n\n"
    "Sweet dreams! 🌙✨",
    "Here is a comparison of our plans:\n\n"
    "| Plan | Price | Calls |\n|:-----|------:|:-----:|\n"
    "| Basic | $5/month | 100 |\n| **Pro** | $20/month | Unlimited |\n\n"
    "Read the [pricing guide](https://example.com/pricing_(2024)) or ![chart](https://x.io/c.png) "
    "for details.",
    "To read a file in Python, use `open()` with a `with` block:\n\n"
    "```python\nwith open(file_name) as f:\n    data = f.read()\n```\n\n"
    "> **Tip:** the `file_name` variable holds the path.\n\n---\n\n### Summary\n1. Open\n2. Read",
    "## 退货政策\n\n您好！关于退货，请注意以下几点：\n\n"
    "1. **时间限制**：收货后 7 天内可申请退货。\n"
    "2. **商品状态**：商品需保持完好，*不影响二次销售*。\n\n"
    "### 温馨提示\n如有疑问，请随时联系客服😊。感谢您的来电，再见！<imsagent_hangup endword=\"再见\"/>",
]


def chunked(text: str, low: int, high: int, rng: random.Random) -> list[str]:
    """Splits `text` into pieces of `low` to `high` characters."""
    pieces, i = [], 0
    while i < len(text):
        size = rng.randint(low, high)
        pieces.append(text[i : i + size])
        i += size
    return pieces


def filter_answers(answers: list[list[str]]) -> None:
    for chunks in answers:
        speech = SpeechFilter()
        for chunk in chunks:
            speech.feed(chunk)
        speech.finish()


def encode_answers(answers: list[list[str]]) -> None:
    for chunks in answers:
        encoder = ChunkEncoder("m")
        for chunk in chunks:
            encoder.text(chunk)


def per_chunk_us(answers: list[list[str]], runs: int, seconds: float) -> tuple[float, float]:
    """Microseconds per chunk of the filter and of the encoder: the medians over `runs`
    runs of each, interleaved so that both see the same machine load."""
    chunks = sum(len(a) for a in answers)
    start = time.perf_counter()
    filter_answers(answers)  # warm-up, and the size of one run
    encode_answers(answers)
    loops = max(1, int(seconds / (time.perf_counter() - start)))
    results: dict[Callable[[list[list[str]]], None], list[float]] = {filter_answers: [], encode_answers: []}
    for _ in range(runs):
        for work, times in results.items():
            start_ns = time.perf_counter_ns()
            for _ in range(loops):
                work(answers)
            times.append((time.perf_counter_ns() - start_ns) / 1000 / (loops * chunks))
    return statistics.median(results[filter_answers]), statistics.median(results[encode_answers])


# Inputs of the per-KB table: a unit repeated to the size. The adversarial ones are runs of
# the characters the filter has to look at, and constructs it must hold back.
SIZED = {
    "plain English": " ".join(PLAIN_EN) + " ",
    "plain Chinese": "".join(PLAIN_ZH),
    "markdown-heavy": "\n\n".join(MARKDOWN) + "\n\n",
    "`<` run": "<",
    "`[` run": "[",
    "`![` run": "![",
    "`* ` run": "* ",
    "pipe run": "|",
    "table rows (newline, pipe, cell)": "\n| a ",
    "emoji run": "😀",
    "`</thin` fragments": "</thin",
    "`**a` (markup)": "**a",
    "`_a_ ` (markup)": "_a_ ",
    "`[a](` (no target)": "[a](",
    "`<br>` tags": "<br>",
    "bullets (newline, dash)": "\n- ",
    "symbols `★✓`": "★✓ ",
}
# Held prefixes: fed one character at a time, each piece re-reads what is held.
HELD = {
    "plain English": " ".join(PLAIN_EN) + " ",
    "markdown-heavy": "\n\n".join(MARKDOWN) + "\n\n",
    "`[` + 62 letters": "[" + "a" * 62,
    "`<br` + 60 spaces": "<br" + " " * 60,
    "`__` + 60 letters": "__" + "x" * 60 + " ",
    "`![` + 61 letters": "![" + "a" * 61,
    "`</think` + `<`": "</think<",
}
SIZES = [("1 KB", 1_000), ("100 KB", 100_000), ("3 MB", 3_000_000)]


def fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def speak_pieces(pieces: list[str]) -> None:
    speech = SpeechFilter()
    for piece in pieces:
        speech.feed(piece)
    speech.finish()


def us_per_kb(pieces: list[str], chars: int, runs: int) -> float:
    """Microseconds of process time per 1,000 characters, the median over `runs` (small inputs
    are repeated to about 20 ms a run)."""
    start = time.process_time()
    speak_pieces(pieces)
    loops = max(1, int(0.02 / max(time.process_time() - start, 1e-6)))
    times = []
    for _ in range(runs):
        start_ns = time.process_time_ns()
        for _ in range(loops):
            speak_pieces(pieces)
        times.append((time.process_time_ns() - start_ns) / 1000 / loops / (chars / 1000))
    return statistics.median(times)


def sized_table(runs: int) -> None:
    print("\nOne chunk fed at once and finished: µs of CPU per KB (1,000 characters)\n")
    print("| input | " + " | ".join(name for name, _ in SIZES) + " |")
    print("| --- |" + " --- |" * len(SIZES))
    for name, unit in SIZED.items():
        cells = [us_per_kb([fill(unit, size)], size, runs if size < 1_000_000 else max(3, runs // 3))
                 for _, size in SIZES]
        print(f"| {name} | " + " | ".join(f"{cell:.0f}" for cell in cells) + " |")
    print("\n100 KB fed one character at a time: µs of CPU per KB\n")
    print("| input | µs/KB |")
    print("| --- | --- |")
    for name, unit in HELD.items():
        text = fill(unit, 100_000)
        print(f"| {name} | {us_per_kb(list(text), len(text), max(3, runs // 2)):.0f} |")


def chunk_table(runs: int, seconds: float) -> None:
    rng = random.Random(7)
    workloads = [
        ("plain English", PLAIN_EN, 3, 8),
        ("plain Chinese", PLAIN_ZH, 3, 8),
        ("markdown-heavy", MARKDOWN, 3, 8),
        ("plain English", PLAIN_EN, 5, 30),
        ("markdown-heavy", MARKDOWN, 5, 30),
    ]
    print("| text | chars per chunk | chunks | speech filter µs/chunk | SSE encode µs/chunk | filter / encode |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, texts, low, high in workloads:
        answers = [chunked(text, low, high, rng) for text in texts]
        speech, encode = per_chunk_us(answers, runs, seconds)
        count = sum(len(a) for a in answers)
        print(f"| {name} | {low}-{high} | {count} | {speech:.2f} | {encode:.2f} | {speech / encode:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per figure; the median is shown")
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one run (per-chunk table)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--sizes-only", action="store_true", help="only the per-KB table")
    only.add_argument("--chunks-only", action="store_true", help="only the per-chunk table")
    args = parser.parse_args()
    print(f"Python {platform.python_version()} on {platform.machine()}, median of {args.runs} runs\n")
    if not args.sizes_only:
        chunk_table(args.runs, args.seconds)
    if not args.chunks_only:
        sized_table(args.runs)


if __name__ == "__main__":
    main()
