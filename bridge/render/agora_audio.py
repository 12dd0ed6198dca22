"""Agora's audio reply as SSE chunks: a transcript chunk, then the PCM in 40 ms frames."""

from __future__ import annotations

import base64
import time

from bridge import jsonutil
from bridge.render.ids import audio_id, completion_id


class AudioChunks:
    """Encodes one reply's audio chunks, all with the same completion id and audio id."""

    def __init__(self, model: str) -> None:
        self.audio_id = audio_id()
        head = {"id": completion_id(), "object": "chat.completion.chunk", "created": int(time.time()),
                "model": model}
        self._open = b"data: " + jsonutil.dumps(head)[:-1] + b',"choices":[{"index":0,"delta":{"audio":'
        self._data_open = self._open + b'{"id":"' + self.audio_id.encode() + b'","data":"'
        self._close = b'},"finish_reason":null}]}\n\n'

    def transcript(self, text: str) -> bytes:
        return self._open + jsonutil.dumps({"id": self.audio_id, "transcript": text}) + self._close

    def data(self, frame: bytes) -> bytes:
        return self._data_open + base64.b64encode(frame) + b'"}' + self._close
