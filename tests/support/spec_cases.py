"""The question every spec test asks, on both endpoints, and the answer the providers' fakes give.

Shared by tests/test_specs_providers.py (every shipped spec), tests/test_specs_details.py
(the spec driver beyond the happy path) and tests/test_specs_readme.py (specs/README.md's example).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from typing import Any

import openai

from tests.support.app import sdk_client
from tests.support.upstream import Recorded

SYSTEM, QUESTION = "Be brief.", "Hello?"
MESSAGES = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTION}]
PIECES = ["你好", ", ", "world", "!"]
TEXT = "".join(PIECES)
KEY = "sk-spec-test-0123456789"
MODEL = "model-x"
OPENAI_PARAMS = {"temperature": 0.5, "max_tokens": 50}


def lingyi_signature_ok(req: Recorded, ak: str, sk: str) -> bool:
    """The X-IHU-Authorization-V2 algorithm from protocols.md, written out independently."""
    value = req.headers["X-IHU-Authorization-V2"]
    prefix, _, signature = value.rpartition("/")
    scheme, got_ak, stamp, expires = prefix.split("/")
    assert (scheme, got_ak, expires) == ("ihcloud", ak, "300")
    signed_at = datetime.strptime(stamp, "%d %b %Y %H:%M:%S GMT").replace(tzinfo=UTC)
    assert abs(signed_at.timestamp() - time.time()) < 120
    signing_key = hmac.new(sk.encode(), prefix.encode(), hashlib.sha256).hexdigest()
    canonical = f"POST\n{req.path}\ncontent-md5:{hashlib.md5(req.body).hexdigest()}"
    expected = hmac.new(signing_key.encode(), canonical.encode(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(signature, expected)


async def ask_form(client: Any) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/", data={"Message": json.dumps(MESSAGES), "Token": "",
                                        "ExtendData": json.dumps({"InstanceId": "inst-1"})})
    return resp.status, await resp.json()


def sdk(client: Any) -> openai.AsyncOpenAI:
    return sdk_client(str(client.make_url("/v1")), "unused")


async def ask_openai(client: Any) -> tuple[str, Any]:
    async with sdk(client) as api:
        stream = await api.chat.completions.create(
            model="ignored-by-upstream-model", messages=MESSAGES, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True}, extra_body={"extendData": {"instanceId": "inst-1"}},
            **OPENAI_PARAMS)
        text, usage = "", None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                text += chunk.choices[0].delta.content
            if chunk.usage is not None:
                usage = chunk.usage
    return text, usage


TOOL_HISTORY = [
    {"role": "user", "content": "Weather?"},
    {"role": "assistant", "content": "Looking.", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Oslo"}'}},
        {"id": "c2", "type": "function", "function": {"name": "time", "arguments": "{}"}}]},
    {"role": "tool", "tool_call_id": "c1", "content": '{"temp": 3}'},
    {"role": "tool", "tool_call_id": "c2", "content": "noon"},
]
