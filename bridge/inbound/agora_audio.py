"""Agora's audio route: `POST /audio/chat/completions`.

Streams only. The reply is one chunk whose `delta.audio` carries an `id` and the
`transcript`, then the PCM (16 kHz, 16-bit, mono) in 40 ms frames of 1,280 bytes, each a
chunk with `delta.audio.data` (base64) and the same audio id, then `[DONE]`.

With AUDIO_TRANSCRIPT_FILE and AUDIO_PCM_FILE set, that clip is the reply (the upstream is
not called, as in Agora's sample). Otherwise the upstream's whole text answer (through the
speech filter) is the transcript and the PCM is a placeholder of matching length (see
`bridge.inbound.audio_source`). A `custom_metadata` chunk from the upstream is passed through first,
untouched. The audio request fields `modalities` and `audio` are not sent upstream: the
upstream is asked for text.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from bridge.errors import UpstreamError
from bridge.events import Metadata
from bridge.inbound.audio_source import AudioClip, asynthesize, frames, load_clip
from bridge.inbound.openai.reply import accept_chat, failure_reply
from bridge.pipeline.chain import Overloaded
from bridge.process.state import STATE, log_of
from bridge.render.agora_audio import AudioChunks
from bridge.render.sse import DONE, SSEWriter, passthrough

AUDIO_CLIP = web.AppKey("audio_clip", AudioClip)
AUDIO_REQUEST_FIELDS = ("modalities", "audio")
FRAMES_PER_WRITE = 25  # one second of audio per socket write


async def load_audio_clip(app: web.Application) -> None:
    """Start-up: read the configured transcript + PCM pair, if any."""
    audio = app[STATE].settings.audio
    if audio.transcript_file and audio.pcm_file:
        app[AUDIO_CLIP] = await asyncio.to_thread(load_clip, audio.transcript_file, audio.pcm_file)


async def handle_audio(request: web.Request) -> web.StreamResponse:
    """POST /audio/chat/completions."""
    chat = await accept_chat(request, stream_only="This route only streams audio: set \"stream\": true.")
    if isinstance(chat, web.Response):
        return chat
    state = request.app[STATE]
    log = log_of(request)
    clip = request.app.get(AUDIO_CLIP)
    metadata: list[Metadata] = []
    if clip is not None:
        log.audio_source = "file"
        transcript, pcm = clip.transcript, clip.pcm
    else:
        for name in AUDIO_REQUEST_FIELDS:
            chat.params.pop(name, None)
        state.bridge.prepare(chat)
        try:
            answer = await state.voice.whole(state.bridge.stream(chat, log), chat, log,
                                             failure_text=state.settings.answer.openai_failure_text)
        except (UpstreamError, Overloaded) as exc:
            return failure_reply(exc, log)
        log.audio_source = "generated"
        transcript, pcm, metadata = answer.text, await asynthesize(answer.text), answer.metadata
    log.audio_ms = len(pcm) * 1000 // 32_000
    writer = SSEWriter(request)
    try:
        for chunk in metadata:
            await writer.write(passthrough(chunk))
        await write_audio(writer, AudioChunks(chat.model), transcript, pcm)
    except ConnectionError:
        log.client_cancel = True
    return writer.response or web.Response(status=499)


async def write_audio(writer: SSEWriter, chunks: AudioChunks, transcript: str, pcm: bytes) -> None:
    """The transcript chunk, the PCM frames (a second per write), then [DONE]."""
    await writer.write(chunks.transcript(transcript))
    batch: list[bytes] = []
    for frame in frames(pcm):
        batch.append(chunks.data(frame))
        if len(batch) == FRAMES_PER_WRITE:
            await writer.write(b"".join(batch))
            batch.clear()
    await writer.end(b"".join(batch) + DONE)
