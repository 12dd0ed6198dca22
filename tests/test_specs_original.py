"""Files in the original "LLM JSON file" format load unchanged and run (bridge/upstreams/spec/original/__init__.py).

The MiniMax fake answers from MiniMax's documented samples (tests/fixtures/providers/minimax.json)
and is strict where MiniMax is: no `Authorization: Bearer <key>` is 1004 login fail, messages
without sender_type/sender_name are 2013 invalid params, both as HTTP 200 with base_resp.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import ClientSession, web

from bridge.config import DEFAULT_FAILURE_TEXT, ConfigError, read_settings
from bridge.process.app import create_app
from bridge.upstreams.spec import available_specs, load_spec
from bridge.upstreams.spec.conditions import Condition
from bridge.upstreams.spec.errors import SpecError
from bridge.upstreams.spec.framing import MAX_FRAME_BYTES, FramingError, make_parser
from bridge.upstreams.spec.loader import resolve
from bridge.upstreams.spec.original import is_original, translate
from tests.support import spec_fakes as fakes
from tests.support.app import sdk_client
from tests.support.upstream import FakeUpstream

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "specs" / "original" / "minimax.json"
SHARED = Path("/work/shared/llm-json-format.md")
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "providers" / "minimax.json").read_text(encoding="utf-8"))
SAMPLES = FIXTURE["samples"]
KEY, GROUP, MODEL = "mm-key-0123456789", "grp-1", "abab6.5s-chat"
QUESTION = "Where are you from?"
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}]
PIECES = ["I ", "am ", "from China."]
TEXT = "".join(PIECES)
ENV = {"UPSTREAM": str(EXAMPLE), "UPSTREAM_API_KEY": KEY, "GROUPID": GROUP, "UPSTREAM_MODEL": MODEL}


# -- the MiniMax fake, from the documented samples ---------------------------------------------------

def _documented_chunks() -> tuple[dict[str, Any], dict[str, Any]]:
    """The documented intermediate and final stream chunks, verbatim."""
    chunks = [json.loads(line[len("data: "):]) for line in SAMPLES["stream"]["raw"].split("\n\n") if line]
    assert chunks[0]["reply"] == "" and chunks[1]["reply"] == "I am from China."
    return chunks[0], chunks[1]


def _minimax_chunks(pieces: list[str], total_tokens: int) -> list[str]:
    """The documented chunks with our text: `"reply": ""` while streaming, the whole reply at the end."""
    middle, final = _documented_chunks()
    frames = []
    for piece in pieces:
        chunk = copy.deepcopy(middle)
        chunk["choices"][0]["messages"][0]["text"] = piece
        frames.append(chunk)
    end = copy.deepcopy(final)
    end["reply"] = end["choices"][0]["messages"][0]["text"] = "".join(pieces)
    end["usage"] = {"total_tokens": total_tokens}
    return ["data: " + json.dumps(c, ensure_ascii=False) + "\n\n" for c in [*frames, end]]


def minimax(pieces: list[str] = PIECES, *, total_tokens: int = 40) -> fakes.Handler:
    """chatcompletion_pro, strict: key, GroupId and the message shape are checked as MiniMax does."""

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return await fakes.raw_stream([SAMPLES["error_login_fail"]["raw"]],
                                          content_type="application/json")(request)
        if request.query.get("GroupId") != GROUP:  # not documented: answered like the other bad-parameter errors
            return await fakes.json_body({"created": 0, "model": "", "reply": "", "choices": None, "base_resp": {
                "status_code": 2013, "status_msg": "invalid params, GroupId"}})(request)
        messages = (await request.json()).get("messages")
        if not messages or any(not m.get("sender_type") or not m.get("sender_name") for m in messages):
            return await fakes.raw_stream([SAMPLES["error_invalid_params"]["raw"]],
                                          content_type="application/json")(request)
        return await fakes.raw_stream(_minimax_chunks(pieces, total_tokens))(request)

    return handler


async def test_the_fake_is_as_strict_as_minimax(fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = minimax()
    url = fake_upstream.url + "/v1/text/chatcompletion_pro"
    good = {"sender_type": "USER", "sender_name": "User", "text": QUESTION}
    cases = [({"GroupId": GROUP}, {"Authorization": f"Bearer {KEY}"}, [{"role": "user", "content": "x"}], 2013),
             ({"GroupId": GROUP}, {}, [good], 1004), ({}, {"Authorization": f"Bearer {KEY}"}, [good], 2013),
             ({"GroupId": GROUP}, {"Authorization": f"Bearer {KEY}"}, [good], None)]
    async with ClientSession() as http:
        for params, headers, messages, code in cases:
            async with http.post(url, params=params, headers=headers, json={"messages": messages}) as resp:
                body = await resp.text()
            assert resp.status == 200
            if code is None:
                assert body.startswith("data: ")
            else:
                assert json.loads(body)["base_resp"]["status_code"] == code


# -- asking the bridge -------------------------------------------------------------------------------

async def ask_form(client: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/", data={"Message": json.dumps(MESSAGES), "ExtendData": "{}"})
    return resp.status, await resp.json()


async def ask_openai(client: Any) -> tuple[str, Any]:
    async with sdk_client(str(client.make_url("/v1")), "unused") as api:
        stream = await api.chat.completions.create(model="m", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
                                                   stream_options={"include_usage": True})
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            usage = chunk.usage or usage
    return text, usage


def check_minimax_request(fake: FakeUpstream) -> None:
    req = fake.last
    assert (req.method, req.path, req.query) == ("POST", "/v1/text/chatcompletion_pro", {"GroupId": GROUP})
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    body = req.json()
    messages = body.pop("messages")
    assert body == {"model": MODEL, "stream": True, "bot_setting": [{"bot_name": "MM助手", "content": "MM助手"}],
                    "reply_constraints": {"sender_type": "BOT", "sender_name": "MM助手"}}
    # the example sends no ${system}: the borrowed converter puts the system prompt before the question
    assert [(m["sender_type"], m["text"]) for m in messages] == [("USER", f"Be brief.\n\n{QUESTION}")]
    assert all(m["sender_name"] for m in messages)


# -- the shared example ------------------------------------------------------------------------------

def test_the_shipped_example_is_the_published_one_byte_for_byte() -> None:
    published = re.search(r"```json\n(.*?)```", SHARED.read_text(encoding="utf-8"), re.S)
    assert published is not None
    assert EXAMPLE.read_bytes() == published.group(1).encode("utf-8")


def test_the_example_translates_into_the_project_format() -> None:
    spec = load_spec(EXAMPLE, "UPSTREAM")
    chat = spec.calls["chat"]
    assert (spec.name, spec.base_url, spec.api_key_env, spec.signer) == (
        "minimax", "https://api.minimax.chat", "MINIMAX_API_KEY", None)  # its own Authorization header: no signer
    assert (chat.framing, chat.chunk_match.pattern if chat.chunk_match else None) == ("lines", "data: (.*)")
    assert [r.name for r in chat.resp] == ["content", "usage.prompt_tokens", "usage.completion_tokens",
                                           "usage.total_tokens", "tool_calls", "finish_reason", "error_code",
                                           "error", "error_status"]
    assert (chat.end, chat.finish_reasons["max_output"]) == ("marker", "length")  # borrowed: a cut stream fails
    assert [rule.fields for rule in chat.chunk_filter] == [frozenset({"content"})]
    assert [(f.name, f.converter is not None) for f in chat.request.data][:2] == [("model", False), ("messages", True)]
    assert [f.name for f in chat.request.headers] == ["Content-Type", "Authorization"]
    # messages name the ORIGINAL document's fields, and what was borrowed
    assert [r.where for r in chat.resp[:4]] == ["chat.resp[0]", "chat.resp[1]", "chat.resp[1]", "chat.resp[1]"]
    assert all(re.fullmatch(r"calls\.chat\.resp\[\d+\] \(borrowed from specs/minimax\.json\)", r.where)
               for r in chat.resp[4:])
    assert chat.request.params[0].where == "chat.params[0]"


def test_the_example_does_not_confuse_spec_names() -> None:
    assert "original" not in available_specs()
    assert load_spec(ROOT / "specs" / "minimax.json", "UPSTREAM", expect_name="minimax").calls["chat"].framing == "sse"


async def test_the_example_streams_its_text_once_on_the_form_route(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = minimax()
    client = await bridge({**ENV, "UPSTREAM_BASE_URL": fake_upstream.url})
    assert await ask_form(client) == (200, {"Text": TEXT})
    check_minimax_request(fake_upstream)


async def test_a_tool_call_only_answer_is_a_call_not_an_empty_text(bridge, fake_upstream: FakeUpstream) -> None:
    """MiniMax's documented function-call answer (text "", the call in function_call) through the published
    example, which reads no tool calls itself: the call is borrowed, so the form route never says {"Text": ""}."""
    recorded = json.loads((ROOT / "tests" / "fixtures" / "providers" / "minimax.json").read_text(encoding="utf-8"))
    fake_upstream.handler = fakes.json_body(json.loads(recorded["samples"]["function_call"]["raw"]))
    client = await bridge({**ENV, "UPSTREAM_BASE_URL": fake_upstream.url})
    assert await ask_form(client) == (200, {"Text": DEFAULT_FAILURE_TEXT})  # a call the form cannot carry
    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES})
    message = (await resp.json())["choices"][0]["message"]
    assert [(c["function"]["name"], json.loads(c["function"]["arguments"])) for c in message["tool_calls"]] == [
        ("mention_something", {"meeting_id": "12345", "participants": "A同学"})]


async def test_a_finish_that_says_tool_calls_without_one_read_is_a_failure(bridge, fake_upstream: FakeUpstream,
                                                                         tmp_path: Path) -> None:
    doc = {"name": "acme", "chat": {"path": "/x", "apitype": "sync", "data": [{"name": "m", "value": "${messages}"}],
                                    "resp": [{"name": "content", "value": "text"},
                                             {"name": "finish_reason", "value": "why"}]}}
    fake_upstream.handler = fakes.json_body({"text": "", "why": "tool_calls"})
    client = await bridge({"UPSTREAM": str(write(tmp_path, doc)), "UPSTREAM_BASE_URL": fake_upstream.url,
                           "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_protocol") and "read no tool call" in body["error"]


async def test_the_example_streams_its_text_once_on_the_openai_route(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = minimax(total_tokens=40)
    client = await bridge({**ENV, "UPSTREAM_BASE_URL": fake_upstream.url})
    text, usage = await ask_openai(client)
    assert (text, usage.total_tokens) == (TEXT, 40)
    check_minimax_request(fake_upstream)

    resp = await client.post("/v1/chat/completions", json={"model": "m", "messages": MESSAGES, "stream": False})
    assert resp.status == 200
    body = await resp.json()
    assert (body["choices"][0]["message"]["content"], body["usage"]["total_tokens"]) == (TEXT, 40)


async def test_the_documented_stream_sample_verbatim(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = fakes.raw_stream([SAMPLES["stream"]["raw"]])
    client = await bridge({**ENV, "UPSTREAM_BASE_URL": fake_upstream.url})
    assert await ask_form(client) == (200, {"Text": SAMPLES["stream"]["expected"]["text"]})


async def test_the_example_runs_by_its_documented_relative_path(bridge, fake_upstream: FakeUpstream,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    fake_upstream.handler = minimax()
    client = await bridge({**ENV, "UPSTREAM": "specs/original/minimax.json", "UPSTREAM_BASE_URL": fake_upstream.url})
    assert await ask_form(client) == (200, {"Text": TEXT})


@pytest.mark.parametrize(("sample", "kind", "status"), [("error_login_fail", "upstream_auth", 502),
                                                       ("error_invalid_params", "upstream_bad_request", 400),
                                                       ("error_insufficient_balance", "upstream_http", 502)])
async def test_an_error_in_http_200_is_reported_with_its_kind(sample: str, kind: str, status: int, bridge,
                                                              fake_upstream: FakeUpstream) -> None:
    """MiniMax's base_resp codes, borrowed from specs/minimax.json, classify the error (1004: our key)."""
    fake_upstream.handler = fakes.raw_stream([SAMPLES[sample]["raw"]], content_type="application/json")
    expected = SAMPLES[sample]["expected"]
    client = await bridge({**ENV, "UPSTREAM_BASE_URL": fake_upstream.url, "FALLBACK_TEXT": ""})
    form_status, body = await ask_form(client)
    assert (form_status, body["kind"]) == (502, kind)
    assert f"{expected['error_code']}: {expected['error']}" in body["error"]
    with pytest.raises(openai.APIStatusError) as caught:
        await ask_openai(client)
    assert caught.value.status_code == status
    assert isinstance(caught.value.body, dict) and caught.value.body["code"] == kind
    assert expected["error"] in caught.value.body["message"]


