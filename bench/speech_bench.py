"""Cost of the speech filter per streamed chunk, beside the cost of encoding that chunk.

Standalone: splits plain English, plain Chinese and markdown-heavy answers into chunks the
way an LLM streams them (3-8 characters, and 5-30 for longer tokens), then times, in the
same run, one `SpeechFilter` per answer fed every chunk (and finished), and one
`ChunkEncoder` per answer encoding every chunk as an SSE event (the bridge's existing
per-chunk work). Prints microseconds per chunk, the median of several runs, as a table.

    python bench/speech_bench.py [--runs 7] [--seconds 0.2]
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per figure; the median is shown")
    parser.add_argument("--seconds", type=float, default=0.2, help="length of one run")
    args = parser.parse_args()
    rng = random.Random(7)
    workloads = [
        ("plain English", PLAIN_EN, 3, 8),
        ("plain Chinese", PLAIN_ZH, 3, 8),
        ("markdown-heavy", MARKDOWN, 3, 8),
        ("plain English", PLAIN_EN, 5, 30),
        ("markdown-heavy", MARKDOWN, 5, 30),
    ]
    print(f"Python {platform.python_version()} on {platform.machine()}, median of {args.runs} runs\n")
    print("| text | chars per chunk | chunks | speech filter µs/chunk | SSE encode µs/chunk | filter / encode |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, texts, low, high in workloads:
        answers = [chunked(text, low, high, rng) for text in texts]
        speech, encode = per_chunk_us(answers, args.runs, args.seconds)
        count = sum(len(a) for a in answers)
        print(f"| {name} | {low}-{high} | {count} | {speech:.2f} | {encode:.2f} | {speech / encode:.2f} |")


if __name__ == "__main__":
    main()
