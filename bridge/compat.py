"""Every private aiohttp and gunicorn hook the bridge uses, in one place.

The bridge leans on a few undocumented details of its server and its process manager; each
is named here and nowhere else, and `HOOKS` lists them so that a test (tests/test_compat.py)
fails the day an upgrade removes one, instead of the service misbehaving quietly:

- `LateHeadersResponse`: a StreamResponse whose status and headers go out with the first
  body write (`_send_headers_immediately`): one send fewer per streamed answer.
- `QuietRunner`: an AppRunner whose connections answer malformed HTTP with a JSON 400 that
  never quotes the request (`_make_server`, the server's `_loop` and `_kwargs`, and
  `RequestHandler.handle_error`): aiohttp's own answer and traceback quote the offending
  line, bridge token included.
- `WorkerHooks`: aiohttp's gunicorn worker with its start-up and heartbeat seams opened
  (`_run`, `_wait_next_notify`, `_notify_waiter_done`, gunicorn's base `init_signals`).
- `GreedySite`: a listening socket whose pending connections are all accepted each time it is
  readable (a SockSite filling in its `_server` and `_runner.server`): uvloop's server accepts
  one connection per loop pass, so under load a burst of callers waited seconds in the queue.
- `forward_sighup`: gunicorn's master passes SIGHUP on to its workers (`Arbiter.handle_hup`,
  `Arbiter.WORKERS`), which reload BRIDGE_AGENTS in place, instead of restarting them all (a
  new worker that failed to read a broken file would stop the whole server).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import socket
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.worker import GunicornWebWorker
from gunicorn.arbiter import Arbiter
from gunicorn.workers import base

from bridge import jsonutil
from bridge.log import get_logger

_REASONS = {400: "The HTTP request is malformed", 500: "Internal error; see the server log",
            504: "The request took too long"}


class LateHeadersResponse(web.StreamResponse):
    """A stream response whose status and headers travel with its first write."""

    _send_headers_immediately = False


class QuietRequestHandler(RequestHandler):
    """A connection handler whose protocol-level errors are JSON and never echo the request."""

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        problem = type(exc).__name__ if exc is not None else "error"
        get_logger().warning("bad_http_request", status=status, problem=problem, remote=request.remote)
        if request.writer.output_size > 0:
            raise ConnectionError("Response is sent already, cannot send another response with the error message")
        reason = _REASONS.get(status, "The request failed")
        body = {"error": {"message": f"{reason} ({problem}).", "type": "invalid_request_error" if status == 400
                          else "server_error", "param": None, "code": "bad_http_request" if status == 400 else None}}
        response = web.Response(status=status, body=jsonutil.dumps(body), content_type="application/json",
                                charset="utf-8")
        response.force_close()
        return response


class QuietServer(web.Server):
    """aiohttp's low-level server, building `QuietRequestHandler`s."""

    def __call__(self) -> RequestHandler:
        return QuietRequestHandler(self, loop=self._loop, **self._kwargs)


class QuietRunner(web.AppRunner):
    """An AppRunner whose server builds `QuietRequestHandler`s."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = QuietServer  # the same server, only its handler factory differs
        return server


ACCEPT_PER_PASS = 512  # connections accepted in one go; the rest wait one loop pass
ACCEPT_RETRY = 1.0  # seconds before accepting again when out of descriptors or memory
_OUT_OF_RESOURCES = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class _Listener:
    """What a site's `_server` must offer aiohttp (`close`): the socket, no longer read."""

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
        self.loop, self.sock = loop, sock

    def close(self) -> None:
        if self.sock.fileno() != -1:
            self.loop.remove_reader(self.sock.fileno())
            self.sock.close()


class GreedySite(web.SockSite):
    """A listening socket served by accepting every pending connection each time it is readable.

    Out of descriptors or memory (EMFILE, ENFILE, ENOBUFS, ENOMEM), accepting pauses for
    ACCEPT_RETRY seconds, as asyncio's own loop does: the socket stays readable, and retrying
    at once would spin and flood the log.
    """

    async def start(self) -> None:
        await web.BaseSite.start(self)
        self._loop = asyncio.get_running_loop()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._sock.setblocking(False)
        self._sock.listen(self._backlog)
        self._loop.add_reader(self._sock.fileno(), self._accept)
        self._server = _Listener(self._loop, self._sock)  # type: ignore[assignment]

    def _accept(self) -> None:
        for _ in range(ACCEPT_PER_PASS):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_RESOURCES:
                    self._pause(exc)
                    return
                continue  # that one connection failed (reset before it was accepted)
            self._serve(conn)

    def _serve(self, conn: socket.socket) -> None:
        conn.setblocking(False)
        if conn.family != socket.AF_UNIX:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        assert self._runner.server is not None
        task = self._loop.create_task(self._loop.connect_accepted_socket(self._runner.server, conn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _pause(self, exc: OSError) -> None:
        get_logger().warning("accept_paused", error=exc.strerror or type(exc).__name__, retry_in=ACCEPT_RETRY)
        self._loop.remove_reader(self._sock.fileno())
        self._loop.call_later(ACCEPT_RETRY, self._resume)

    def _resume(self) -> None:
        if self._sock.fileno() != -1:  # not stopped meanwhile
            self._loop.add_reader(self._sock.fileno(), self._accept)


class WorkerHooks(GunicornWebWorker):
    """aiohttp's gunicorn worker, its private seams turned into methods the bridge overrides.

    `serve` is the worker's life once its event loop runs; `early_signals` installs gunicorn's
    plain handlers before the loop runs; `wake` ends the wait for the next heartbeat.
    """

    def init_signals(self) -> None:
        self.early_signals()

    def early_signals(self) -> None:
        base.Worker.init_signals(self)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the loop's handler reloads (gunicorn: default, death)

    def loop_signals(self) -> None:
        """aiohttp's handlers on the running loop (they wake it at once)."""
        super().init_signals()

    async def _run(self) -> None:
        await self.serve()

    async def serve(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    async def next_heartbeat(self) -> None:
        await self._wait_next_notify()

    def wake(self) -> None:
        self._notify_waiter_done()


def forward_sighup(arbiter: Arbiter) -> None:
    """In gunicorn's master (`when_ready`): SIGHUP goes on to each worker."""

    def handle_hup() -> None:
        arbiter.log.info("Hang up: passing it on to the workers (they reload BRIDGE_AGENTS)")
        for pid in list(arbiter.WORKERS):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGHUP)

    arbiter.handle_hup = handle_hup


def missing_hooks(server: web.Server) -> list[str]:
    """The hooks above that this aiohttp and gunicorn no longer have (`server`: any live one)."""
    wanted: tuple[tuple[Any, str], ...] = (
        (web.StreamResponse(), "_send_headers_immediately"),
        (web.AppRunner, "_make_server"),
        (server, "_loop"),
        (server, "_kwargs"),
        (RequestHandler, "handle_error"),
        (GunicornWebWorker, "_run"),
        (GunicornWebWorker, "_wait_next_notify"),
        (GunicornWebWorker, "_notify_waiter_done"),
        (GunicornWebWorker, "init_signals"),
        (base.Worker, "init_signals"),
        (Arbiter, "handle_hup"),
        (Arbiter, "WORKERS"),
    )
    wanted += ((web.SockSite, "_sock"), (web.BaseSite, "_server"), (web.BaseSite, "_runner"),
               (web.BaseSite, "_backlog"))
    return [f"{getattr(owner, '__name__', type(owner).__name__)}.{name}" for owner, name in wanted
            if not hasattr(owner, name)]
