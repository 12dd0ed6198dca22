"""Broken spec files stop start-up with the file, the field's JSON path and what is wrong."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bridge.config import ConfigError, read_settings
from bridge.process.app import create_app
from bridge.upstreams.spec import available_specs, load_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
SHIPPED = ["alibaba-form", "anthropic", "async-task", "cohere", "coze", "dashscope", "gemini", "lingyi", "minimax",
           "minimax-v2", "ollama", "openai"]

GOOD: dict[str, Any] = {
    "name": "good",
    "base_url": "https://api.example.com",
    "signer": "bearer",
    "calls": {"chat": {
        "path": "/v1/chat", "apitype": "stream", "framing": "sse", "done": "[DONE]",
        "data": [{"name": "model", "value": "${model}"}, {"name": "messages", "value": "${messages}"}],
        "resp": [{"name": "content", "value": "choices[0].delta.content"}],
    }},
}


def start(spec: str, **env: str) -> None:
    create_app(read_settings({"UPSTREAM": spec, "UPSTREAM_API_KEY": "sk-test-key-123", **env}))


def start_with(tmp_path: Path, doc: Any, **env: str) -> str:
    """Start the app on `doc` written to a file; return the ConfigError message."""
    file = tmp_path / "bad.json"
    file.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ConfigError) as caught:
        start(str(file), **env)
    message = str(caught.value)
    assert message.startswith(f"UPSTREAM: spec file {file}: ")
    return message[len(f"UPSTREAM: spec file {file}: "):]


def changed(path: str, value: Any) -> dict[str, Any]:
    """GOOD with the field at a dotted path (list indexes as numbers) replaced; value None deletes it."""
    doc = copy.deepcopy(GOOD)
    *parents, leaf = [int(p) if p.isdigit() else p for p in path.split(".")]
    node: Any = doc
    for key in parents:
        node = node[key]
    if value is None:
        del node[leaf]
    else:
        node[leaf] = value
    return doc


def test_every_shipped_spec_is_valid() -> None:
    assert available_specs() == SHIPPED
    for name in SHIPPED:
        spec = load_spec(SPECS / f"{name}.json", "UPSTREAM", expect_name=name)
        assert spec.name == name and "chat" in spec.calls


def test_the_good_example_starts(tmp_path: Path) -> None:
    (tmp_path / "good.json").write_text(json.dumps(GOOD))
    start(str(tmp_path / "good.json"))


def test_unknown_upstream_lists_the_specs() -> None:
    with pytest.raises(ConfigError) as caught:
        start("minimaxx")
    assert str(caught.value) == ("UPSTREAM: unknown upstream 'minimaxx'; available: echo, openai, "
                                 + ", ".join(n for n in SHIPPED if n != "openai")
                                 + " (or a path to a spec .json file)")


@pytest.mark.parametrize(("doc", "expected"), [
    ('{"name": "bad",\n "calls": {,}}', "not valid JSON at line 2 column 12: Expecting property name"),
    ('{"name": "a", "name": "b", "calls": {}}', "key 'name' appears twice in one object"),
    (changed("calls", None), "(top level): 'calls' is a required property"),
    (changed("calls.chat.apitype", "strem"), "calls.chat.apitype: 'strem' is not one of ['stream', 'sync', 'async']"),
    (changed("calls.chat.framing", None), "calls.chat: 'framing' is a required property"),
    (changed("calls.chat.pth", "/x"), "calls.chat: Additional properties are not allowed ('pth' was unexpected)"),
    (changed("base_url", "ftp://x"), "base_url: 'ftp://x' does not match"),
    (changed("calls.chat.data.1.converter", "to_jsn"),
     "calls.chat.data[1].converter: unknown converter 'to_jsn' (did you mean 'to_json_string'?); known: "
     "to_json_string, int, list"),
    (changed("calls.chat.data.1.converter", {"name": "map", "vals": {}}),
     "calls.chat.data[1].converter: converter 'map': Additional properties are not allowed ('vals' was unexpected)"),
    (changed("calls.chat.data.1.converter", {"name": "messages", "message": {"t": "${txt}"}}),
     "calls.chat.data[1].converter.message.t: unknown variable ${txt}; known: model, messages, prompt, system"),
    (changed("signer", {"name": "hmac"}), "signer.name: unknown signer 'hmac'; known: bearer, ihcloud"),
    (changed("signer", {"name": "ihcloud", "expires": 0}), "signer.expires: signer 'ihcloud': 0 is less than"),
    (changed("calls.chat.data.0.value", "${modle}"), "calls.chat.data[0].value: unknown variable ${modle}; known:"),
    (changed("calls.chat.data.0.value", "${model"), "calls.chat.data[0].value: malformed placeholder in '${model'"),
    (changed("calls.chat.data.0.value", "${extend.phone}"),
     "calls.chat.data[0].value: unknown variable ${extend.phone}; extend fields: instance_id"),
    (changed("calls.chat.path", "/v1/${task_id}"), "calls.chat.path: unknown variable ${task_id}"),
    (changed("calls.chat.resp.0.value", "choices[0]..text"),
     "calls.chat.resp[0].value: bad path 'choices[0]..text' at character 12: expected a key"),
    (changed("calls.chat.resp.0.name", "text"), "calls.chat.resp[0].name: 'text' is not one of ['content'"),
    (changed("calls.chat.chunk_match", "data: ("),
     "calls.chat.chunk_match: bad regular expression 'data: (': missing )"),
    (changed("calls.chat.chunk_filter", [{"path": "x", "op": "in", "value": 3}]),
     "calls.chat.chunk_filter[0].value: op 'in' needs a list value"),
    (changed("calls.chat.headers", [{"name": "Bad Header", "value": "x"}]),
     "calls.chat.headers[0].name: not a valid HTTP header name: 'Bad Header'"),
    (changed("calls.chat.poll_interval", 1), "calls.chat.poll_interval: only for apitype 'async'"),
    (changed("calls.chat.apitype", "async"), "calls.chat: 'query_path' is a required property"),
    (changed("calls.chat.resp", [{"name": "usage.prompt_tokens", "value": "usage.x"}]),
     "calls.chat.resp: a stream call needs a 'content' output"),
    (changed("calls.chat.data.0.value", "${user:-${extend.instance_id:-x}"),
     "calls.chat.data[0].value: malformed placeholder in '${user:-${extend.instance_id:-x}'"),
    (changed("calls.chat.data.0.value", "${user:-${modle}}"), "calls.chat.data[0].value: unknown variable ${modle}"),
    (changed("calls.chat.data.0.value", "${param.}"), "calls.chat.data[0].value: ${param.}: param.NAME needs"),
    (changed("calls.chat.data.1", {"name": "messages", "value": "${messages}",
                                   "converter": {"name": "messages", "roles": {"user": "user"}}}),
     "calls.chat.data[1].converter: the system messages would be left out: map the system role in roles, send "
     "${system} in another field, or set \"system\": \"prepend\""),
    (changed("calls.chat.data.0", {"name": "", "value": "${model}"}),
     "calls.chat.data[0].name: a field needs a name (\"\" only with merge: the body's top level)"),
    (changed("calls.chat.headers", [{"name": "X", "value": "${extra_params}", "merge": True}]),
     "calls.chat.headers[0].merge: only body (data) fields can merge an object"),
    (changed("calls.chat.finish_reasons", {"DONE": "finished"}),
     "calls.chat.finish_reasons.DONE: 'finished' is not one of ['stop', 'length', 'tool_calls'"),
    (changed("calls.chat.resp", [{"name": "content", "each": "parts", "value": "x[*].text"}]),
     "calls.chat.resp[0].value: with each, the value is read from each element: no [*] here"),
    (changed("calls.chat.end", "never"), "calls.chat.end: 'never' is not one of ['marker', 'eof']"),
    (changed("calls.chat.tool_call_key", "id"), "calls.chat.tool_call_key: 'id' is not one of ['index', 'name'"),
])
def test_broken_spec_stops_start_up(tmp_path: Path, doc: Any, expected: str) -> None:
    assert start_with(tmp_path, doc).startswith(expected)


def test_async_call_without_task_id(tmp_path: Path) -> None:
    call = {"path": "/jobs", "apitype": "async", "resp": [{"name": "status", "value": "s"}],
            "query_path": "/jobs/${task_id}", "query_resp": [{"name": "status", "value": "s"},
                                                             {"name": "content", "value": "c"}],
            "status_map": {"running": ["R"], "succeeded": ["S"], "failed": ["R"]}}
    doc = {**GOOD, "calls": {"chat": call}}
    assert start_with(tmp_path, doc) == ("calls.chat.resp: an async call's resp needs a 'task_id' output (the query "
                                         "id: the query fields use it as ${task_id})")
    call["resp"] = [{"name": "task_id", "value": "id"}]
    assert start_with(tmp_path, doc) == "calls.chat.status_map.failed[0]: status 'R' is listed twice"


@pytest.mark.parametrize(("spec", "env", "expected"), [
    ("minimax", {}, "UPSTREAM: spec minimax: calls.chat.params[0] needs ${env.MINIMAX_GROUP_ID}: "
                    "set the environment variable MINIMAX_GROUP_ID"),
    ("lingyi", {"LINGYI_AK": "ak"}, "UPSTREAM: spec lingyi: signer needs ${env.LINGYI_SK}: "
                                    "set the environment variable LINGYI_SK"),
    ("anthropic", {"UPSTREAM_API_KEY": ""}, "UPSTREAM: spec anthropic: calls.chat.headers[0] needs ${api_key}: "
                                            "set UPSTREAM_API_KEY or ANTHROPIC_API_KEY"),
    ("alibaba-form", {}, "UPSTREAM: spec alibaba-form has no base_url; set UPSTREAM_BASE_URL to the provider's URL"),
    ("dashscope:nope", {}, "UPSTREAM: spec dashscope has no call 'nope'; calls: chat, cumulative"),
    ("/nonexistent/x.json", {}, "UPSTREAM: spec file /nonexistent/x.json does not exist"),
])
def test_missing_configuration_stops_start_up(spec: str, env: dict[str, str], expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        start(spec, **env)
    assert str(caught.value) == expected


def test_a_bad_fallback_spec_names_its_entry(tmp_path: Path) -> None:
    fallbacks = json.dumps([{"upstream": "dashscope"}, {"upstream": "minimax", "api_key": "sk-other-123"}])
    with pytest.raises(ConfigError) as caught:
        start("echo", UPSTREAM_FALLBACKS=fallbacks, DASHSCOPE_API_KEY="sk-ds-1234")
    assert str(caught.value).startswith("UPSTREAM_FALLBACKS[1]: spec minimax: calls.chat.params[0] needs "
                                        "${env.MINIMAX_GROUP_ID}")


def test_fallbacks_do_not_inherit_the_primary_key() -> None:
    with pytest.raises(ConfigError) as caught:
        start("echo", UPSTREAM_FALLBACKS=json.dumps([{"upstream": "anthropic"}]))
    assert "set api_key in UPSTREAM_FALLBACKS[0] or ANTHROPIC_API_KEY" in str(caught.value)
