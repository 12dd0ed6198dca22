"""Every shipped spec against a fake provider speaking its real wire format, through both endpoints.

For each spec: the exact request the provider received (path, query, headers, body), the text
and usage that came back, and a provider error turned into each endpoint's documented error.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import openai
import pytest

from bridge.config import DEFAULT_FAILURE_TEXT
from tests.support import spec_fakes as fakes
from tests.support.spec_cases import (
    KEY,
    MESSAGES,
    MODEL,
    OPENAI_PARAMS,
    PIECES,
    QUESTION,
    SYSTEM,
    TEXT,
    ask_form,
    ask_openai,
    lingyi_signature_ok,
)
from tests.support.upstream import FakeUpstream, Recorded, sse, text_chunks


def _sdk_extras(route: str, **extra: Any) -> dict[str, Any]:
    """Body fields that only the OpenAI route sends (it passes temperature and max_tokens)."""
    return extra if route == "openai" else {}


def check_openai(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/v1/chat/completions", {})
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["Content-Type"] == "application/json"
    assert req.json() == {"model": MODEL, "messages": MESSAGES, "stream": True,
                          "stream_options": {"include_usage": True}, **_sdk_extras(route, **OPENAI_PARAMS)}


def check_minimax(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/v1/text/chatcompletion_pro", {"GroupId": "grp-1"})
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.json() == {
        "model": MODEL, "stream": True, "tokens_to_generate": 50 if route == "openai" else 1024,
        **_sdk_extras(route, temperature=0.5),
        "bot_setting": [{"bot_name": "Assistant", "content": SYSTEM}],
        "reply_constraints": {"sender_type": "BOT", "sender_name": "Assistant"},
        "messages": [{"sender_type": "USER", "sender_name": "User", "text": QUESTION}],
    }


def check_lingyi(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/api/01bot/sse-gateway/stream", {})
    assert "Authorization" not in req.headers
    assert lingyi_signature_ok(req, "ak-lingyi", "sk-lingyi-secret")
    body = req.json()
    created = body["messages"][0].pop("created")
    assert isinstance(created, int) and abs(created - time.time()) < 120
    assert body == {"model": MODEL, "stream": True, "messages": [  # no system role: the prompt goes first
        {"role": "user", "version": "api-v2", "content": [{"type": "text", "body": f"{SYSTEM}\n\n{QUESTION}"}]}]}


def check_dashscope(req: Recorded, route: str, incremental: bool = True) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/api/v1/services/aigc/text-generation/generation", {})
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.headers["X-DashScope-SSE"] == "enable"
    assert req.json() == {"model": MODEL, "input": {"messages": MESSAGES}, "parameters": {
        "result_format": "message", "incremental_output": incremental, **_sdk_extras(route, **OPENAI_PARAMS)}}


def check_ollama(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/api/chat", {})
    assert "Authorization" not in req.headers
    options = {"options": {"temperature": 0.5, "num_predict": 50}} if route == "openai" else {}
    assert req.json() == {"model": MODEL, "messages": MESSAGES, "stream": True, **options}


def check_anthropic(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/v1/messages", {})
    assert req.headers["x-api-key"] == KEY
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert "Authorization" not in req.headers
    assert req.json() == {"model": MODEL, "max_tokens": 50 if route == "openai" else 1024, "system": SYSTEM,
                          "messages": [{"role": "user", "content": QUESTION}], "stream": True,
                          **_sdk_extras(route, temperature=0.5)}


def check_alibaba_form(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/ims/model", {})
    assert req.headers["Content-Type"] == "application/x-www-form-urlencoded"
    form = {k: v[0] for k, v in parse_qs(req.body.decode(), keep_blank_values=True, strict_parsing=True).items()}
    assert set(form) == {"Message", "Token", "ExtendData"}
    assert json.loads(form["Message"]) == MESSAGES
    assert form["Token"] == KEY
    assert json.loads(form["ExtendData"]) == {"InstanceId": "inst-1", "UserData": ""}


def check_async(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("GET", "/api/v1/tasks/task-42", {})
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.body == b""


def check_async_submit(req: Recorded, route: str) -> None:
    assert (req.method, req.path) == ("POST", "/api/v1/services/aigc/text-generation/generation")
    assert req.headers["X-DashScope-Async"] == "enable"
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    max_tokens = {"max_tokens": 50} if route == "openai" else {}
    assert req.json() == {"model": MODEL, "input": {"messages": MESSAGES},
                          "parameters": {"result_format": "message", **max_tokens}}


def check_gemini(req: Recorded, route: str) -> None:
    path = f"/v1beta/models/{MODEL}:streamGenerateContent"
    assert (req.method, req.path, req.query) == ("POST", path, {"alt": "sse"})
    assert req.headers["x-goog-api-key"] == KEY and "Authorization" not in req.headers
    config = {"generationConfig": {"temperature": 0.5, "maxOutputTokens": 50}} if route == "openai" else {}
    assert req.json() == {"contents": [{"role": "user", "parts": [{"text": QUESTION}]}],
                          "systemInstruction": {"parts": [{"text": SYSTEM}]}, **config}


def check_cohere(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/v2/chat", {})
    assert (req.headers["Authorization"], req.headers["Accept"]) == (f"Bearer {KEY}", "text/event-stream")
    assert req.json() == {"model": MODEL, "messages": MESSAGES, "stream": True, **_sdk_extras(route, **OPENAI_PARAMS)}


def check_coze(req: Recorded, route: str) -> None:
    assert (req.method, req.path, req.query) == ("POST", "/v3/chat", {})
    assert req.headers["Authorization"] == f"Bearer {KEY}"
    assert req.json() == {  # no system role in Coze: the prompt goes in front of the question, never dropped
        "bot_id": "bot-7", "user_id": "inst-1", "stream": True, "auto_save_history": False,
        "additional_messages": [{"role": "user", "type": "question", "content": f"{SYSTEM}\n\n{QUESTION}",
                                 "content_type": "text"}]}


@dataclass
class Case:
    """One shipped spec: how to configure it, its answer, its error, and what to check."""

    upstream: str
    ok: Callable[[], fakes.Handler]
    check: Callable[[Recorded, str], None]
    usage: tuple[int, int] | None  # (prompt, completion) the provider reports; None: a total only
    error: Callable[[], fakes.Handler]
    error_status: int
    error_kind: str
    env: dict[str, str] = field(default_factory=lambda: {"UPSTREAM_API_KEY": KEY})
    base_path: str = ""
    text: str = TEXT
    first_request: Callable[[Recorded, str], None] | None = None
    secret: str | None = KEY  # the credential the provider gets, and echoes in its error text ({key})
    echoed: bool = True  # our error text carries the provider's text, so the echo shows up masked


CASES = {
    "openai": Case("specs/openai.json", lambda: fakes.raw_stream([sse(text_chunks(PIECES, usage={
        "prompt_tokens": 21, "completion_tokens": 4, "total_tokens": 25}))]), check_openai, (21, 4),
        lambda: fakes.openai_error(400, "max_tokens is too large for key {key}"), 400, "upstream_bad_request"),
    "minimax": Case("minimax", lambda: fakes.minimax_stream(PIECES, 40), check_minimax, None,
                    lambda: fakes.minimax_error(1004, "authorized error, check your key {key}"), 502, "upstream_auth",
                    env={"UPSTREAM_API_KEY": KEY, "MINIMAX_GROUP_ID": "grp-1"}),
    "lingyi": Case("lingyi", lambda: fakes.lingyi_stream(PIECES), check_lingyi, None,
                   lambda: fakes.lingyi_error(110, "Access token of {key} invalid"), 502, "upstream_error",
                   env={"LINGYI_AK": "ak-lingyi", "LINGYI_SK": "sk-lingyi-secret"}, secret="ak-lingyi"),
    "dashscope": Case("dashscope", lambda: fakes.dashscope_stream(PIECES), check_dashscope, (9, 4),
                      lambda: fakes.dashscope_error(429, "Throttling.RateQuota", "Rate limit exceeded for {key}"),
                      429, "upstream_rate_limited"),
    "dashscope-cumulative": Case(
        "dashscope:cumulative", lambda: fakes.dashscope_stream(PIECES, cumulative=True),
        lambda req, route: check_dashscope(req, route, incremental=False), (9, 4),
        lambda: fakes.dashscope_error(401, "InvalidApiKey", "Invalid API-key provided: {key}"), 502, "upstream_auth",
        echoed=False),  # an auth failure is reported without the provider's text
    "ollama": Case("ollama", lambda: fakes.ollama_stream(PIECES, 26, 4), check_ollama, (26, 4),
                   lambda: fakes.json_body({"error": "model 'model-x' not found"}, status=404), 502, "upstream_http",
                   env={}, secret=None, echoed=False),  # no key configured, none to leak
    "anthropic": Case("anthropic", lambda: fakes.anthropic_stream(PIECES, 17, 5), check_anthropic, (17, 5),
                      lambda: fakes.anthropic_error_event("overloaded_error", "Overloaded ({key})"), 502,
                      "upstream_http"),  # an overloaded_error event is an HTTP 529 in all but name
    "alibaba-form": Case("alibaba-form", lambda: fakes.json_body({"Text": TEXT}), check_alibaba_form, None,
                         lambda: fakes.json_body({"error": "bad token {key}"}, status=422), 400, "upstream_bad_request",
                         base_path="/ims/model"),
    "async-task": Case("async-task", lambda: fakes.async_task(TEXT), check_async, (12, 3),
                       lambda: fakes.async_task(TEXT, fail=("DataInspectionFailed", "Input data of {key} may "
                                                                   "contain inappropriate content.")),
                       502, "upstream_error", first_request=check_async_submit),
    "gemini": Case("gemini", lambda: fakes.gemini_stream(PIECES, 11, 4), check_gemini, (11, 4),
                   lambda: fakes.gemini_error(429, "RESOURCE_EXHAUSTED", "Quota exceeded for key {key}"), 429,
                   "upstream_rate_limited"),
    "cohere": Case("cohere", lambda: fakes.cohere_stream(PIECES, 13, 4), check_cohere, (13, 4),
                   lambda: fakes.json_body({"id": "e1", "message": "invalid api token {key}"}, status=401), 502,
                   "upstream_auth", echoed=False),  # an auth failure is reported without the provider's text
    "coze": Case("coze", lambda: fakes.coze_stream(PIECES, 614, 19), check_coze, (614, 19),
                 lambda: fakes.coze_refusal(4000, "invalid parameter: {key}"), 400, "upstream_bad_request",
                 env={"UPSTREAM_API_KEY": KEY, "COZE_BOT_ID": "bot-7"}),
}


def check_no_secret(case: Case, text: str) -> None:
    assert text
    if case.secret is not None:
        assert case.secret not in text
    if case.echoed:
        assert "[redacted]" in text, text  # the fake did echo the key, and it was masked


def env_for(case: Case, fake: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"UPSTREAM": case.upstream, "UPSTREAM_BASE_URL": fake.url + case.base_path, "UPSTREAM_MODEL": MODEL,
            **case.env, **extra}


@pytest.mark.parametrize("name", list(CASES))
async def test_form_endpoint(name: str, bridge, fake_upstream: FakeUpstream) -> None:
    case = CASES[name]
    fake_upstream.handler = case.ok()
    client = await bridge(env_for(case, fake_upstream))
    assert await ask_form(client) == (200, {"Text": case.text})
    case.check(fake_upstream.last, "form")
    if case.first_request:
        case.first_request(fake_upstream.requests[0], "form")


@pytest.mark.parametrize("name", list(CASES))
async def test_openai_endpoint_streams(name: str, bridge, fake_upstream: FakeUpstream) -> None:
    case = CASES[name]
    fake_upstream.handler = case.ok()
    client = await bridge(env_for(case, fake_upstream))
    text, usage = await ask_openai(client)
    assert text == case.text
    case.check(fake_upstream.last, "openai")
    if case.first_request:
        case.first_request(fake_upstream.requests[0], "openai")
    if case.usage is not None:
        assert (usage.prompt_tokens, usage.completion_tokens) == case.usage
    elif name == "minimax":
        assert usage.total_tokens == 40  # MiniMax reports a total only; the split is estimated


@pytest.mark.parametrize("name", list(CASES))
async def test_provider_error_on_form_endpoint(name: str, bridge, fake_upstream: FakeUpstream) -> None:
    case = CASES[name]
    fake_upstream.handler = case.error()
    client = await bridge(env_for(case, fake_upstream))
    assert await ask_form(client) == (200, {"Text": DEFAULT_FAILURE_TEXT})

    silent = await bridge(env_for(case, fake_upstream, FALLBACK_TEXT=""))
    status, body = await ask_form(silent)
    assert (status, body["kind"]) == (502, case.error_kind)
    check_no_secret(case, body["error"])


@pytest.mark.parametrize("name", list(CASES))
async def test_provider_error_on_openai_endpoint(name: str, bridge, fake_upstream: FakeUpstream) -> None:
    case = CASES[name]
    fake_upstream.handler = case.error()
    client = await bridge(env_for(case, fake_upstream))
    with pytest.raises(openai.APIStatusError) as caught:
        await ask_openai(client)
    assert caught.value.status_code == case.error_status
    error = caught.value.body
    assert isinstance(error, dict) and set(error) == {"message", "type", "param", "code"}
    assert error["code"] == case.error_kind
    check_no_secret(case, error["message"])
