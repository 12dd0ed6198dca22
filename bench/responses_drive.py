"""The voice frameworks' Responses clients, driven against a running bridge (run by responses_clients.py).

Runs inside the clients' own venv (livekit-agents with its OpenAI plugin, pipecat-ai), never
imports the bridge, and prints one JSON line per client: the two answers it got, whether its
second turn went out as new items plus `previous_response_id`, and any error.

    python bench/responses_drive.py --host 127.0.0.1:8080 --token bench-token
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

QUESTIONS = ("My name is Ann.", "What is my name?")
SYSTEM = "You are terse."
MODEL = "gpt-4o-mini"  # a model neither framework sends reasoning settings for


async def livekit(host: str, token: str, websocket: bool) -> dict[str, Any]:
    """livekit.plugins.openai.responses.LLM: over its WebSocket (the default) or over HTTP."""
    from livekit.agents import llm
    from livekit.agents.utils import http_context
    from livekit.plugins.openai.responses import LLM

    session = http_context._new_session_ctx()  # what an agent job sets up
    base_url = f"ws://{host}/v1/responses" if websocket else f"http://{host}/v1"
    model = LLM(model=MODEL, api_key=token, base_url=base_url, use_websocket=websocket)
    ctx = llm.ChatContext()
    ctx.add_message(role="system", content=SYSTEM)
    texts, incremental = [], []
    try:
        for question in QUESTIONS:
            ctx.add_message(role="user", content=question)
            stream = model.chat(chat_ctx=ctx)
            incremental.append("previous_response_id" in stream._extra_kwargs)
            text = ""
            async with stream:
                async for chunk in stream:
                    if chunk.delta is not None and chunk.delta.content:
                        text += chunk.delta.content
            texts.append(text)
            ctx.add_message(role="assistant", content=text)
    finally:
        await model.aclose()
        await session().close()
    return {"texts": texts, "incremental": incremental}


async def pipecat(host: str, token: str, websocket: bool) -> dict[str, Any]:
    """Pipecat's OpenAIResponsesLLMService (WebSocket) or OpenAIResponsesHttpLLMService, in a pipeline."""
    from pipecat.frames.frames import EndFrame, LLMContextFrame, LLMFullResponseEndFrame, LLMTextFrame
    from pipecat.pipeline.pipeline import Pipeline
    from pipecat.pipeline.runner import PipelineRunner
    from pipecat.pipeline.task import PipelineTask
    from pipecat.processors.aggregators.llm_context import LLMContext
    from pipecat.processors.frame_processor import FrameDirection, FrameProcessor
    from pipecat.services.openai.responses.llm import OpenAIResponsesHttpLLMService, OpenAIResponsesLLMService

    class Collect(FrameProcessor):
        def __init__(self) -> None:
            super().__init__()
            self.parts: list[str] = []
            self.done = asyncio.Event()

        async def process_frame(self, frame: Any, direction: FrameDirection) -> None:
            await super().process_frame(frame, direction)
            if isinstance(frame, LLMTextFrame):
                self.parts.append(frame.text)
            elif isinstance(frame, LLMFullResponseEndFrame):
                self.done.set()
            await self.push_frame(frame, direction)

    settings = OpenAIResponsesLLMService.Settings(model=MODEL, system_instruction=SYSTEM)
    service: Any = (OpenAIResponsesLLMService(api_key=token, ws_url=f"ws://{host}/v1/responses", settings=settings)
                    if websocket else
                    OpenAIResponsesHttpLLMService(api_key=token, base_url=f"http://{host}/v1", settings=settings))
    collect = Collect()
    task = PipelineTask(Pipeline([service, collect]))
    runner = asyncio.ensure_future(PipelineRunner(handle_sigint=False).run(task))
    context = LLMContext()
    texts, incremental = [], []
    try:
        for question in QUESTIONS:
            context.add_message({"role": "user", "content": question})
            incremental.append(getattr(service, "_previous_response_id", None) is not None)
            collect.parts.clear()
            collect.done.clear()
            await task.queue_frame(LLMContextFrame(context))
            async with asyncio.timeout(30):
                await collect.done.wait()
            texts.append("".join(collect.parts))
            context.add_message({"role": "assistant", "content": texts[-1]})
    finally:
        await task.queue_frame(EndFrame())
        async with asyncio.timeout(30):
            await runner
    return {"texts": texts, "incremental": incremental}


CLIENTS: dict[str, Callable[[str, str], Awaitable[dict[str, Any]]]] = {
    "livekit-websocket": lambda host, token: livekit(host, token, True),
    "livekit-http": lambda host, token: livekit(host, token, False),
    "pipecat-websocket": lambda host, token: pipecat(host, token, True),
    "pipecat-http": lambda host, token: pipecat(host, token, False),
}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", required=True, help="host:port of the bridge")
    parser.add_argument("--token", required=True)
    parser.add_argument("--clients", default=",".join(CLIENTS))
    args = parser.parse_args()
    for name in args.clients.split(","):
        try:
            result = {"client": name, **await CLIENTS[name](args.host, args.token)}
        except Exception as exc:  # a client that fails is reported, and the next one still runs
            result = {"client": name, "error": f"{type(exc).__name__}: {exc}",
                      "trace": traceback.format_exc(limit=6)[-1500:]}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
