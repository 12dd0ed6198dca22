"""The spec format's second round, piece by piece and through the bridge.

Iterated elements (`[*]`, `each`), nested defaults, the caller's reasoning and extra parameters
as variables, `merge` fields, the `wrap` converter, finish-reason tables, tool calls keyed by
index, name or as whole calls with their ids synthesized once, `system: prepend`, and the tool
history a provider cannot take logged once per request.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from bridge.errors import UpstreamError
from bridge.events import Finish, Reasoning, TextDelta, ToolCallDelta
from bridge.request import ChatRequest
from bridge.upstreams.spec.converters import compile_converter, prepend_system
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.extract import AnswerReader, read_outputs
from bridge.upstreams.spec.finish import compile_table, openai_reason
from bridge.upstreams.spec.model import compile_resp
from bridge.upstreams.spec.paths import compile_path, get_path
from bridge.upstreams.spec.templates import Context, MissingVariable, compile_template, parse, unparse
from bridge.upstreams.spec.tool_calls import ToolCallReader
from tests.support import spec_fakes as fakes
from tests.support.app import log_lines
from tests.support.spec_cases import TOOL_HISTORY
from tests.support.upstream import FakeUpstream

SPECS = Path(__file__).resolve().parents[1] / "specs"
KEY = "sk-format-test-0123456789"


def ctx(messages: list[dict[str, Any]] | None = None, extra: tuple[str, ...] = (), **params: object) -> Context:
    request = ChatRequest(messages or [{"role": "user", "content": "Q"}], model="m", route="t", params=dict(params),
                          meta={"instance_id": "i-1"})
    return Context(request, model="m", api_key=None, env={}, extra=extra)


def render(value: object, **params: object) -> object:
    return compile_template(value, []).render(ctx(**params))


# -- paths: [*] -------------------------------------------------------------------------------

def test_every_element_of_a_list() -> None:
    payload = {"parts": [{"text": "a"}, {"functionCall": {}}, {"text": "b"}], "rows": [[1, 2], [3]]}
    assert get_path(payload, compile_path("parts[*].text")) == ["a", "b"]
    assert get_path(payload, compile_path("rows[*][*]")) == [1, 2, 3]
    assert get_path(payload, compile_path("parts[*].nope")) is None
    assert get_path({"parts": "x"}, compile_path("parts[*].text")) is None


def test_each_reads_an_output_from_every_element() -> None:
    resp = compile_resp([
        {"name": "content", "each": "c[0].parts", "value": "text", "when": {"path": "thought", "op": "not_exists"}},
        {"name": "reasoning", "each": "c[0].parts", "value": "text", "when": {"path": "thought", "value": True}},
        {"name": "tool_calls", "each": "c[0].parts", "value": "functionCall"},
        {"name": "finish_reason", "each": "c", "value": "why"},
    ], [])
    payload = {"c": [{"parts": [{"text": "hmm", "thought": True}, {"text": "Hi"}, {"functionCall": {"name": "a"}},
                                {"text": "!"}, {"functionCall": {"name": "b"}}]}, {"why": "STOP"}]}
    assert read_outputs(resp, payload, None, ctx()) == {
        "content": ["Hi", "!"], "reasoning": ["hmm"], "tool_calls": [{"name": "a"}, {"name": "b"}],
        "finish_reason": "STOP"}  # other outputs: the first element that has one


# -- templates: nested defaults, variables --------------------------------------------------------

@pytest.mark.parametrize(("value", "params", "expected"), [
    ("${user:-${extend.instance_id:-bridge}}", {}, "i-1"),
    ("${user:-${extend.channel_id:-bridge}}", {}, "bridge"),
    ("${user:-${extend.instance_id:-bridge}}", {"user": "u-9"}, "u-9"),
    ("${max_completion_tokens:-${max_tokens}}", {"max_tokens": 50}, 50),  # a lone placeholder keeps its value
    ("n=${user:-${max_tokens:-7}}!", {}, "n=7!"),
    ("${user:-}", {}, ""),
    ("a}b ${user:-x}}", {}, "a}b x}"),
])
def test_nested_defaults(value: str, params: dict[str, Any], expected: Any) -> None:
    assert render(value, **params) == expected


def test_a_nested_default_without_any_value_names_the_innermost_variable() -> None:
    with pytest.raises(MissingVariable) as caught:
        render("${max_completion_tokens:-${max_tokens}}")
    assert caught.value.name == "max_tokens"


@pytest.mark.parametrize("text", ["${a:-${b}", "${a:-x", "${", "${1a}", "${a:x}"])
def test_broken_placeholders_stop_start_up(text: str) -> None:
    with pytest.raises(SpecError, match="malformed placeholder"):
        compile_template(text, ["x"])


def test_parse_and_unparse_round_trip() -> None:
    text = "k=${groupid:-${region:-g0}} ${prompt}"
    assert unparse(parse(text), lambda name: name.upper()) == "k=${GROUPID:-${REGION:-g0}} ${PROMPT}"


def test_reasoning_params_and_extras_are_variables() -> None:
    assert render("${reasoning_effort}", reasoning_effort="low") == "low"
    assert render({"t": "${thinking}"}, thinking={"type": "enabled"}) == {"t": {"type": "enabled"}}
    assert render("${param.top_k}", top_k=5) == 5
    context = ctx(extra=("top_k", "enable_thinking"), top_k=5, temperature=0.1)
    assert compile_template("${extra_params}", []).render(context) == {"top_k": 5}
    with pytest.raises(MissingVariable):
        compile_template("${extra_params}", []).render(ctx(extra=("top_k",)))


# -- converters --------------------------------------------------------------------------------

def test_wrap_and_the_gemini_tools_shape() -> None:
    tools = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {"type": "object"}}}]
    chain = compile_converter([{"name": "tools", "as": "functions"}, {"name": "wrap", "key": "functionDeclarations"},
                               "wrap"], [])
    expected = [{"functionDeclarations": [{"name": "f", "description": "d", "parameters": {"type": "object"}}]}]
    assert chain.apply(tools, ctx()) == expected
    assert compile_converter({"name": "tools", "as": "gemini"}, []).apply(tools, ctx()) == expected
    assert compile_converter("wrap", []).apply([1], ctx()) == [[1]]  # unlike `list`, even a list


def test_system_prepend() -> None:
    history = [{"role": "system", "content": "Be brief."}, {"role": "assistant", "content": "Hi"},
               {"role": "user", "content": [{"type": "text", "text": "Q"}]}, {"role": "system", "content": "Now."}]
    assert prepend_system(history) == [{"role": "assistant", "content": "Hi"},
                                       {"role": "user", "content": "Be brief.\nNow.\n\nQ"}]
    assert prepend_system([{"role": "system", "content": "S"}]) == [{"role": "user", "content": "S"}]
    assert history[0]["content"] == "Be brief."  # the caller's history is left as it was


def test_gemini_tool_turns() -> None:
    convert = compile_converter({"name": "messages", "roles": {"user": "user", "assistant": "model"},
                                 "message": {"role": "${role}", "parts": [{"text": "${text}"}]},
                                 "tools_as": "gemini"}, [])
    assert convert.apply(TOOL_HISTORY, ctx()) == [
        {"role": "user", "parts": [{"text": "Weather?"}]},
        {"role": "model", "parts": [{"text": "Looking."},
                                    {"functionCall": {"name": "weather", "args": {"city": "Oslo"}}},
                                    {"functionCall": {"name": "time", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "weather", "response": {"temp": 3}}},
                                   {"functionResponse": {"name": "time", "response": {"result": "noon"}}}]}]


def test_tool_turns_without_a_shape_are_counted_not_sent() -> None:
    context = ctx()
    convert = compile_converter({"name": "messages"}, [])
    assert convert.apply(TOOL_HISTORY, context) == [{"role": "user", "content": "Weather?"},
                                                    {"role": "assistant", "content": "Looking."}]
    assert context.notes == {"tool turns": 3}


# -- finish reasons and tool calls -------------------------------------------------------------

def test_finish_reasons_in_openai_words() -> None:
    table = compile_table({"COMPLETE": "stop", "MAX_TOKENS": "length", "ERROR": "error"})
    assert [openai_reason(w, table) for w in ("COMPLETE", "MAX_TOKENS", "ERROR", "length", "function_call",
                                              "SOMETHING", 3)] == ["stop", "length", "error", "length",
                                                                   "tool_calls", "stop", "stop"]


def test_an_error_finish_reason_fails_the_answer_mid_stream() -> None:
    resp = compile_resp([{"name": "content", "value": "t"}, {"name": "finish_reason", "value": "f"}], [])
    reader = AnswerReader(resp, ctx(), finish_reasons=compile_table({"ERROR": "error"}))
    assert reader.feed({"t": "Half an ans"}) == [TextDelta("Half an ans")]
    with pytest.raises(UpstreamError) as caught:
        reader.feed({"f": "ERROR"})
    assert (caught.value.kind.value, caught.value.message) == (
        "upstream_error", "upstream ended the answer with finish reason 'ERROR'")


@pytest.mark.parametrize(("key", "payloads", "expected"), [
    # whole calls (Gemini, Ollama): two calls to one function, in two payloads, stay two
    ("whole", [[{"name": "f", "args": {"a": 1}}], [{"name": "f", "args": {"a": 2}}]],
     [(0, "f", '{"a":1}'), (1, "f", '{"a":2}')]),
    # by index, without one by position: the same position in the next payload continues the call
    ("index", [[{"function": {"name": "f", "arguments": '{"a"'}}], [{"function": {"arguments": ":1}"}}]],
     [(0, "f", '{"a"'), (0, None, ":1}")]),
    # by name: a fragment without a name continues the call before it
    ("name", [[{"name": "f", "arguments": "{"}], [{"arguments": "}"}], [{"name": "g", "arguments": "{}"}]],
     [(0, "f", "{"), (0, None, "}"), (1, "g", "{}")]),
])
def test_tool_call_keys(key: str, payloads: list[list[dict[str, Any]]], expected: list[tuple[Any, ...]]) -> None:
    reader = ToolCallReader(key, "req1_")
    deltas = [d for calls in payloads for d in reader.calls(calls)]
    assert [(d.index, d.name, d.arguments) for d in deltas] == expected
    ids = [d.id for d in deltas]
    assert [i for i in ids if i] == [f"call_req1_{n}" for n in sorted({d.index for d in deltas})]  # once per call


def test_a_synthesized_id_comes_once_and_a_provider_id_is_kept() -> None:
    reader = ToolCallReader("index", "r_")
    assert reader.calls([{"index": 0, "id": "own", "function": {"name": "f"}}])[0].id == "own"
    assert reader.calls([{"index": 1, "function": {"name": "g"}}])[0].id == "call_r_1"
    assert reader.calls([{"index": 1, "function": {"arguments": "{}"}}])[0].id is None


# -- through the bridge --------------------------------------------------------------------------

def write(tmp_path: Path, doc: dict[str, Any], name: str = "acme.json") -> str:
    file = tmp_path / name
    file.write_text(json.dumps(doc))
    return str(file)


async def test_extra_params_and_reasoning_effort_reach_a_spec_upstream(bridge, fake_upstream: FakeUpstream) -> None:
    chunk = {"choices": [{"delta": {"content": "ok"}, "finish_reason": "stop"}]}
    fake_upstream.handler = fakes.raw_stream([f"data: {json.dumps(chunk)}\n\n", "data: [DONE]\n\n"])
    client = await bridge({"UPSTREAM": str(SPECS / "openai.json"), "UPSTREAM_BASE_URL": fake_upstream.url,
                           "UPSTREAM_API_KEY": KEY, "UPSTREAM_EXTRA_PARAMS": "top_k,enable_thinking,model"})
    resp = await client.post("/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "reasoning_effort": "low", "top_k": 5,
        "enable_thinking": True, "stream": False})
    assert (await resp.json())["choices"][0]["message"]["content"] == "ok"
    body = fake_upstream.last.json()
    assert (body["reasoning_effort"], body["top_k"], body["enable_thinking"], body["model"]) == ("low", 5, True, "m")


async def test_extras_merge_under_a_name_and_the_spec_wins(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.dashscope_stream(["ok"])
    client = await bridge({"UPSTREAM": "dashscope", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
                           "UPSTREAM_EXTRA_PARAMS": "enable_thinking,top_k,result_format"})
    resp = await client.post("/v1/chat/completions", json={
        "model": "m", "messages": [{"role": "user", "content": "hi"}], "enable_thinking": False, "top_k": 3,
        "result_format": "text"})
    assert resp.status == 200
    parameters = fake_upstream.last.json()["parameters"]
    assert (parameters["enable_thinking"], parameters["top_k"], parameters["result_format"]) == (False, 3, "message")


async def test_a_stream_without_its_end_is_cut_even_without_a_declared_marker(bridge, fake_upstream: FakeUpstream,
                                                                               tmp_path: Path) -> None:
    doc = {"name": "acme", "base_url": "http://x", "calls": {"chat": {
        "path": "/c", "apitype": "stream", "framing": "ndjson",
        "data": [{"name": "messages", "value": "${messages}"}],
        "resp": [{"name": "content", "value": "t"}, {"name": "finish_reason", "value": "f"}]}}}
    fake_upstream.handler = fakes.raw_stream(['{"t": "Half an ans"}\n'], content_type="application/x-ndjson")
    client = await bridge({"UPSTREAM": write(tmp_path, doc), "UPSTREAM_BASE_URL": fake_upstream.url,
                           "FALLBACK_TEXT": ""})
    resp = await client.post("/", data={"Message": json.dumps([{"role": "user", "content": "hi"}])})
    assert (resp.status, (await resp.json())["kind"]) == (502, "upstream_protocol")
    doc["calls"]["chat"]["end"] = "eof"  # a provider with no end marker at all says so
    client = await bridge({"UPSTREAM": write(tmp_path, doc, "acme2.json"), "UPSTREAM_BASE_URL": fake_upstream.url})
    resp = await client.post("/", data={"Message": json.dumps([{"role": "user", "content": "hi"}])})
    assert await resp.json() == {"Text": "Half an ans"}


async def test_a_tool_history_the_provider_cannot_take_is_logged_once_per_request(bridge, log_stream,
                                                                               fake_upstream: FakeUpstream) -> None:
    answers = iter([web.Response(status=503, text="busy"), None])  # a retry renders the request twice

    async def handler(request: web.Request) -> web.StreamResponse:
        response = next(answers)
        return response if response is not None else await fakes.minimax_stream(["ok"], 5)(request)

    fake_upstream.handler = handler
    client = await bridge({"UPSTREAM": "minimax", "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
                           "MINIMAX_GROUP_ID": "g-1"})
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": TOOL_HISTORY})
    assert (await resp.json())["choices"][0]["message"]["content"] == "ok"
    assert len(fake_upstream.requests) == 2
    dropped = [line for line in log_lines(log_stream) if line.get("event") == "spec_history_dropped"]
    assert [(line["upstream"], line["tool_turns"]) for line in dropped] == [("minimax", 3)]
    texts = [m["text"] for m in fake_upstream.last.json()["messages"]]
    assert texts == ["Weather?", "Looking."]


async def test_synthesized_tool_call_ids_look_the_same_streamed_or_not(bridge, fake_upstream: FakeUpstream) -> None:
    line = {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [
        {"function": {"name": "f", "arguments": {"a": 1}}}, {"function": {"name": "f", "arguments": {"a": 2}}}]},
        "done": True, "done_reason": "stop"}
    fake_upstream.handler = fakes.raw_stream([json.dumps(line) + "\n"], content_type="application/x-ndjson")
    client = await bridge({"UPSTREAM": "ollama", "UPSTREAM_BASE_URL": fake_upstream.url})
    ask = {"model": "m", "messages": [{"role": "user", "content": "hi"}],
           "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    whole = await (await client.post("/v1/chat/completions", json=ask)).json()
    ids = [c["id"] for c in whole["choices"][0]["message"]["tool_calls"]]
    streamed = (await (await client.post("/v1/chat/completions", json={**ask, "stream": True})).text()).split("\n\n")
    chunks = [json.loads(e[6:]) for e in streamed if e.startswith("data: {")]
    stream_ids = [c["id"] for chunk in chunks for choice in chunk["choices"]
                  for c in choice["delta"].get("tool_calls") or [] if c.get("id")]
    pattern = re.compile(r"call_[0-9a-f]{12}_[01]")
    assert len(ids) == len(stream_ids) == 2 and all(pattern.fullmatch(i) for i in ids + stream_ids)
    assert ids[0][:-1] == ids[1][:-1] and ids[0] != ids[1]  # one request's calls, told apart


def test_reader_events_never_speak_reasoning() -> None:
    resp = compile_resp([{"name": "content", "value": "t"}, {"name": "reasoning", "value": "r"},
                         {"name": "finish_reason", "value": "f"}], [])
    reader = AnswerReader(resp, ctx())
    events = [*reader.feed({"r": ["think", "ing"]}), *reader.feed({"t": "Hi", "f": "stop"}), *reader.tail()]
    assert events == [Reasoning("thinking"), TextDelta("Hi"), Finish("stop")]
    assert not any(type(e) is ToolCallDelta for e in events)
