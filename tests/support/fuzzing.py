"""Generated request bodies for every POST route, and the rule every answer must keep.

Shared by tests/test_hostile_input.py (a few hundred bodies per run) and bench/fuzz.py
(10,000 against `python app.py`). A body is (path, raw bytes, headers).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from hypothesis import strategies as st

TOKEN = "hostile-token-123456"
ROUTES = ("/", "/v1/chat/completions", "/chat/completions", "/rag/chat/completions", "/audio/chat/completions")
RESPONSES_ROUTES = ("/v1/responses", "/responses")
Request = tuple[str, bytes, dict[str, str]]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.integers(min_value=2**63, max_value=2**80)
    | st.floats(allow_nan=False) | st.text(max_size=50),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=30,
)
deep_values = st.integers(250, 1100).map(lambda n: json.loads("[" * n + "]" * n) if n < 1024 else "[" * n)
values = json_values | deep_values | st.sampled_from(["\x00", "a\x00b", "\ud800".encode("utf-8", "surrogatepass")
                                                      .decode("utf-8", "replace")])

chat_messages = st.lists(
    st.fixed_dictionaries(
        {"role": st.sampled_from(["user", "assistant", "system", "tool", "bogus"]) | json_values},
        optional={"content": values | st.lists(st.fixed_dictionaries({}, optional={"type": values, "text": values})),
                  "metadata": values, "turn_id": values, "tool_call_id": values, "tool_calls": values},
    ),
    max_size=5,
)
chat_bodies = st.fixed_dictionaries(
    {},
    optional={
        "messages": chat_messages | values, "model": values, "stream": st.booleans() | values,
        "temperature": values | st.sampled_from(["0.1", "hot", "1e999"]), "max_tokens": values,
        "stream_options": values, "extendData": values, "context": values, "turn_id": values, "tools": values,
        "n": values, "metadata": values, "store": values, "maxTokens": values, "user_id": values,
    },
)
# The Responses API's create bodies (https://platform.openai.com/docs/api-reference/responses/create).
response_parts = st.lists(st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["input_text", "output_text", "refusal", "input_image", "input_audio", "input_file"])
    | values, "text": values, "refusal": values, "image_url": values, "input_audio": values, "file_data": values}),
    max_size=3)
response_items = st.lists(st.fixed_dictionaries({}, optional={
    "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning"]) | values,
    "role": st.sampled_from(["user", "assistant", "system", "developer", "tool"]) | values,
    "content": values | response_parts, "call_id": values, "name": values, "arguments": values,
    "output": values | response_parts}), max_size=5)
responses_bodies = st.fixed_dictionaries({}, optional={
    "input": response_items | values, "model": values, "stream": st.booleans() | values, "instructions": values,
    "tools": values | st.lists(st.fixed_dictionaries({"type": st.just("function") | values},
                                                     optional={"name": values, "parameters": values,
                                                               "strict": values})),
    "tool_choice": values, "temperature": values, "max_output_tokens": values, "metadata": values, "store": values,
    "previous_response_id": values, "text": values, "reasoning": values, "background": values, "user_id": values,
})
content_types = st.sampled_from([
    "application/json", "application/x-www-form-urlencoded", "multipart/form-data; boundary=xyz",
    "multipart/form-data", "text/plain", "application/json; charset=latin-1", "", "*/*; x=\x7f",
])


def _json_request(path: str, body: Any) -> Request:
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return path, raw, {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}


field_names = st.sampled_from(["Message", "Token", "ExtendData", "Other"]) | st.text(max_size=10)
field_values = (
    st.text(max_size=300)
    | st.sampled_from(["[]", "[{", "{'role': 'user'}", "[{'role':'user','content':'hi'}]", TOKEN, "\x00"])
    | values.map(json.dumps)
    | st.integers(1, 40_000).map(lambda n: "x" * n)
    | st.integers(1, 500).map(lambda n: "[" * n + "]" * n)
)
part_headers = st.sampled_from([
    b'Content-Disposition: form-data; name="Message"', b'Content-Disposition: form-data; name="Token',
    b"Content-Disposition", b"Content-Disposition: form-data; name=Message; name=x",
    b"Content-Type: text/plain; charset=nope\r\nContent-Disposition: form-data; name=Message",
    b"X: \x00\x01\r\nContent-Disposition: form-data; name=Message", b"",
    b'Content-Disposition: form-data; name="Message"; filename="a.txt"',
    b"Content-Transfer-Encoding: base64\r\nContent-Disposition: form-data; name=Message",
])


@st.composite
def multipart(draw: st.DrawFn) -> Request:
    parts = draw(st.lists(st.tuples(part_headers, st.binary(max_size=200) | field_values.map(str.encode)),
                          max_size=5))
    body = b"".join(b"--xyz\r\n" + head + b"\r\n\r\n" + value + b"\r\n" for head, value in parts) + b"--xyz--\r\n"
    return "/", body, {"Content-Type": "multipart/form-data; boundary=xyz"}


@st.composite
def urlencoded(draw: st.DrawFn) -> Request:
    fields = draw(st.lists(st.tuples(field_names, field_values), max_size=6))
    if draw(st.booleans()):
        fields = [("Token", TOKEN), *fields]
    return "/", urllib.parse.urlencode(fields).encode(), {"Content-Type": "application/x-www-form-urlencoded"}


requests: st.SearchStrategy[Request] = st.one_of(
    urlencoded(),
    multipart(),
    st.tuples(st.sampled_from(ROUTES), st.binary(max_size=2000), content_types.map(lambda c: {"Content-Type": c})),
    st.tuples(st.sampled_from(ROUTES[1:]), chat_bodies | json_values).map(lambda pair: _json_request(*pair)),
    st.tuples(st.sampled_from(ROUTES[1:]), st.binary(max_size=500).map(lambda b: b'{"messages": "' + b + b'"}'))
    .map(lambda pair: _json_request(*pair)),
    st.tuples(st.sampled_from(RESPONSES_ROUTES), responses_bodies | json_values).map(lambda pair: _json_request(*pair)),
    st.tuples(st.sampled_from(RESPONSES_ROUTES), st.binary(max_size=2000),
              content_types.map(lambda c: {"Content-Type": c, "Authorization": f"Bearer {TOKEN}"})),
)
RESPONSES_END = (b"response.completed", b"response.incomplete", b"response.failed")


def answer_problem(status: int, headers: dict[str, str], body: bytes) -> str | None:
    """Why an answer breaks the rules (None when it keeps them): never a 500, always JSON or well-formed SSE."""
    if status >= 500 and status not in (502, 503, 504):
        return f"status {status}: {body[:200]!r}"
    if headers.get("content-type", "").startswith("text/event-stream") and body.startswith(b"event: "):
        last = body[body.rfind(b"\nevent: ") + 8:].split(b"\n", 1)[0]  # the Responses API's last event
        return None if status == 200 and last in RESPONSES_END else f"a stream that ends with {last!r}"
    if headers.get("content-type", "").startswith("text/event-stream"):
        if status != 200 or not body.endswith(b"data: [DONE]\n\n"):
            return f"a stream that does not end with [DONE]: {body[-200:]!r}"
        return None
    if not headers.get("content-type", "").startswith("application/json"):
        return f"status {status} without a JSON body: {headers.get('content-type')!r}"
    try:
        parsed = json.loads(body)
    except ValueError:
        return f"a body that is not JSON: {body[:200]!r}"
    if status >= 400 and "error" not in parsed:
        return f"an error without 'error': {body[:200]!r}"
    return None
