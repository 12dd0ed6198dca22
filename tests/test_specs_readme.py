"""Every example in specs/README.md runs: no fenced block there can drift from the code.

Each block says what it is in its info string (```json field, ```json resp, ```sh try, ...), the
convention of every doc (tests/support/docs.py, whose KINDS say which module runs which kind);
this module runs the kinds that are a spec's: a whole spec against a fake provider, a field
compiled inside a spec and rendered, an output read from the payload printed after it (and
compared with the value the text says it reads), the worked example started and called, an error
message reproduced exactly. Its `sh start` block is started by tests/test_docs_examples.py.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError
from bridge.request import ChatRequest
from bridge.upstreams.spec import load_spec
from bridge.upstreams.spec.extract import read_outputs
from bridge.upstreams.spec.outgoing import render_request
from bridge.upstreams.spec.templates import Context
from tests.support import spec_fakes as fakes
from tests.support.app import log_lines, sdk_client
from tests.support.docs import KINDS, Block, blocks
from tests.support.spec_cases import TOOL_HISTORY
from tests.support.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "specs" / "README.md"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]


BLOCKS = blocks(README)


def test_every_block_is_of_a_kind_this_module_runs_or_a_shared_one() -> None:
    assert BLOCKS
    for block in BLOCKS:
        assert KINDS[block.kind][0] in ("test_specs_readme", "test_docs_examples"), (block.line, block.kind)


def of(kind: str) -> list[Block]:
    return [b for b in BLOCKS if b.kind == kind]


# -- a small spec to put fragments in -------------------------------------------------------------

def good(**call: Any) -> dict[str, Any]:
    base = {"path": "/v1/chat", "apitype": "stream", "framing": "sse",
            "data": [{"name": "model", "value": "${model}"}, {"name": "messages", "value": "${messages}"}],
            "resp": [{"name": "content", "value": "choices[0].delta.content"}]}
    return {"name": "good", "base_url": "https://api.example.com", "calls": {"chat": {**base, **call}}}


def load(tmp_path: Path, doc: dict[str, Any], name: str = "good.json") -> Any:
    file = tmp_path / name
    file.write_text(json.dumps(doc))
    return load_spec(file, "UPSTREAM")


def context(**params: Any) -> Context:
    request = ChatRequest(copy.deepcopy(MESSAGES), model="m", route="t", params=params, meta={"instance_id": "i-1"})
    return Context(request, model="m", api_key="k", env={}, extra=("top_k",))


@pytest.mark.parametrize("block", of("json field"), ids=lambda b: f"line{b.line}")
def test_a_field_example_compiles_and_renders(tmp_path: Path, block: Block) -> None:
    field = json.loads(block.text)
    spec = load(tmp_path, good(data=[*good()["calls"]["chat"]["data"], field]))
    http = spec.calls["chat"].request
    for params in ({}, {"max_tokens": 9, "top_k": 3, "user": "u", "tools": [
            {"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}):
        body = json.loads(render_request("good", http, context(**params), "https://x", None, "path").body or b"{}")
        assert set(body) >= {"model", "messages"}


@pytest.mark.parametrize("block", of("json converter"), ids=lambda b: f"line{b.line}")
def test_a_converter_example_maps_a_history(tmp_path: Path, block: Block) -> None:
    field = {"name": "messages", "value": "${messages}", "converter": json.loads(block.text)}
    spec = load(tmp_path, good(data=[field]))
    body = json.loads(render_request("good", spec.calls["chat"].request, context(), "https://x", None, "path").body
                      or b"{}")
    assert body["messages"] and "Be brief." in json.dumps(body["messages"], ensure_ascii=False)  # never dropped


def resp_pairs() -> list[tuple[Block, Block]]:
    pairs = []
    for i, block in enumerate(BLOCKS):
        if block.kind == "json resp":
            assert BLOCKS[i + 1].kind == "json payload", f"line {block.line}: a resp example shows its payload"
            pairs.append((block, BLOCKS[i + 1]))
    assert len(pairs) == len(of("json payload"))
    return pairs


@pytest.mark.parametrize("pair", resp_pairs(), ids=lambda p: f"line{p[0].line}")
def test_a_resp_example_reads_what_the_text_says(tmp_path: Path, pair: tuple[Block, Block]) -> None:
    resp, payload = pair
    item = json.loads(resp.text)
    spec = load(tmp_path, good(resp=[{"name": "content", "value": "x"}, item]))
    said = re.search(r"reads `([^`]*)`", payload.before)
    assert said is not None, f"line {payload.line}: say what it reads"
    values = read_outputs(spec.calls["chat"].resp[1:], json.loads(payload.text), None, context())
    assert values[item["name"]] == json.loads(said.group(1))


@pytest.mark.parametrize("block", of("json condition"), ids=lambda b: f"line{b.line}")
def test_a_condition_example_compiles(tmp_path: Path, block: Block) -> None:
    load(tmp_path, good(resp=[{"name": "content", "value": "x", "when": json.loads(block.text)}]))


@pytest.mark.parametrize("block", of("json filter"), ids=lambda b: f"line{b.line}")
def test_a_filter_example_compiles(tmp_path: Path, block: Block) -> None:
    assert len(load(tmp_path, good(chunk_filter=[json.loads(block.text)])).calls["chat"].chunk_filter) == 1


@pytest.mark.parametrize("block", of("json finish_reasons"), ids=lambda b: f"line{b.line}")
def test_a_finish_reasons_example_compiles(tmp_path: Path, block: Block) -> None:
    table = json.loads(block.text)
    assert load(tmp_path, good(finish_reasons=table)).calls["chat"].finish_reasons.items() >= table.items()


@pytest.mark.parametrize("block", of("json original-filter"), ids=lambda b: f"line{b.line}")
def test_an_original_filter_example_translates(tmp_path: Path, block: Block) -> None:
    doc = json.loads((ROOT / "specs" / "original" / "minimax.json").read_text(encoding="utf-8"))
    doc["name"] = "acme"
    doc["chat"]["chunk_filter"] = json.loads(block.text)
    rules = load(tmp_path, doc, "acme.json").calls["chat"].chunk_filter
    assert [rule.fields for rule in rules] == [frozenset({"content"})]


# -- commands --------------------------------------------------------------------------------------

def environment(line: str, **overrides: str) -> dict[str, str]:
    """The VAR=value words before `.venv/bin/python app.py`, `...` as a placeholder value."""
    words = shlex.split(line)
    assert words[-2:] == [".venv/bin/python", "app.py"], line
    env = dict(word.split("=", 1) for word in words[:-2])
    return {k: ("sk-readme-example-123" if v == "..." else v) for k, v in env.items()} | overrides


def spec_example(tmp_path: Path) -> Path:
    (example,) = of("json spec")
    file = tmp_path / "cohere-lite.json"
    file.write_text(example.text)
    return file


async def test_the_worked_example_runs_as_the_try_it_block_says(bridge, fake_upstream: FakeUpstream,
                                                               tmp_path: Path) -> None:
    (block,) = of("sh try")
    start, curl = block.text.strip().splitlines()
    env = environment(start, UPSTREAM=str(spec_example(tmp_path)), UPSTREAM_BASE_URL=fake_upstream.url)
    fake_upstream.handler = fakes.cohere_stream(["Hi", " there"], 8, 2)
    client = await bridge(env)
    words = shlex.split(curl)
    url = next(w for w in words if w.startswith("localhost:"))
    form = dict(words[i + 1].split("=", 1) for i, w in enumerate(words) if w == "-d")
    resp = await client.post(url.split("8080", 1)[1], data=form)
    assert (resp.status, await resp.json()) == (200, {"Text": "Hi there"})
    request = fake_upstream.last
    assert (request.path, request.headers["Authorization"]) == ("/v2/chat", "Bearer sk-readme-example-123")
    assert request.json() == {"model": "command-r-plus", "messages": [{"role": "user", "content": "Hi"}],
                              "stream": True}
    async with sdk_client(str(client.make_url("/v1")), "unused") as api:
        stream = await api.chat.completions.create(model="m", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                                                   stream_options={"include_usage": True}, max_tokens=50)
        chunks = [chunk async for chunk in stream]
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hi there"
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens) == (8, 2)  # from message-end
    # cut before message-end: a failure, not a short answer; an ERROR finish: a failure too
    fake_upstream.handler = fakes.raw_stream(['event: content-delta\ndata: {"type": "content-delta", "index": 0, '
                                              '"delta": {"message": {"content": {"text": "Half"}}}}\n\n'])
    silent = await bridge({**env, "FALLBACK_TEXT": ""})
    resp = await silent.post("/", data=form)
    assert (resp.status, (await resp.json())["kind"]) == (502, "upstream_protocol")
    fake_upstream.handler = fakes.raw_stream(['event: message-end\ndata: {"type": "message-end", "delta": '
                                              '{"finish_reason": "ERROR", "error": "generation failed"}}\n\n'])
    resp = await silent.post("/", data=form)
    body = await resp.json()
    assert (resp.status, body["kind"]) == (502, "upstream_error") and "generation failed" in body["error"]


async def test_the_log_example_is_the_line_the_bridge_writes(bridge, log_stream, fake_upstream: FakeUpstream) -> None:
    (block,) = of("json log")
    expected = json.loads(block.text)
    fake_upstream.handler = fakes.minimax_stream(["ok"], 5)
    client = await bridge({"UPSTREAM": "minimax", "UPSTREAM_BASE_URL": fake_upstream.url,
                           "UPSTREAM_API_KEY": "sk-readme-example-123", "MINIMAX_GROUP_ID": "g-1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": TOOL_HISTORY})
    assert resp.status == 200
    (line,) = [line for line in log_lines(log_stream) if line.get("event") == expected["event"]]
    assert {k: line[k] for k in expected} == expected


# -- error messages ----------------------------------------------------------------------------------

def original(**chat: Any) -> dict[str, Any]:
    doc = json.loads((ROOT / "specs" / "original" / "minimax.json").read_text(encoding="utf-8"))
    doc["name"] = "acme"
    doc["chat"] = {k: v for k, v in {**doc["chat"], **chat}.items() if v is not None}
    return doc


def worked(tmp_path: Path, change: Any) -> dict[str, Any]:
    doc = json.loads(spec_example(tmp_path).read_text(encoding="utf-8"))
    change(doc["calls"]["chat"])
    return doc


def _rename(call: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    return {new if k == old else k: v for k, v in call.items()}


# the path a README error line names -> the document that makes it
MISTAKES: dict[str, Any] = {
    "chat.apitype": lambda tmp: original(apitype="steam"),
    "chat.chunk_filer": lambda tmp: {**original(), "chat": _rename(original()["chat"], "chunk_filter", "chunk_filer")},
    "chat.chunk_filter.op": lambda tmp: original(chunk_filter={"name": "reply", "op": "=~", "value": "x"}),
    "chat.chunk_match": lambda tmp: original(chunk_match="data: (.*"),
    "chat.resp[1].name": lambda tmp: original(resp=[{"name": "content", "value": "x"},
                                                    {"name": "usgae", "value": "u"}]),
    "chat.path": lambda tmp: original(path=None),
    "calls.chat.data[1].converter.name": lambda tmp: worked(tmp, lambda c: c["data"][1]["converter"].update(
        name="mesages")),
    "calls.chat.finish_reasons.COMPLETE": lambda tmp: worked(tmp, lambda c: c["finish_reasons"].update(
        COMPLETE="done")),
}


def error_lines() -> list[str]:
    return [line for block in of("text errors") for line in block.text.splitlines() if line]


@pytest.mark.parametrize("line", error_lines())
def test_an_error_example_is_the_message_start_up_gives(tmp_path: Path, line: str) -> None:
    match = re.match(r"UPSTREAM: spec file (\S+)( \(original format\))?: (\S+): ", line)
    assert match is not None and match.group(3) in MISTAKES, f"no mistake makes: {line}"
    file = tmp_path / Path(match.group(1)).name
    file.write_text(json.dumps(MISTAKES[match.group(3)](tmp_path)))
    with pytest.raises(ConfigError) as caught:
        load_spec(file, "UPSTREAM")
    message = str(caught.value).replace(str(file), match.group(1))
    if line.endswith("..."):
        assert message.startswith(line[:-3]), message
    else:
        assert message == line
