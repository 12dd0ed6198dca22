"""The spec building blocks on their own: stream framing, paths, templates, converters, conditions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.events import Finish, TextDelta, Usage
from bridge.request import ChatRequest
from bridge.upstreams.spec.conditions import Condition
from bridge.upstreams.spec.converters import ConvertError, compile_converter
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.extract import AnswerReader
from bridge.upstreams.spec.framing import Frame, FramingError, make_parser
from bridge.upstreams.spec.model import compile_resp
from bridge.upstreams.spec.paths import compile_path, get_path
from bridge.upstreams.spec.templates import Context, MissingVariable, compile_template


def frames(framing: str, chunks: list[bytes], *, at_close: int = 0) -> list[Frame]:
    """Every frame, checking that all but the last `at_close` came out of the read that completed them."""
    parser = make_parser(framing)
    out = [f for chunk in chunks for f in parser.feed(chunk)]
    rest = parser.close()
    assert len(rest) == at_close, f"held back until the body ended: {rest}"
    return out + rest


def data(framing: str, chunks: list[bytes], *, at_close: int = 0) -> list[tuple[str | None, str]]:
    return [(f.event, f.data) for f in frames(framing, chunks, at_close=at_close)]


# -- SSE, as the HTML standard parses it ------------------------------------------------------

def test_sse_dashscope_frame_no_space_comment_and_event() -> None:
    body = b'id:1\nevent:result\n:HTTP_STATUS/200\ndata:{"a":1}\n\n'
    assert data("sse", [body]) == [("result", '{"a":1}')]


def test_sse_line_endings_and_one_optional_space() -> None:
    body = b"data: one\r\n\r\ndata:two\r\rdata:  three\n\n"
    assert data("sse", [body]) == [("message", "one"), ("message", "two"), ("message", " three")]


def test_sse_multi_line_data_and_bare_field_names() -> None:
    body = b"data: a\ndata\ndata: b\nretry: 10\nid: 7\nunknown: x\n\n"
    assert data("sse", [body]) == [("message", "a\n\nb")]


def test_sse_event_without_data_is_not_dispatched_and_resets_its_name() -> None:
    assert data("sse", [b"event: ping\n\ndata: x\n\n"]) == [("message", "x")]


def test_sse_bom_and_crlf_split_across_reads() -> None:
    chunks = [b"\xef\xbb\xbfdata: a\r", b"\n\r", b"\ndata: \xe4\xbd", b"\xa0\xe5\xa5\xbd\r\n\r\n"]
    assert data("sse", chunks) == [("message", "a"), ("message", "你好")]


def test_sse_bare_cr_lines_are_not_held_back() -> None:
    parser = make_parser("sse")
    assert [f.data for f in parser.feed(b"data: one\r\r")] == ["one"]  # not waiting for a possible LF
    assert [f.data for f in parser.feed(b"\ndata: two\r")] == []  # that LF belonged to the CR: no extra line
    assert [f.data for f in parser.feed(b"\r")] == ["two"]
    assert parser.close() == []


def test_sse_pending_event_at_the_end_is_kept() -> None:
    assert data("sse", [b"data: last\n"], at_close=1) == [("message", "last")]
    assert data("sse", [b"data: cut"], at_close=1) == [("message", "cut")]


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=["Cs"], blacklist_characters="\r\n"),
                        max_size=20), min_size=1, max_size=5), st.integers(1, 7))
def test_sse_any_split_gives_the_same_frames(payloads: list[str], size: int) -> None:
    body = b"".join(b"event: e\r\ndata: " + p.encode() + b"\r\n\r\n" for p in payloads)
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    assert data("sse", chunks) == [("e", p) for p in payloads]


@given(st.lists(st.tuples(st.text(alphabet="ab:", max_size=5), st.sampled_from([b"\r", b"\n", b"\r\n"])),
                min_size=1, max_size=5), st.integers(1, 7))
def test_sse_any_line_ending_and_split_gives_each_event_at_once(items: list[tuple[str, bytes]], size: int) -> None:
    body = b"".join(b"data:" + p.encode() + end + end for p, end in items)
    chunks = [body[i:i + size] for i in range(0, len(body), size)]
    assert data("sse", chunks) == [("message", p) for p, _ in items]


def test_sse_refuses_an_endless_line() -> None:
    parser = make_parser("sse")
    with pytest.raises(FramingError):
        for _ in range(40):
            parser.feed(b"x" * 65536)


# -- NDJSON ---------------------------------------------------------------

def test_ndjson_lines_split_across_reads() -> None:
    assert data("ndjson", [b'{"a":1}\r\n\n{"b"', b':2}\n{"c":3}'], at_close=1) == [(None, '{"a":1}'), (None, '{"b":2}'),
                                                                      (None, '{"c":3}')]


# -- paths and conditions -----------------------------------------------------------------------

def test_paths_never_crash_on_missing_data() -> None:
    payload = {"choices": [{"messages": [{"text": "hi"}]}], "s": "x"}
    assert get_path(payload, compile_path("choices[0].messages[0].text")) == "hi"
    assert get_path(payload, compile_path("choices[-1].messages[0].text")) == "hi"
    for path in ("choices[1].messages", "s.x", "s[0]", "nope.deeper", "choices.x"):
        assert get_path(payload, compile_path(path)) is None
    assert get_path({"a.b": 1}, compile_path('["a.b"]')) == 1


@pytest.mark.parametrize(("raw", "payload", "event", "expected"), [
    ({"path": "code", "op": "ne", "value": 0}, {"code": 3}, None, True),
    ({"path": "code", "op": "ne", "value": 0}, {}, None, False),  # ne needs a value
    ({"path": "code", "op": "ne", "value": 0}, {"code": 0}, None, False),
    ({"path": "reply"}, {"reply": "x"}, None, True),
    ({"path": "reply", "op": "not_exists"}, {"reply": "x"}, None, False),
    ({"path": "t", "op": "in", "value": ["a", "b"]}, {"t": "b"}, None, True),
    ({"path": "t", "op": "regex", "value": "^err"}, {"t": "error"}, None, True),
    ({"event": "ping"}, {}, "ping", True),
    ({"event": ["a", "b"], "op": "not_in"}, {}, "c", True),
    ({"event": ["a", "b"], "op": "not_in"}, {}, "a", False),
])
def test_conditions(raw: dict, payload: dict, event: str | None, expected: bool) -> None:
    assert Condition(raw, []).matches(payload, event) is expected


# -- templates and converters -------------------------------------------------------------------

def ctx(**params: object) -> Context:
    request = ChatRequest([{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}, {"role": "assistant",
                          "content": None, "tool_calls": []}], model="m", route="t", params=dict(params),
                          meta={"instance_id": "i-1"})
    return Context(request, model="m", api_key=None, env={"GROUP": "g"})


def render(value: object, **params: object) -> object:
    return compile_template(value, []).render(ctx(**params))


def test_templates_insert_objects_or_format_text() -> None:
    assert render("${messages}")[0] == {"role": "system", "content": "S"}  # type: ignore[index]
    assert render({"t": "${temperature}", "s": "${system}/${env.GROUP}/${extend.instance_id}"},
                  temperature=0.3) == {"t": 0.3, "s": "S/g/i-1"}
    assert render("${max_tokens:-1024}") == "1024"
    assert render("n=${stop}", stop=["a"]) == 'n=["a"]'
    with pytest.raises(MissingVariable) as caught:
        render("${api_key}")
    assert caught.value.name == "api_key"


def test_unknown_variables_are_refused_at_compile_time() -> None:
    with pytest.raises(SpecError, match=r"unknown variable \$\{promt\}"):
        compile_template({"a": ["${promt}"]}, ["x"])


def test_message_mapper_and_chains() -> None:
    convert = compile_converter([{"name": "messages", "roles": {"user": "USER", "assistant": "BOT"},
                                  "names": {"user": "U"},
                                  "message": {"who": "${role}", "n": "${name}", "t": "${text}", "m": "${model}"}},
                                 "to_json_string"], [])
    assert convert.apply(ctx().request.messages, ctx()) == '[{"who":"USER","n":"U","t":"Q","m":"m"}]'


def test_scalar_converters() -> None:
    c = ctx()
    assert compile_converter("int", []).apply("12", c) == 12
    assert compile_converter({"name": "map", "values": {"null": None}}, []).apply("null", c) is None
    assert compile_converter({"name": "map", "values": {"a": 1}}, []).apply("b", c) == "b"
    assert compile_converter({"name": "join", "key": "body"}, []).apply([{"body": "a"}, {"body": "b"}], c) == "ab"
    with pytest.raises(ConvertError):
        compile_converter("int", []).apply("twelve", c)


# -- reading answers -----------------------------------------------------------------------------

def test_cumulative_text_is_sent_as_increments() -> None:
    resp = compile_resp([{"name": "content", "value": "t"}, {"name": "finish_reason", "value": "f"}], [])
    reader = AnswerReader(resp, ctx(), cumulative=True)
    events = [e for t in ("He", "Hello", "Hello", "Help me", "") for e in reader.feed({"t": t})]
    assert events == [TextDelta("He"), TextDelta("llo"), TextDelta("p me")]
    reader.feed({"f": "stop"})
    assert reader.tail() == [Finish("stop")]


def test_usage_from_a_total_only_is_split_with_an_estimate() -> None:
    reader = AnswerReader(compile_resp([{"name": "usage.total_tokens", "value": "n"}], []), ctx(),
                          prompt_estimate=lambda: 7)
    reader.feed({"n": 10})
    assert reader.tail() == [Usage(7, 3, estimated=True)]