async def test_a_wrong_key_reaches_minimax_and_its_login_fail_is_reported(bridge, fake_upstream: FakeUpstream) -> None:
    fake_upstream.handler = minimax()
    client = await bridge({**ENV, "UPSTREAM_API_KEY": "mm-wrong-key-42", "UPSTREAM_BASE_URL": fake_upstream.url,
                           "FALLBACK_TEXT": ""})
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_auth")
    assert "1004: login fail" in body["error"]


def start(**env: str) -> str:
    with pytest.raises(ConfigError) as caught:
        create_app(read_settings(env))
    return str(caught.value)


def test_groupid_without_the_environment_variable_stops_start_up() -> None:
    env = {k: v for k, v in ENV.items() if k != "GROUPID"}
    assert start(**env) == ("UPSTREAM: spec minimax: chat.params[0] needs ${env.GROUPID}: "
                            "set the environment variable GROUPID")


def test_the_key_is_required_and_the_borrowed_key_variable_is_named() -> None:
    env = {k: v for k, v in ENV.items() if k != "UPSTREAM_API_KEY"}
    assert start(**env).endswith("needs ${api_key}: set UPSTREAM_API_KEY or MINIMAX_API_KEY")


# -- borrowing from a same-name shipped spec ---------------------------------------------------------

