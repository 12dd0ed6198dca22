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

from bridge.config import AudioSettings
from bridge.events import Metadata
from bridge.inbound.audio_source import AudioClip, asynthesize, frames, load_clip
from bridge.inbound.context import log_of
from bridge.inbound.openai.reply import accept_chat
from bridge.pipeline import Policy
from bridge.render.agora_audio import AudioChunks
from bridge.render.errors import OPENAI, caller_left
from bridge.render.sse import DONE, SSEWriter, passthrough

AUDIO_REQUEST_FIELDS = ("modalities", "audio")
FRAMES_PER_WRITE = 25  # one second of audio per socket write
SPOKEN = Policy(OPENAI)


class Clips:
    """The configured clips (AUDIO_TRANSCRIPT_FILE + AUDIO_PCM_FILE), each read once, in a worker thread."""

    def __init__(self) -> None:
        self._clips: dict[tuple[str, str], AudioClip] = {}

    async def get(self, audio: AudioSettings) -> AudioClip | None:
        if not (audio.transcript_file and audio.pcm_file):
            return None
        key = (audio.transcript_file, audio.pcm_file)
        clip = self._clips.get(key)
        if clip is None:
            clip = self._clips[key] = await asyncio.to_thread(load_clip, *key)
        return clip


CLIPS = web.AppKey("audio_clips", Clips)


async def handle_audio(request: web.Request) -> web.StreamResponse:
    """POST /audio/chat/completions."""
    agent, chat = await accept_chat(request, stream_only="This route only streams audio: set \"stream\": true.")
    log = log_of(request)
    clip = await request.app[CLIPS].get(agent.settings.audio)
    metadata: list[Metadata] = []
    if clip is not None:
        log.audio_source = "file"
        transcript, pcm = clip.transcript, clip.pcm
    else:
        for name in AUDIO_REQUEST_FIELDS:
            chat.params.pop(name, None)
        answer = await agent.pipeline.whole(chat, log, SPOKEN)
        log.audio_source = "generated"
        transcript, pcm, metadata = answer.text, await asynthesize(answer.text), answer.metadata
    log.audio_ms = len(pcm) * 1000 // 32_000
    writer = SSEWriter(request)
    try:
        for chunk in metadata:
            await writer.write(passthrough(chunk))
        await write_audio(writer, AudioChunks(chat.model), transcript, pcm)
    except ConnectionError:
        caller_left(log)
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
