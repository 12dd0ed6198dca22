"""A fake OpenAI Chat Completions upstream that is strict where the real API is strict.

It checks each request against OpenAI's published contract as recorded in
tests/fixtures/openai/contract.json (from openai/openai-openapi; not from the bridge's own
table) and refuses what OpenAI refuses, with OpenAI's documented error bodies:

- an unknown top-level field: "Unrecognized request argument supplied: <name>";
- a known field of the wrong JSON type: "Invalid type for '<name>': expected ..., but got ... instead."
  (code `invalid_type`);
- a message field its role does not have: "Additional properties are not allowed ('<name>'
  was unexpected) - 'messages.<i>'";
- `metadata` that is not a map of strings, or sent without `store` enabled.

A valid request streams a short answer (with usage, a system_fingerprint, and any extra
chunks the test asks for).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiohttp import web

from tests.support.upstream import FakeUpstream, sse, text_chunks

CONTRACT_FILE = Path(__file__).parents[1] / "fixtures" / "openai" / "contract.json"
CONTRACT = json.loads(CONTRACT_FILE.read_text(encoding="utf-8"))
PARAMETERS: dict[str, list[str]] = {name: spec["types"] for name, spec in CONTRACT["parameters"].items()}
MESSAGE_FIELDS: dict[str, list[str]] = {role: keys for role, keys in CONTRACT["message_fields"].items()
                                        if not role.startswith("_")}
_PYTHON_TYPES = {"string": str, "integer": int, "number": (int, float), "boolean": bool, "object": dict,
                 "array": list, "null": type(None)}


def _describe(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal number"
    return {str: "a string", dict: "an object", list: "an array"}.get(type(value), "null")


def _fits(value: Any, types: list[str]) -> bool:
    for kind in types:
        expected = _PYTHON_TYPES[kind]
        if isinstance(value, expected) and not (isinstance(value, bool) and kind in ("integer", "number")):
            return True
    return False


def refusal(body: Any) -> str | None:
    """OpenAI's error message for this request body, or None when OpenAI would accept it."""
    if not isinstance(body, dict):
        return "We could not parse the JSON body of your request."
    unknown = [key for key in body if key not in PARAMETERS]
    if unknown:
        return f"Unrecognized request argument supplied: {unknown[0]}"
    for key, value in body.items():
        if not _fits(value, PARAMETERS[key]):
            expected = " or ".join(f"an {t}" if t[0] in "aeiou" else f"a {t}" for t in PARAMETERS[key] if t != "null")
            return f"Invalid type for '{key}': expected {expected}, but got {_describe(value)} instead."
    for required in CONTRACT["required"]:
        if required not in body:
            return f"Missing required parameter: '{required}'."
    for i, message in enumerate(body["messages"]):
        if not isinstance(message, dict) or message.get("role") not in MESSAGE_FIELDS:
            return f"Invalid value for 'messages[{i}].role'."
        extra = [key for key in message if key not in MESSAGE_FIELDS[message["role"]]]
        if extra:
            return f"Additional properties are not allowed ('{extra[0]}' was unexpected) - 'messages.{i}'"
    metadata = body.get("metadata")
    if metadata is not None:
        for key, value in metadata.items():
            if not isinstance(value, str):
                return f"Invalid type for 'metadata.{key}': expected a string, but got {_describe(value)} instead."
        if body.get("store") is not True:
            return "The 'metadata' parameter is only allowed when 'store' is enabled."
    if body.get("stream_options") is not None and body.get("stream") is not True:
        return "The 'stream_options' parameter is only allowed when 'stream' is enabled."
    return None


def strict_openai(fake: FakeUpstream, pieces: list[str], extra_chunks: list[dict[str, Any]] = ()) -> list[str]:
    """Make `fake` a strict OpenAI; returns the list its refusals are recorded in (empty when all passed)."""
    refusals: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        problem = refusal(body)
        if problem is not None:
            refusals.append(problem)
            code = "invalid_type" if problem.startswith("Invalid type") else None
            return web.json_response({"error": {"message": problem, "type": "invalid_request_error", "param": None,
                                                "code": code}}, status=400)
        usage = {"prompt_tokens": 21, "completion_tokens": 5, "total_tokens": 26,
                 "prompt_tokens_details": {"cached_tokens": 16}, "completion_tokens_details": {"reasoning_tokens": 0}}
        chunks = [{**chunk, "system_fingerprint": "fp_strict"} for chunk in text_chunks(pieces, usage=usage)]
        return web.Response(body=sse([chunks[0], *extra_chunks, *chunks[1:]]), content_type="text/event-stream")

    fake.handler = handler
    return refusals
