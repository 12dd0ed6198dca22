"""POST /audio/chat/completions: framing of the transcript and the PCM, from a file or generated."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web

from bridge.inbound.audio_source import FRAME_BYTES, SAMPLE_RATE, speech_seconds, synthesize
from tests.support.app import log_lines, sdk_client
from tests.support.upstream import FakeUpstream, sse, text_chunks

TOKEN = "bridge-token-abcdef"
USER = [{"role": "user", "content": "Say something."}]


def env_for(fake: FakeUpstream, **extra: str) -> dict[str, str]:
    return {"OPENAI_BASE_URL": fake.url + "/v1", "OPENAI_API_KEY": "sk-upstream-0123456789",
            "BRIDGE_TOKENS": TOKEN, **extra}


async def audio_chunks(client: Any) -> list[Any]:
    async with sdk_client(str(client.make_url("/audio")), TOKEN) as oai:
        stream = await oai.chat.completions.create(model="m", messages=USER, stream=True)
        return [chunk async for chunk in stream]


def check_framing(chunks: list[Any]) -> tuple[str, bytes]:
    """Assert Agora's audio framing; return the transcript and the PCM it carried."""
    audio = [c.choices[0].delta.audio for c in chunks]
    assert all(a is not None for a in audio)
    assert len({a.id for a in audio}) == 1 and audio[0].id
    assert audio[0].transcript is not None and audio[0].data is None
    assert all(a.transcript is None and a.data for a in audio[1:])
    frames = [base64.b64decode(a.data) for a in audio[1:]]
    assert all(len(f) == FRAME_BYTES for f in frames[:-1])
    assert frames == [] or 0 < len(frames[-1]) <= FRAME_BYTES
    assert all(c.choices[0].finish_reason is None for c in chunks)
    return audio[0].transcript, b"".join(frames)


@pytest.fixture
def clip(tmp_path: Path) -> tuple[Path, Path, bytes]:
    pcm = os.urandom(FRAME_BYTES * 3 + 100)
    (tmp_path / "answer.txt").write_text("Hello from a file.\n", encoding="utf-8")
    (tmp_path / "answer.pcm").write_bytes(pcm)
    return tmp_path / "answer.txt", tmp_path / "answer.pcm", pcm


async def test_configured_clip_is_streamed_in_40ms_frames(bridge, fake_upstream, clip):
    transcript_file, pcm_file, pcm = clip
    client = await bridge(env_for(fake_upstream, AUDIO_TRANSCRIPT_FILE=str(transcript_file),
                                  AUDIO_PCM_FILE=str(pcm_file)))
    chunks = await audio_chunks(client)
    transcript, received = check_framing(chunks)
    assert transcript == "Hello from a file."
    assert received == pcm
    assert len(chunks) == 1 + 4
    assert len(base64.b64decode(chunks[-1].choices[0].delta.audio.data)) == 100
    assert fake_upstream.requests == []  # the clip is the answer, as in Agora's sample


async def test_upstream_answer_is_the_transcript_with_generated_pcm(bridge, fake_upstream):
    fake_upstream.reply = ["The parcel ", "arrives on ", "Monday."]
    client = await bridge(env_for(fake_upstream))
    transcript, received = check_framing(await audio_chunks(client))
    assert transcript == "The parcel arrives on Monday."
    assert received == synthesize(transcript)
    assert len(received) == round(5 * 0.4 * SAMPLE_RATE) * 2  # five words, 0.4 s each
    assert fake_upstream.last.path == "/v1/chat/completions"


