"""The tool-path attacks of bench/hostile.py: a model that calls a hostile tool, and hostile MCP servers.

    python bench/hostile_tools.py model --port P --tool NAME --arguments JSON
    python bench/hostile_tools.py mcp --port P --mode {ref,listing,result}
    python bench/hostile_tools.py huge --port P --megabytes 3

`model` is a fake OpenAI-compatible upstream: its first answer in a turn calls NAME with
JSON; once a `tool` message is in the history it answers in words. `mcp` is the raw
streamable-HTTP MCP server of tests/raw_mcp.py, made hostile:

- `ref`: one tool whose inputSchema has a `$ref` to a URL that never answers (on the same server);
- `listing`: 10,000 tools in pages of 1,000, renamed and announced (`list_changed`) every 200 ms;
- `result`: one tool whose every result is 50 MB of JSON.

`huge` is a fake upstream whose every answer is one chunk of MEGABYTES of markup the speech
filter has to look at (`<`, `[`, `![`, `* `, `|`, emphasis, links): what it costs the loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.support.raw_mcp import RawMcpServer, tool

BACKTRACKING = "^(a+)+$"
EVIL = "a" * 30 + "!"  # about 20 s for a backtracking regex against BACKTRACKING


def sse(chunks: list[dict[str, Any]]) -> bytes:
    base = {"id": "chatcmpl-hostile", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}
    events = [b"data: " + json.dumps({**base, **chunk}).encode() + b"\n\n" for chunk in chunks]
    return b"".join(events) + b"data: [DONE]\n\n"


def model_app(name: str, arguments: str) -> web.Application:
    call = sse([{"choices": [{"index": 0, "delta": {"role": "assistant", "tool_calls": [
        {"index": 0, "id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}]},
        "finish_reason": None}]}, {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}])
    words = sse([{"choices": [{"index": 0, "delta": {"role": "assistant", "content": "Done."}, "finish_reason": None}]},
                 {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])

    async def answer(request: web.Request) -> web.Response:
        messages = (await request.json())["messages"]
        body = words if messages[-1]["role"] == "tool" else call
        return web.Response(body=body, content_type="text/event-stream")

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", answer)
    return app


async def fifty_megabytes(ident: Any, params: dict[str, Any]) -> AsyncIterator[bytes]:
    yield b'{"jsonrpc":"2.0","id":' + json.dumps(ident).encode() + b',"result":{"content":[{"type":"text","text":"'
    chunk = b"x" * 65536
    for _ in range(800):
        yield chunk
    yield b'"}]}}'


async def serve_mcp(port: int, mode: str) -> None:
    server = RawMcpServer(port)
    if mode == "ref":
        server.pages = [[tool("fetch_schema", {"type": "object", "properties": {
            "q": {"$ref": f"http://127.0.0.1:{port}/never-answers"}}})]]
        server.other_hangs = True
    elif mode == "result":
        server.pages = [[tool("big_result")]]
        server.call_body = fifty_megabytes
    await server.start()
    print("listening", flush=True)
    generation = 0
    while True:
        await asyncio.sleep(0.2)
        if mode == "listing":
            generation += 1
            server.pages = [[tool(f"g{generation}_t{page}_{i}") for i in range(1000)] for page in range(10)]
            await server.notify_tools_changed()


def huge_app(megabytes: float) -> web.Application:
    unit = "<[![* |**b** [l](u) "
    text = unit * int(megabytes * 1024 * 1024 / len(unit))
    body = sse([{"choices": [{"index": 0, "delta": {"role": "assistant", "content": text}, "finish_reason": None}]},
                {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}])

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(body=body, content_type="text/event-stream")

    app = web.Application()
    app.router.add_post("/v1/chat/completions", answer)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("role", choices=["model", "mcp", "huge"])
    parser.add_argument("--megabytes", type=float, default=3.0)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--tool", default="")
    parser.add_argument("--arguments", default="{}")
    parser.add_argument("--mode", choices=["ref", "listing", "result"], default="ref")
    args = parser.parse_args()
    if args.role in ("model", "huge"):
        app = model_app(args.tool, args.arguments) if args.role == "model" else huge_app(args.megabytes)
        web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)
    else:
        asyncio.run(serve_mcp(args.port, args.mode))


if __name__ == "__main__":
    main()