def original(name: str = "acme", **call: Any) -> dict[str, Any]:
    """A small original-format document: one stream call reading JSON lines."""
    chat = {"path": "/v1/chat", "method": "POST", "apitype": "stream", "chunk_match": r"^(\{.*\})$",
            "data": [{"name": "model", "value": "${model}"}, {"name": "messages", "value": "${messages}"}],
            "resp": [{"name": "content", "value": "t"}]}
    chat.update(call)
    return {"name": name, "chat": {k: v for k, v in chat.items() if v is not None}}


def write(tmp_path: Path, doc: Any, name: str = "acme.json") -> Path:
    file = tmp_path / name
    file.write_text(doc if isinstance(doc, str) else json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return file


def test_without_a_same_name_spec_nothing_is_borrowed(tmp_path: Path) -> None:
    file = write(tmp_path, original(headers=[{"name": "Authorization", "value": "Bearer ${apikey}"}]))
    spec = load_spec(file, "UPSTREAM")
    assert (spec.base_url, spec.api_key_env, spec.signer) == (None, None, None)
    assert spec.calls["chat"].request.data[1].converter is None
    assert [r.name for r in spec.calls["chat"].resp] == ["content"]
    assert start(UPSTREAM=str(file), UPSTREAM_API_KEY=KEY) == (
        "UPSTREAM: spec acme has no base_url; set UPSTREAM_BASE_URL to the provider's URL")


async def test_the_signer_is_borrowed_when_the_file_sends_no_key(bridge, fake_upstream: FakeUpstream,
                                                                  tmp_path: Path) -> None:
    doc = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    doc["chat"]["headers"] = [h for h in doc["chat"]["headers"] if h["name"] != "Authorization"]
    assert load_spec(write(tmp_path, doc), "UPSTREAM").signer is not None
    fake_upstream.handler = minimax()
    client = await bridge({**ENV, "UPSTREAM": str(tmp_path / "acme.json"), "UPSTREAM_BASE_URL": fake_upstream.url})
    assert await ask_form(client) == (200, {"Text": TEXT})
    assert fake_upstream.last.headers["Authorization"] == f"Bearer {KEY}"


def test_an_original_file_in_specs_is_found_by_name(tmp_path: Path) -> None:
    write(tmp_path, original("Acme Corp"), "acme-corp.json")
    file, _ = resolve("acme-corp", "UPSTREAM", tmp_path)
    assert load_spec(file, "UPSTREAM", expect_name="acme-corp").name == "acme-corp"


# -- mistakes a new user makes -------------------------------------------------------------------------

def mistake(tmp_path: Path, doc: Any) -> str:
    file = write(tmp_path, doc)
    with pytest.raises(ConfigError) as caught:
        load_spec(file, "UPSTREAM")
    message = str(caught.value)
    assert message.startswith(f"UPSTREAM: spec file {file} (original format): "), message
    return message[len(f"UPSTREAM: spec file {file} (original format): "):]


def example(**changes: Any) -> dict[str, Any]:
    """The published example with call fields replaced (None deletes one)."""
    doc = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    for key, value in changes.items():
        if value is None:
            del doc["chat"][key]
        else:
            doc["chat"][key] = value
    return doc


def renamed(old: str, new: str) -> dict[str, Any]:
    doc = example()
    doc["chat"] = {new if k == old else k: v for k, v in doc["chat"].items()}
    return doc


RESP = [{"name": "content", "value": "choices[0].messages[0].text"}, {"name": "usage", "value": "usage"}]


@pytest.mark.parametrize(("doc", "expected"), [
    (example(apitype="steam"), "chat.apitype: unknown apitype 'steam' (did you mean 'stream'?); use stream, sync or "
                               "async"),
    (renamed("chunk_filter", "chunk_filer"), "chat.chunk_filer: unknown field (did you mean 'chunk_filter'?); a call "
                                             "has: path, method, apitype, headers, header, params, data, input_items"),
    (example(chunk_filter={"name": "reply", "op": "=!", "value": "", "field": "content"}),
     "chat.chunk_filter.op: unknown op '=!'; known: ==, !=, >, <, >=, <=, in, not in, not_in, exists, not_exists"),
    (example(chunk_filter=[{"name": "reply", "op": "not_exist"}]),
     "chat.chunk_filter[0].op: unknown op 'not_exist' (did you mean 'not_exists'?); known: ==, !="),
    (example(chunk_filter=[{"name": "reply", "op": "in", "value": "", "field": "content"}]),
     "chat.chunk_filter[0].value: op 'in' needs a list value"),
    (example(chunk_filter={"name": "reply", "op": "!=", "value": "", "field": "contents"}),
     "chat.chunk_filter.field: unknown output 'contents' (did you mean 'content'?); known: content,"),
    (example(chunk_filter={"name": "reply", "op": "!=", "field": "content"}),
     "chat.chunk_filter.value: missing: op '!=' compares with a value"),
    (example(chunk_match="data: (.*"),
     "chat.chunk_match: bad regular expression 'data: (.*': missing ), unterminated subpattern at position 6"),
    (example(chunk_match="(data): (.*)"),
     "chat.chunk_match: '(data): (.*)' has 2 capturing groups: keep one, around the JSON, and write the others as "
     "(?:...)"),
    (example(resp=[RESP[0], {"name": "usgae", "value": "usage"}]),
     "chat.resp[1].name: unknown output 'usgae' (did you mean 'usage'?); known: content,"),
    (example(resp=[{"name": "content", "value": "choices[0.text"}]),
     "chat.resp[0].value: bad path 'choices[0.text' at character 8: expected [index], [*] or [\"key\"]"),
    (example(resp=[*RESP, {"name": "usage", "value": "usage", "converter": "int"}]),
     "chat.resp[2].converter: usage reads the provider's whole usage object, so it takes no converter"),
    (example(path=None), "chat.path: missing: the request path, e.g. /v1/text/chatcompletion_pro"),
    (example(path="https://api.minimax.chat/v1/text/chatcompletion_pro"),
     "chat.path: the path only, without scheme or host: put those in base_url (or set UPSTREAM_BASE_URL)"),
    (example(method="FETCH"), "chat.method: unsupported method 'FETCH'; use GET, POST, PUT"),
    (example(resp=None), "chat.resp: missing: the list of response items {name, value} to read from the answer"),
    (example(data=[{"name": "model", "value": "${model}", "converter": "to_jsn"}]),
     "chat.data[0].converter: unknown converter 'to_jsn' (did you mean 'to_json_string'?); known: "),
    (example(data=[{"name": "model", "value": "${model}", "converter": {"name": "int"}}]),
     "chat.data[0].converter: a converter is a name (a string), one of: "),
    (example(data=[{"name": "model", "vaule": "${model}"}]),
     "chat.data[0].vaule: unknown field (did you mean 'value'?); a parameter description has: name, value, converter"),
    (example(data=[{"name": "model"}]), "chat.data[0].value: missing: a parameter needs a value"),
    (example(params=[{"name": "GroupId", "value": "${group.id}"}]),
     "chat.params[0].value: ${group.id} is not a variable: the original format has ${apikey}, ${model}, "
     "${messages}, ${prompt}, and any other ${name} reads the environment variable NAME"),
    (example(params=[{"name": "GroupId", "value": "${groupid"}]),
     "chat.params[0].value: malformed placeholder in '${groupid': write ${name}"),
    (example(header=[{"name": "X-A", "value": "1"}]), "chat.header: give headers or header, not both"),
    (example(query_path="/q/${task_id}"), "chat.query_path: only for apitype 'async' (this call is 'stream')"),
    # found after translation, by the schema or the compiler: still the ORIGINAL paths
    (example(data=[{"name": "model", "value": "${model}"}, {"name": "model", "value": "x"}]),
     "chat.data[1].name: field 'model' is given twice"),
    (example(headers=[{"name": "Bad Header", "value": "x"}]), "chat.headers[0].name: not a valid HTTP header name"),
    (example(resp=[*RESP, {"name": "finish_reason", "value": "x", "converter": "map"}]),
     "chat.resp[2].converter: converter 'map': 'values' is a required property"),
    ({**example(resp=[{"name": "finish_reason", "value": "x"}]), "name": "acme"},  # nothing to borrow from
     "chat.resp: a stream call needs a 'content' output"),
    (example(method="get"), "chat.data: a GET request has no body; use params"),
])
def test_a_mistake_names_the_file_the_original_path_and_the_problem(tmp_path: Path, doc: Any, expected: str) -> None:
    assert mistake(tmp_path, doc).startswith(expected)


def test_a_mistake_at_the_top_level(tmp_path: Path) -> None:
    doc = {"nmae": "minimax", "chat": example()["chat"]}
    assert mistake(tmp_path, doc) == 'name: missing: the interface\'s name (usually the company), e.g. "minimax"'
    doc = {"name": "minimax", "chat": example()["chat"], "chta": {"path": "/x"}}
    assert mistake(tmp_path, doc) == "chta.apitype: missing: a call needs an apitype: stream, sync or async"
    doc = {"name": "minimax", "chat": example()["chat"], "descripton": "x"}
    assert mistake(tmp_path, doc).startswith("descripton: not a call (did you mean 'description'?): every top-level")


def test_a_file_without_any_apitype_gets_a_hint(tmp_path: Path) -> None:
    file = write(tmp_path, {"name": "acme", "chat": {"path": "/x", "resp": []}})
    with pytest.raises(ConfigError) as caught:
        load_spec(file, "UPSTREAM")
    assert str(caught.value).endswith("""'calls' is a required property (a file in the original LLM JSON format """
                                      """needs "apitype" in each call)""")


# -- the translation itself ---------------------------------------------------------------------------

NAMES = ["content", "tool_calls", "finish_reason", "usage.prompt_tokens", "usage.completion_tokens",
         "usage.total_tokens", "error", "error_code", "task_id", "status"]


def test_recognising_the_format() -> None:
    assert is_original(json.loads(EXAMPLE.read_text(encoding="utf-8")))
    assert not is_original(json.loads((ROOT / "specs" / "minimax.json").read_text(encoding="utf-8")))
    assert not is_original({"name": "x", "calls": {"chat": {"apitype": "stream"}}})
    assert not is_original({"name": "x", "chat": {"path": "/x"}})


def test_the_example_translation_exactly() -> None:
    doc = translate(json.loads(EXAMPLE.read_text(encoding="utf-8")), resp_names=NAMES).doc
    assert doc == {"name": "minimax", "calls": {"chat": {
        "path": "/v1/text/chatcompletion_pro", "method": "POST", "apitype": "stream",
        "headers": [{"name": "Content-Type", "value": "application/json"},
                    {"name": "Authorization", "value": "Bearer ${api_key}"}],
        "params": [{"name": "GroupId", "value": "${env.GROUPID}"}],
        "data": [{"name": "model", "value": "${model}"}, {"name": "messages", "value": "${messages}"},
                 {"name": "stream", "value": True},
                 {"name": "bot_setting", "value": [{"bot_name": "MM助手", "content": "MM助手"}]},
                 {"name": "reply_constraints", "value": {"sender_type": "BOT", "sender_name": "MM助手"}}],
        "resp": [{"name": "content", "value": "choices[0].messages[0].text"},
                 {"name": "usage.prompt_tokens", "value": "usage.prompt_tokens"},
                 {"name": "usage.completion_tokens", "value": "usage.completion_tokens"},
                 {"name": "usage.total_tokens", "value": "usage.total_tokens"}],
        "framing": "lines", "chunk_match": "data: (.*)",
        "chunk_filter": [{"path": "reply", "op": "ne", "value": "", "fields": ["content"]}],
        "end": "eof",  # nothing in the file says when an answer is complete
    }}}


def test_variables_at_any_depth() -> None:
    raw = original(data=[{"name": "x", "value": {"a": ["${apikey}", {"b": "k=${groupid:-g0} ${prompt}"}]}}],
                   input_items=["image"], header=[{"name": "X-Region", "value": "${Region}"}])
    call = translate(raw, resp_names=NAMES).doc["calls"]["chat"]
    assert call["data"] == [{"name": "x", "value": {"a": ["${api_key}", {"b": "k=${env.GROUPID:-g0} ${prompt}"}]}}]
    assert call["headers"] == [{"name": "X-Region", "value": "${env.REGION}"}]
    assert "input_items" not in call


def test_a_typo_in_the_original_is_reported_at_its_original_path() -> None:
    with pytest.raises(SpecError) as caught:
        translate(original(chunk_filter=[{"name": "a", "op": "==", "value": 1}, {"name": "b", "op": "=~"}]),
                  resp_names=NAMES)
    assert (caught.value.where, caught.value.message[:18]) == (("chat", "chunk_filter", 1, "op"), "unknown op '=~'; k")


# -- chunk_match over raw lines, chunk_filter, usage ---------------------------------------------------

async def run(bridge: Any, fake: FakeUpstream, tmp_path: Path, doc: dict[str, Any], body: list[str]) -> Any:
    fake.handler = fakes.raw_stream(body, content_type="text/plain")
    return await bridge({"UPSTREAM": str(write(tmp_path, doc)), "UPSTREAM_BASE_URL": fake.url, "FALLBACK_TEXT": ""})


async def test_chunk_match_reads_raw_lines(bridge, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    body = ['event: delta\r\npayload={"t": "Hel', 'lo"}\r\n', "\r\n: comment\rpayload={\"t\": \", \"}\r",
            '\npayload={"t": "world"}\npayload=', '{"t": "!"}']  # LF, CRLF, CR, split across reads, no final end
    client = await run(bridge, fake_upstream, tmp_path, original(chunk_match=r"^payload=(.*)$"), body)
    assert await ask_form(client) == (200, {"Text": "Hello, world!"})


async def test_a_line_the_regex_misses_is_skipped_and_a_bad_payload_is_an_error(bridge, fake_upstream: FakeUpstream,
                                                                                tmp_path: Path) -> None:
    body = ['data: {"t": "a"}\n', ": a comment line\n", "data: [DONE]\n"]  # [DONE] ends it, never a payload
    client = await run(bridge, fake_upstream, tmp_path, original(chunk_match=r"^data: (.*)"), body)
    assert await ask_form(client) == (200, {"Text": "a"})
    client = await run(bridge, fake_upstream, tmp_path, original(chunk_match=r"^data: (.*)"),
                       ['data: {"t": "a"}\n', "data: {not json\n"])
    status, answer = await ask_form(client)
    assert (status, answer["kind"]) == (502, "upstream_protocol")


CHUNKS = ['{"i": 1, "t": "a"}\n', '{"i": 2, "t": "b"}\n', '{"i": 3, "t": "c", "x": "s"}\n']


@pytest.mark.parametrize(("rule", "text"), [
    ({"name": "i", "op": ">", "value": 1}, "a"),
    ({"name": "i", "op": "<", "value": 2}, "bc"),
    ({"name": "i", "op": ">=", "value": 2}, "a"),
    ({"name": "i", "op": "<=", "value": 2.5}, "c"),
    ({"name": "i", "op": "==", "value": 2}, "ac"),
    ({"name": "i", "op": "!=", "value": 2}, "b"),
    ({"name": "i", "op": "in", "value": [1, 3]}, "b"),
    ({"name": "i", "op": "not in", "value": [1, 3]}, "ac"),
    ({"name": "x", "op": "exists"}, "ab"),
    ({"name": "x", "op": "not_exists"}, "c"),
    ({"name": "x", "op": "!=", "value": "z"}, "ab"),  # != holds only when the value exists
    ({"name": "i", "op": ">", "value": "1"}, "abc"),  # a number never compares with a string
    ({"name": "t", "op": ">=", "value": "b"}, "a"),  # strings compare as strings
])
async def test_chunk_filter_ops(rule: dict[str, Any], text: str, bridge, fake_upstream: FakeUpstream,
                                tmp_path: Path) -> None:
    doc = original(chunk_filter={**rule, "field": "content"})
    client = await run(bridge, fake_upstream, tmp_path, doc, CHUNKS)
    assert await ask_form(client) == (200, {"Text": text})


async def test_chunk_filter_without_field_drops_the_whole_chunk(bridge, fake_upstream: FakeUpstream,
                                                                tmp_path: Path) -> None:
    resp = [{"name": "content", "value": "t"}, {"name": "usage", "value": "u"}]
    body = ['{"t": "Hi", "u": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6}}\n',
            '{"t": "!", "final": true, "u": {"prompt_tokens": 99, "completion_tokens": 99, "total_tokens": 198}}\n']
    keep_usage = original(resp=resp, chunk_filter={"name": "final", "op": "==", "value": True, "field": "content"})
    client = await run(bridge, fake_upstream, tmp_path, keep_usage, body)
    text, usage = await ask_openai(client)
    assert (text, usage.prompt_tokens, usage.completion_tokens) == ("Hi", 99, 99)
    whole = original(resp=resp, chunk_filter=[{"name": "final", "op": "exists"}])
    client = await run(bridge, fake_upstream, tmp_path, whole, body)
    text, usage = await ask_openai(client)
    assert (text, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == ("Hi", 5, 1, 6)


async def test_resp_usage_reads_the_whole_usage_object(bridge, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    doc = original(resp=[{"name": "content", "value": "t"}, {"name": "usage", "value": "meta.usage"}])
    body = ['{"t": "Hi"}\n', '{"meta": {"usage": {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}}}\n']
    client = await run(bridge, fake_upstream, tmp_path, doc, body)
    text, usage = await ask_openai(client)
    assert (text, usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == ("Hi", 7, 2, 9)


async def test_a_stream_without_chunk_match_is_sse(bridge, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    doc = original(chunk_match=None)
    body = ['event: x\ndata: {"t": "A"}\n\n', 'data:{"t": "B"}\n\n']
    client = await run(bridge, fake_upstream, tmp_path, doc, body)
    assert await ask_form(client) == (200, {"Text": "AB"})


# -- async: poll until content arrives ----------------------------------------------------------------

def job_api(answer: str, *, running_polls: int, error: str | None = None) -> fakes.Handler:
    """POST /v1/jobs -> {"job": {"id"}}; GET /v1/jobs/<id>?region=.. -> no result while running, then the result."""
    polls = {"n": 0}

    async def handler(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {KEY}":
            return web.json_response({"error": {"message": "bad key"}}, status=401)
        if request.method == "POST":
            assert (await request.json())["prompt"] == QUESTION
            return web.json_response({"job": {"id": "job-7"}})
        assert (request.path, request.query.get("region")) == ("/v1/jobs/job-7", "eu")
        polls["n"] += 1
        if polls["n"] <= running_polls:
            return web.json_response({"state": "running", "result": {"text": ""}})
        if error is not None:
            return web.json_response({"state": "failed", "failure": {"reason": error}})
        return web.json_response({"state": "done", "result": {"text": answer}})

    return handler


ASYNC = {"name": "jobs", "chat": {
    "path": "/v1/jobs", "method": "POST", "apitype": "async", "input_items": ["prompt"],
    "headers": [{"name": "Authorization", "value": "Bearer ${apikey}"}],
    "data": [{"name": "model", "value": "${model}"}, {"name": "prompt", "value": "${prompt}"}],
    "resp": [{"name": "task_id", "value": "job.id"}],
    "query_path": "/v1/jobs/${task_id}", "query_params": [{"name": "region", "value": "${jobs_region}"}],
    "query_resp": [{"name": "content", "value": "result.text"}, {"name": "error", "value": "failure.reason"}],
    "poll_interval": 0.01,
}}


async def test_an_async_call_polls_until_content_arrives(bridge, fake_upstream: FakeUpstream, tmp_path: Path) -> None:
    fake_upstream.handler = job_api("Done!", running_polls=2)
    env = {"UPSTREAM": str(write(tmp_path, ASYNC)), "UPSTREAM_BASE_URL": fake_upstream.url, "UPSTREAM_API_KEY": KEY,
           "JOBS_REGION": "eu", "FALLBACK_TEXT": ""}
    client = await bridge(env)
    assert await ask_form(client) == (200, {"Text": "Done!"})
    polled = [("POST", "/v1/jobs")] + [("GET", "/v1/jobs/job-7")] * 3  # twice running, then the answer
    assert [(r.method, r.path) for r in fake_upstream.requests] == polled
    assert all(r.headers["Authorization"] == f"Bearer {KEY}" for r in fake_upstream.requests)

    fake_upstream.handler = job_api("", running_polls=1, error="model overloaded")
    status, body = await ask_form(client)
    assert (status, body["kind"]) == (502, "upstream_error")
    assert "model overloaded" in body["error"]


@pytest.mark.parametrize(("change", "expected"), [
    ({"resp": [{"name": "content", "value": "job.id"}]}, "chat.resp: an async call's resp needs a 'task_id' output"),
    ({"query_resp": [{"name": "content", "value": "r"}, {"name": "status", "value": "s"}]},
     "chat.query_resp: the original format has no status map"),
    ({"query_resp": [{"name": "error", "value": "r"}]}, "chat.query_resp: needs a 'content' output"),
    ({"chunk_match": "(.*)"}, "chat.chunk_match: only for apitype 'stream' (this call is 'async')"),
    ({"query_path": None}, "chat.query_path: missing: the request path"),
])
def test_async_mistakes(tmp_path: Path, change: dict[str, Any], expected: str) -> None:
    doc = copy.deepcopy(ASYNC)
    doc["chat"].update(change)
    doc["chat"] = {k: v for k, v in doc["chat"].items() if v is not None}
    assert mistake(tmp_path, doc).startswith(expected)


def test_a_project_async_call_may_go_without_status(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "specs" / "async-task.json").read_text(encoding="utf-8"))
    del doc["calls"]["chat"]["status_map"]
    doc["calls"]["chat"]["query_resp"] = [r for r in doc["calls"]["chat"]["query_resp"] if r["name"] != "status"]
    call = load_spec(write(tmp_path, doc, "async-task.json"), "UPSTREAM").calls["chat"]
    assert (call.apitype, call.status_map, [r.name for r in call.query_resp][:2]) == ("async", {}, [
        "content", "finish_reason"])


def test_a_project_async_call_with_status_needs_a_status_map(tmp_path: Path) -> None:
    doc = json.loads((ROOT / "specs" / "async-task.json").read_text(encoding="utf-8"))
    del doc["calls"]["chat"]["status_map"]
    with pytest.raises(ConfigError) as caught:
        load_spec(write(tmp_path, doc, "async-task.json"), "UPSTREAM")
    assert str(caught.value).endswith("calls.chat.status_map: required with a 'status' output (without both, the "
                                      "task is done once 'content' has a value)")


# -- the lines framing and the ordering ops, as units ---------------------------------------------------

def test_the_lines_framing() -> None:
    parser = make_parser("lines")
    frames = [*parser.feed(b"\xef\xbb\xbfa: 1\r"), *parser.feed(b"\nb\r\n\r\n  \n"), *parser.feed(b"c\rd"),
              *parser.close()]
    assert [f.data for f in frames] == ["a: 1", "b", "  ", "c", "d"]
    with pytest.raises(FramingError):
        make_parser("lines").feed(b"x" * (MAX_FRAME_BYTES + 1) + b"\n")
    with pytest.raises(FramingError):
        make_parser("lines").feed(b"x" * (MAX_FRAME_BYTES + 1))


@pytest.mark.parametrize(("op", "value", "payload", "expected"), [
    ("gt", 1, {"a": 2}, True), ("gt", 2, {"a": 2}, False), ("ge", 2, {"a": 2.0}, True), ("lt", 0, {"a": -1}, True),
    ("le", 1, {"a": 2}, False), ("gt", 0, {"a": True}, False), ("gt", 0, {}, False), ("lt", "b", {"a": "a"}, True),
    ("lt", 5, {"a": "1"}, False), ("ne", 0, {}, False), ("ne", 0, {"a": 1}, True),
])
def test_ordering_conditions(op: str, value: Any, payload: dict[str, Any], expected: bool) -> None:
    assert Condition({"path": "a", "op": op, "value": value}, []).matches(payload, None) is expected


def test_an_ordering_condition_needs_a_number_or_a_string() -> None:
    with pytest.raises(SpecError) as caught:
        Condition({"path": "a", "op": "gt", "value": [1]}, ["x"])
    assert (caught.value.where, caught.value.message) == (("x", "value"), "op 'gt' needs a number or a string value")