async def test_audio_request_fields_are_not_sent_upstream(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with sdk_client(str(client.make_url("/audio")), TOKEN) as oai:
        stream = await oai.chat.completions.create(
            model="m", messages=USER, stream=True, temperature=0.2,
            extra_body={"modalities": ["text", "audio"], "audio": {"voice": "alloy", "format": "pcm16"}})
        assert [c async for c in stream]
    sent = fake_upstream.last.json()
    assert "modalities" not in sent and "audio" not in sent
    assert sent["temperature"] == 0.2


async def test_stream_ends_with_done_and_metadata_passes_through_first(bridge, fake_upstream):
    metadata = {"object": "chat.completion.custom_metadata", "choices": [], "metadata": {"interruptable": False}}

    async def with_metadata(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(sse([metadata, *text_chunks(["Hi."])]))
        return response

    fake_upstream.handler = with_metadata
    client = await bridge(env_for(fake_upstream))
    response = await client.post("/audio/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                                 json={"messages": USER, "stream": True})
    body = await response.read()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    events = body.split(b"\n\n")
    # byte for byte as the upstream sent it (json.dumps spacing included)
    assert events[0] == b'data: ' + json.dumps(metadata).encode()
    assert b'"transcript":"Hi."' in events[1]
    assert body.endswith(b"data: [DONE]\n\n")
    assert body.count(b"[DONE]") == 1


def test_generated_length_follows_the_text():
    assert speech_seconds("") == 0 and synthesize("") == b""
    assert speech_seconds("你好，欢迎光临。") == pytest.approx(6 * 0.22)
    assert speech_seconds("Hi") == 0.5  # never shorter than half a second
    assert len(synthesize("one two three four")) == round(1.6 * SAMPLE_RATE) * 2
    samples = memoryview(synthesize("one two three four")).cast("h")
    assert samples[0] == 0 and max(samples) <= 1000 and min(samples) >= -1000 and max(samples) > 900


@pytest.mark.parametrize("text, size, sha256", [
    ("Hi", 16_000, "33ba8243f33761b8eb81dc7a70500f934b0d85c4329b1681002ab40b2a5881b9"),
    ("one two three four", 51_200, "825f07958aa15d1ac4fbc480dc4f02b8c291eeff8473a8cdcd4d4ee29ce14ac1"),
    ("你好，欢迎光临。Welcome!", 55_040, "f2e749bd6f3c8308511dc8cb82f3358fcc04116752e822b0b9ac3e0be1f42f04"),
    ("word " * 5000, 9_600_000, "ae427013735bf4b39767abddaaaf2cbe6584ebce84432ec5ef55a8ef76923b7b"),
])
def test_generated_pcm_is_byte_for_byte_stable(text, size, sha256):
    pcm = synthesize(text)
    assert len(pcm) == size and hashlib.sha256(pcm).hexdigest() == sha256


@pytest.mark.parametrize("body", [
    {"messages": USER, "stream": False},
    {"messages": USER},
])
async def test_not_streaming_is_a_400(bridge, fake_upstream, body):
    client = await bridge(env_for(fake_upstream))
    response = await client.post("/audio/chat/completions", json=body, headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status == 400
    error = (await response.json())["error"]
    assert error["param"] == "stream" and '"stream": true' in error["message"]
    assert error["type"] == "invalid_request_error"
    assert fake_upstream.requests == []


async def test_sdk_sees_stream_false_as_a_bad_request(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    async with sdk_client(str(client.make_url("/audio")), TOKEN) as oai:
        with pytest.raises(openai.BadRequestError, match="only streams audio"):
            await oai.chat.completions.create(model="m", messages=USER, stream=False)


async def test_bad_json_is_a_400(bridge, fake_upstream):
    client = await bridge(env_for(fake_upstream))
    response = await client.post("/audio/chat/completions", data=b"{nope",
                                 headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    assert response.status == 400
    assert "not valid JSON" in (await response.json())["error"]["message"]


async def test_upstream_failure_is_an_openai_error(bridge, fake_upstream):
    async def refused(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "bad key"}}, status=401)

    fake_upstream.handler = refused
    client = await bridge(env_for(fake_upstream))
    async with sdk_client(str(client.make_url("/audio")), TOKEN) as oai:
        with pytest.raises(openai.APIStatusError) as caught:
            await oai.chat.completions.create(model="m", messages=USER, stream=True)
    assert caught.value.status_code == 502


async def test_upstream_failure_speaks_the_fallback_text(bridge, fake_upstream, log_stream):
    async def broken(request: web.Request) -> web.Response:
        return web.json_response({"error": {"message": "boom"}}, status=500)

    fake_upstream.handler = broken
    client = await bridge(env_for(fake_upstream, FALLBACK_TEXT="Sorry, try again later."))
    transcript, received = check_framing(await audio_chunks(client))
    assert transcript == "Sorry, try again later."
    assert received == synthesize(transcript)
    line = [line for line in log_lines(log_stream) if line["event"] == "request"][-1]
    assert line["failure_phrase"] is True and line["error_kind"] == "upstream_http"


async def test_a_long_answer_gets_all_its_audio(bridge, fake_upstream):
    fake_upstream.reply = ["word " * 100]  # 40 s of speech: generated in a worker thread
    client = await bridge(env_for(fake_upstream))
    transcript, received = check_framing(await audio_chunks(client))
    assert len(received) == 40 * SAMPLE_RATE * 2
    assert received == synthesize(transcript)


async def test_a_full_bridge_is_a_503(bridge, fake_upstream):
    arrived, release = asyncio.Event(), asyncio.Event()

    fake_upstream.hold(release, arrived)
    client = await bridge(env_for(fake_upstream, MAX_CONCURRENCY="1"))
    first = asyncio.create_task(audio_chunks(client))
    try:
        async with asyncio.timeout(10):  # a failure guard only
            await arrived.wait()
        response = await client.post("/audio/chat/completions", headers={"Authorization": f"Bearer {TOKEN}"},
                                     json={"messages": USER, "stream": True})
        assert response.status == 503 and response.headers["Retry-After"] == "1"
    finally:
        release.set()
    assert check_framing(await first)[0] == "Hello, world!"
