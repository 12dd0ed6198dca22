"""Agora's audio route: `POST /audio/chat/completions`.

Streams only. The reply is one chunk whose `delta.audio` carries an `id` and the
`transcript`, then the PCM (16 kHz, 16-bit, mono) in 40 ms frames of 1,280 bytes, each a
chunk with `delta.audio.data` (base64) and the same audio id, then `[DONE]`.

With AUDIO_TRANSCRIPT_FILE and AUDIO_PCM_FILE set, that clip is the reply (the upstream is
not called, as in Agora's sample). Otherwise the upstream's whole text answer is the
transcript and the PCM is a placeholder of matching length (see `bridge.audio_source`). A
`custom_metadata` chunk from the upstream is passed through first, untouched. The audio
request fields `modalities` and `audio` are not sent upstream: the upstream is asked for text.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from typing import Any

from aiohttp import web

from bridge import jsonutil
from bridge.audio_source import AudioClip, asynthesize, frames, load_clip
from bridge.inbound.openai_chat import SSE_HEADERS, accept_chat, collect_answer
from bridge.render.openai_chunks import DONE, ChunkEncoder, new_completion_id
from bridge.state import STATE, log_record

AUDIO_CLIP = web.AppKey("audio_clip", AudioClip)
AUDIO_REQUEST_FIELDS = ("modalities", "audio")
FRAMES_PER_WRITE = 25  # one second of audio per socket write


async def load_audio_clip(app: web.Application) -> None:
    """Start-up: read the configured transcript + PCM pair, if any."""
    settings = app[STATE].settings
    if settings.audio_transcript_file and settings.audio_pcm_file:
        app[AUDIO_CLIP] = await asyncio.to_thread(load_clip, settings.audio_transcript_file,
                                                  settings.audio_pcm_file)


async def handle_audio(request: web.Request) -> web.StreamResponse:
    """POST /audio/chat/completions."""
    chat = await accept_chat(request, stream_only="This route only streams audio: set \"stream\": true.")
    if isinstance(chat, web.Response):
        return chat
    state = request.app[STATE]
    record = log_record(request)
    clip = request.app.get(AUDIO_CLIP)
    metadata: list[dict[str, Any]] = []
    if clip is not None:
        record["audio_source"] = "file"
        transcript, pcm = clip.transcript, clip.pcm
    else:
        for name in AUDIO_REQUEST_FIELDS:
            chat.params.pop(name, None)
        state.bridge.prepare(chat)
        answer = await collect_answer(state, chat, record)
        if isinstance(answer, web.Response):
            return answer
        record["audio_source"] = "generated"
        transcript, pcm, metadata = answer.text, await asynthesize(answer.text), answer.metadata
    record["audio_ms"] = len(pcm) * 1000 // 32_000
    response = web.StreamResponse(headers=SSE_HEADERS)
    try:
        await response.prepare(request)
        for payload in metadata:
            await response.write(ChunkEncoder.raw(payload))
        await write_audio(response, AudioChunks(chat.model), transcript, pcm)
        await response.write_eof()
    except ConnectionError:
        record["client_cancel"] = True
    return response


async def write_audio(response: web.StreamResponse, chunks: AudioChunks, transcript: str, pcm: bytes) -> None:
    """The transcript chunk, the PCM frames (a second per write), then [DONE]."""
    await response.write(chunks.transcript(transcript))
    batch: list[bytes] = []
    for frame in frames(pcm):
        batch.append(chunks.data(frame))
        if len(batch) == FRAMES_PER_WRITE:
            await response.write(b"".join(batch))
            batch.clear()
    await response.write(b"".join(batch) + DONE)


class AudioChunks:
    """Encodes one reply's audio chunks, all with the same completion id and audio id."""

    def __init__(self, model: str) -> None:
        self.audio_id = f"audio_{uuid.uuid4().hex}"
        head = {"id": new_completion_id(), "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        self._open = b"data: " + jsonutil.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":{"audio":'
        self._data_open = self._open + b'{"id":"' + self.audio_id.encode() + b'","data":"'
        self._close = b'},"finish_reason":null}]}\n\n'

    def transcript(self, text: str) -> bytes:
        return self._open + jsonutil.dumps({"id": self.audio_id, "transcript": text}) + self._close

    def data(self, frame: bytes) -> bytes:
        return self._data_open + base64.b64encode(frame) + b'"}' + self._close
