"""The worked example in specs/README.md is a working spec."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tests.support import spec_fakes as fakes
from tests.support.spec_cases import MESSAGES, ask_form, ask_openai
from tests.support.upstream import FakeUpstream

README = Path(__file__).resolve().parents[1] / "specs" / "README.md"


def worked_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Adding a provider", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, re.S)
    assert match is not None
    return match.group(1)


def cohere_stream(pieces: list[str]) -> fakes.Handler:
    def event(data: dict) -> str:
        return f"event: {data['type']}\ndata: {json.dumps(data)}\n\n"

    frames = [event({"type": "message-start", "id": "m1", "delta": {"message": {"role": "assistant"}}}),
              event({"type": "content-start", "index": 0, "delta": {"message": {"content": {"type": "text",
                                                                                            "text": ""}}}})]
    frames += [event({"type": "content-delta", "index": 0, "delta": {"message": {"content": {"text": p}}}})
               for p in pieces]
    frames += [event({"type": "content-end", "index": 0}),
               event({"type": "message-end", "delta": {"finish_reason": "COMPLETE", "usage": {
                   "billed_units": {"input_tokens": 8, "output_tokens": 2}, "tokens": {"input_tokens": 70}}}})]
    return fakes.raw_stream(frames)


async def test_the_worked_example_runs(bridge, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    spec = tmp_path / "cohere.json"
    spec.write_text(worked_example())
    fake_upstream.handler = cohere_stream(["Hi", " there"])
    client = await bridge({"UPSTREAM": str(spec), "UPSTREAM_BASE_URL": fake_upstream.url,
                           "COHERE_API_KEY": "co-key-123456", "UPSTREAM_MODEL": "command-r"})
    assert await ask_form(client) == (200, {"Text": "Hi there"})
    text, usage = await ask_openai(client)
    assert (text, usage.prompt_tokens, usage.completion_tokens) == ("Hi there", 8, 2)
    request = fake_upstream.last
    assert (request.path, request.headers["Authorization"]) == ("/v2/chat", "Bearer co-key-123456")
    assert request.json() == {"model": "command-r", "messages": MESSAGES, "stream": True, "max_tokens": 50,
                              "temperature": 0.5}
