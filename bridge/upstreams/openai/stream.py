"""Reading OpenAI Chat Completions SSE: `data:` lines into canonical events.

Shared by both OpenAI drivers. Each `chat.completion.chunk` is decoded once by msgspec into
typed records holding only the fields the bridge reads (a chunk's id, model, logprobs and
the rest are skipped, never built), then into events. The shape is checked as it is read: a
chunk that is valid JSON of the wrong shape (`choices` a string, `content` a number, a tool
`index` that is not an integer) is an `upstream_protocol` error naming the place, never a
crash and never forwarded. Rare parts (an error, usage, a platform chunk) stay raw JSON until
they are met.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from typing import Any

import msgspec

from bridge import jsonutil
from bridge.errors import ErrorKind, UpstreamError
from bridge.events import Batch, Event, Fingerprint, Finish, Metadata, Reasoning, TextDelta, ToolCallDelta, Usage
from bridge.upstreams.lines import LineSplitter, LineTooLong

USAGE_OPTIONS = {"include_usage": True}
MAX_LINE = 8 * 1024 * 1024  # one SSE line; a larger one is a broken or hostile upstream
MAX_COUNT = 1 << 53  # a token count beyond this is not a count
MAX_EXTRAS = 32  # usage extras kept: a usage object is small, a hostile one is not
MAX_EXTRA_KEY = 64  # characters of an extra's name (they reach the log line)
COUNTS = frozenset({"prompt_tokens", "completion_tokens", "total_tokens"})
MAX_NAME = 256  # characters of a tool call's name remembered to recognise a resent name
MAX_NAMED_CALLS = 1024  # tool call indexes whose names are remembered in one stream
# Chunks that are not completions but platform messages, passed to the caller byte for byte:
# Agora's custom_metadata (`object`) and Tencent TRTC's meta.info (`type`).
CUSTOM_METADATA, META_INFO = "chat.completion.custom_metadata", "meta.info"
REASONING_FIELDS = ("reasoning_content", "reasoning")


NOT_JSON = "upstream sent a stream line that is not JSON"
_RAW = msgspec.Raw | msgspec.UnsetType  # JSON kept undecoded until it is needed


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: Any = None  # text at OpenRouter; anything else is not reasoning the bridge reads
    tool_calls: list[_ToolCall] | None = None


class _Choice(msgspec.Struct):
    delta: _Delta | None = None
    finish_reason: str | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: _RAW = msgspec.UNSET
    error: _RAW = msgspec.UNSET
    object: Any = None
    type: Any = None
    system_fingerprint: Any = None


_DECODE = msgspec.json.Decoder(_Chunk).decode


def protocol_error(what: str) -> UpstreamError:
    return UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream sent a malformed chunk: {what}")


class ChunkReader:
    """Turns the bytes of an OpenAI SSE stream, as they arrive, into event batches.

    `feed` returns the events of every complete line so far. A bad line ends the stream,
    but what came before it still reaches the caller: `check` raises the error after the
    batch has been yielded.
    """

    __slots__ = ("done", "error", "fingerprint", "finished", "lines", "tool_names")

    def __init__(self) -> None:
        self.lines = LineSplitter(MAX_LINE)
        self.tool_names: dict[int, str] = {}  # each tool call's name so far, by index
        self.done = False  # `[DONE]` seen
        self.finished = False  # a finish_reason seen
        self.error: UpstreamError | None = None
        self.fingerprint: str | None = None

    def feed(self, data: bytes) -> Batch:
        try:
            lines = self.lines.feed(data)
        except LineTooLong as exc:
            self.error = UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, f"upstream stream is malformed: {exc}")
            return []
        return self._events(lines)

    def flush(self) -> Batch:
        """At the end of the body: the last line, even without its newline."""
        return self._events(self.lines.close())

    def _events(self, lines: list[bytes]) -> Batch:
        batch: Batch = []
        for line in lines:
            if line[:5] != b"data:":
                if line[:6] == b"error:":  # llama.cpp's server reports a failure as an `error:` field
                    self.error = stream_error(_error_payload(line[6:]))
                    break
                continue  # blank separators, comments, `event:` / `id:` fields
            data = line[5:]
            if data[-1:] != b"}" and data.strip() == b"[DONE]":  # (a chunk ends in "}")
                self.done = True
                break
            try:
                self._chunk(_DECODE(data), data, batch)  # surrounding whitespace is allowed
            except msgspec.ValidationError as exc:
                self.error = protocol_error(str(exc))
                break
            except RecursionError:  # msgspec, even for a field it only skips
                self.error = protocol_error("a chunk nested deeper than the decoder goes")
                break
            except ValueError:  # not JSON (msgspec.DecodeError), or a raw part that is not (orjson)
                self.error = UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, NOT_JSON)
                break
            except UpstreamError as exc:
                self.error = exc
                break
        return batch

    def _chunk(self, chunk: _Chunk, raw: bytes, batch: Batch) -> None:
        """The events of one chunk (only choice 0 is used). An `error` ends the answer, even
        beside `choices` (OpenRouter's mid-stream error)."""
        if chunk.error is not msgspec.UNSET:
            _raise_error(chunk.error)
        fingerprint = chunk.system_fingerprint
        if fingerprint and self.fingerprint is None and type(fingerprint) is str:
            self.fingerprint = fingerprint
            batch.append(Fingerprint(fingerprint))
        if chunk.choices:
            self._choice(chunk.choices[0], batch)
        elif chunk.object == CUSTOM_METADATA or chunk.type == META_INFO:
            batch.append(Metadata(jsonutil.loads(raw), raw.strip()))
        if chunk.usage is not msgspec.UNSET:
            usage = jsonutil.loads(memoryview(chunk.usage))
            if usage:
                batch.append(read_usage(usage))

    def _choice(self, choice: _Choice, batch: Batch) -> None:
        delta = choice.delta
        if delta is not None:
            if delta.content:
                batch.append(TextDelta(delta.content))
            if delta.reasoning_content or delta.reasoning or delta.tool_calls:
                _other_delta_events(delta, batch, self.tool_names)
        if choice.finish_reason:
            batch.append(Finish(choice.finish_reason))
            self.finished = True

    def check(self) -> None:
        """Raise the error a bad line left, if any."""
        if self.error is not None:
            raise self.error

    def check_complete(self) -> None:
        """At the end of the body: an answer with neither [DONE] nor a finish_reason was cut."""
        if not (self.done or self.finished):
            raise UpstreamError(ErrorKind.UPSTREAM_PROTOCOL, "upstream stream ended before the answer was complete")


async def read_batches(chunks: AsyncIterable[bytes]) -> AsyncGenerator[Batch, None]:
    """The event batches of an SSE body, one per network read, ending at `[DONE]` or EOF.

    Raises UpstreamError for a bad line (after the events before it) or a cut-off answer.
    """
    reader = ChunkReader()
    async for data in chunks:
        batch = reader.feed(data)
        if batch:
            yield batch
        reader.check()
        if reader.done:
            return
    batch = reader.flush()
    if batch:
        yield batch
    reader.check()
    reader.check_complete()


def _other_delta_events(delta: _Delta, events: list[Event], tool_names: dict[int, str]) -> None:
    """Reasoning and tool call fragments."""
    reasoning = delta.reasoning_content or delta.reasoning
    if reasoning and type(reasoning) is str:
        events.append(Reasoning(reasoning))
    for call in delta.tool_calls or ():
        function = call.function or _NO_FUNCTION
        index = call.index or 0
        events.append(ToolCallDelta(index=index, id=call.id, name=_fresh_name(index, function.name, tool_names),
                                    arguments=function.arguments or ""))


_NO_FUNCTION = _Function()


def _raise_error(raw: msgspec.Raw) -> None:
    """An `error` member that says something ends the answer; `null`, `{}` or `""` do not."""
    error = jsonutil.loads(memoryview(raw))
    if error:
        raise stream_error(error)


def stream_error(error: Any) -> UpstreamError:
    """An `error` object inside an answer, with the provider's whole message (the core masks and cuts it).

    A numeric `code` that is an HTTP error status (llama.cpp's 400 for an over-long prompt)
    classifies it as that status would; otherwise it is `upstream_error`.
    """
    message = error.get("message") if isinstance(error, dict) else error
    text = message if isinstance(message, str) else jsonutil.text(message) if message is not None else ""
    code = error.get("code") if isinstance(error, dict) else None
    if type(code) is int and 400 <= code < 600:
        return UpstreamError.from_status(code, text)
    return UpstreamError(ErrorKind.UPSTREAM_ERROR, f"upstream reported an error: {text}")


def _error_payload(data: bytes) -> Any:
    try:
        return jsonutil.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace").strip()


def read_usage(usage: Any) -> Usage:
    """A `usage` object: the counts checked, and the upstream's extras passed on in `details`.

    Extras are what providers add beside the three counts: detail objects of counts
    (`prompt_tokens_details`), and numbers (DeepSeek's `prompt_cache_hit_tokens`, OpenRouter's
    `cost`, which is not a count). Anything else (text, flags, nesting) is left out, and so is
    an extra past the first MAX_EXTRAS or with a name longer than MAX_EXTRA_KEY.
    """
    if type(usage) is not dict:
        raise protocol_error("'usage' is not an object")
    prompt, completion = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    if not (_count(prompt) and _count(completion)):
        raise protocol_error("a usage count is not a non-negative integer")
    details: dict[str, Any] = {}
    for key, value in usage.items():
        extra = _extra(value) if key not in COUNTS and len(key) <= MAX_EXTRA_KEY else None
        if extra is not None and len(details) < MAX_EXTRAS:
            details[key] = extra
    return Usage(prompt, completion, details=details)


def _extra(value: Any) -> Any:
    """A usage extra as passed on: a non-negative number, or an object of them (others dropped); else None."""
    if _number(value):
        return value
    if type(value) is dict:
        numbers = {k: v for k, v in value.items() if _number(v) and len(k) <= MAX_EXTRA_KEY}
        return numbers if len(numbers) <= MAX_EXTRAS else None
    return None


def _number(value: Any) -> bool:
    return type(value) in (int, float) and 0 <= value < MAX_COUNT


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value < MAX_COUNT


def tool_call(tc: Any, names: dict[int, str] | None = None) -> ToolCallDelta:
    """One tool call fragment. With `names` (a stream's memory), a name equal to the one already
    seen for its index is a resend, not a fragment: some OpenAI-compatible servers repeat the
    whole name in every delta, which would otherwise read `t_postt_post`.
    """
    if type(tc) is not dict:
        raise protocol_error("a tool call is not an object")
    function = tc.get("function") or {}
    index = tc.get("index", 0)
    if index is None:
        index = 0
    if type(function) is not dict or type(index) is not int:
        raise protocol_error("a tool call's 'function' or 'index' has the wrong type")
    call_id, name, arguments = tc.get("id"), function.get("name"), function.get("arguments")
    if not all(v is None or type(v) is str for v in (call_id, name, arguments)):
        raise protocol_error("a tool call's id, name or arguments is not a string")
    return ToolCallDelta(index=index, id=call_id, name=_fresh_name(index, name, names), arguments=arguments or "")


def _fresh_name(index: int, name: str | None, names: dict[int, str] | None) -> str | None:
    """`name` as a fragment, or None when it repeats the name seen so far for `index`."""
    if not name or names is None:
        return name
    seen = names.get(index)
    if seen == name:
        return None
    if seen is not None or len(names) < MAX_NAMED_CALLS:
        names[index] = name if seen is None else (seen + name)[:MAX_NAME]
    return name
