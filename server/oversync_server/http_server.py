"""The HTTP server: uvicorn with read deadlines, a request-head limit and a graceful shutdown.

uvicorn's HTTP protocols have only a keep-alive timer: a connection that sends nothing, half a
head, or a body one byte every few seconds is held forever, and a head beyond h11's buffer
limit (16 KiB) is answered with a bare 400 and a close that resets the connection before the
client reads it. `BoundedHttpToolsProtocol` (httptools, llhttp in C: the default) and
`BoundedH11Protocol` (pure Python, `http_parser: h11`) add the same bounds (`_Bounds`), per
connection:

* a head deadline (`header_read_timeout_seconds`): from the connection's start, and on a
  kept-alive connection from the first byte of the next head (the idle wait before it is the
  keep-alive timeout); a whole-message deadline, so trickling bytes does not extend it;
* a body deadline (`body_read_timeout_seconds`) from the end of the head to the end of the body;
* the head size limit (`max_request_header_bytes`, counted as the bytes arrive, before h11
  parses them) answered 431 `request_headers_too_large`.

A deadline that expires answers 408 `request_timeout` when part of a request has arrived and
nothing was answered yet, else closes quietly. Refusals are written straight to the transport
as `ErrorResponse` JSON, then the connection is closed gracefully: half-closed after the answer,
what else arrives is read and dropped for `LINGER_SECONDS`, then closed, so the client reads the
answer instead of a reset. An answer sent before the request body was read (413 from the body
limit) ends the same way.

`SyncServer` is uvicorn's server with a shutdown in the order the service needs: on
SIGTERM/SIGINT `runtime.begin_shutdown()` first (watch streams end, new sync requests answer
503), then stop accepting, close idle connections, and give in-flight requests
`shutdown_grace_seconds` to finish; what is left after that is cut off (connections closed, then
tasks cancelled, logged as an error: that work is lost). The lifespan shutdown then closes the
pool. The process exits 0 after a signal (uvicorn re-raises it, which would kill the process
before the `serve` command stops its local PostgreSQL).

Each protocol tells where a request stands: h11 through its connection state, httptools through
its parser callbacks (a head is read until `on_headers_complete`, a body until
`on_message_complete`). `serve` names the protocol class, so what is installed never switches
parsers behind its back; the event loop is uvloop (both are in the `server` extra).
`serve_worker` runs the same server on a socket shared by the workers of `serve --workers`
(`oversync_server.workers`).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import FrameType
from typing import Any, ClassVar, Literal

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import HANDLED_SIGNALS

from oversync_server import gc_tuning
from oversync_server.config import ServiceConfig
from oversync_server.engine.errors import SyncError
from oversync_server.errors import error_json
from oversync_server.middleware import CORS_HEADERS, cors_headers
from oversync_server.runtime import SyncRuntime

log = logging.getLogger("oversync_server")

# How long a refused connection is drained (read and dropped) before it is closed.
LINGER_SECONDS = 2.0
# After the shutdown grace, how long closed connections get to end their handlers before the
# remaining tasks are cancelled.
CUTOFF_SECONDS = 1.0
# The head limit when `max_request_header_bytes` is 0: h11's own buffer limit, for both parsers.
H11_HEAD_CAP = 1024 * 1024
# Pending connections a shared listening socket queues for its workers.
LISTEN_BACKLOG = 2048
_HEAD_END = re.compile(rb"\n\r?\n")  # h11's blank line


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """The per-connection limits (0 = off), from the service configuration."""

    max_header_bytes: int
    header_timeout: float
    body_timeout: float
    # the CORS headers of a refusal (sent before the request's Origin is known)
    cors: tuple[tuple[bytes, bytes], ...] = tuple(CORS_HEADERS)

    @classmethod
    def of(cls, config: ServiceConfig) -> HttpLimits:
        return cls(
            max_header_bytes=config.max_request_header_bytes or H11_HEAD_CAP,
            header_timeout=config.header_read_timeout_seconds,
            body_timeout=config.body_read_timeout_seconds,
            cors=tuple(cors_headers(config.cors_allowed_origins, None)),
        )


def _response_bytes(
    error: SyncError,
    default_headers: list[tuple[bytes, bytes]],
    cors: tuple[tuple[bytes, bytes], ...],
) -> bytes:
    """`error` as a complete HTTP/1.1 response that closes the connection."""
    response = error_json(error)
    status = response.status_code
    phrase = http.HTTPStatus(status).phrase
    headers = [
        *default_headers,
        *response.raw_headers,
        *cors,
        (b"connection", b"close"),
    ]
    head = [f"HTTP/1.1 {status} {phrase}".encode("ascii")]
    head.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(head) + b"\r\n\r\n" + bytes(response.body)


class _Bounds:
    """The deadlines, the head limit and the graceful refusal, shared by both HTTP parsers.

    Mixed into a uvicorn protocol (listed after it); the protocol class tells where a request
    stands (`_awaiting_head`, `_reading_body`) and moves the deadlines along with it."""

    limits: ClassVar[HttpLimits] = HttpLimits(32 * 1024, 30.0, 60.0)
    # provided by the uvicorn protocol
    transport: Any
    loop: Any
    cycle: Any
    flow: Any
    server_state: Any
    _head_timer: asyncio.TimerHandle | None
    _body_timer: asyncio.TimerHandle | None
    _linger_timer: asyncio.TimerHandle | None
    _head_bytes: int
    _head_tail: bytes
    _refused: bool

    def _init_bounds(self) -> None:
        self._head_timer = self._body_timer = self._linger_timer = None
        self._head_bytes = 0  # bytes of the head being read
        self._head_tail = b""  # its last bytes (a blank line may straddle two reads)
        self._refused = False  # answered and draining: drop whatever arrives

    def _awaiting_head(self) -> bool:
        raise NotImplementedError

    def _reading_body(self) -> bool:
        raise NotImplementedError

    def _unset_keepalive(self) -> None:
        raise NotImplementedError

    # ------------------------------------------------------------------ deadlines
    def _head_arrives(self, data: bytes) -> bool:
        """Account `data` of a head being read; False when it was refused (too large)."""
        if self._head_timer is None:  # the first byte after a keep-alive wait
            self._arm_head_deadline()
        if self._head_too_large(data):
            limit = self.limits.max_header_bytes
            self._refuse(
                SyncError("request_headers_too_large", f"request headers exceed {limit} bytes")
            )
            return False
        return True

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._head_bytes, self._head_tail = 0, b""

    def _body_begins(self) -> None:
        if self._body_timer is None and self.limits.body_timeout:
            self._body_timer = self.loop.call_later(self.limits.body_timeout, self._body_expired)

    def _body_done(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _arm_head_deadline(self) -> None:
        if self.limits.header_timeout and self._head_timer is None:
            self._head_timer = self.loop.call_later(self.limits.header_timeout, self._head_expired)

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _connection_ends(self) -> None:
        self._cancel_timers()
        if self._linger_timer is not None:
            self._linger_timer.cancel()
            self._linger_timer = None

    def _head_expired(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or not self._awaiting_head():
            return
        if self._head_bytes == 0:  # nothing of a request: nobody to answer
            self._cancel_timers()
            self.transport.close()
            return
        timeout = self.limits.header_timeout
        self._refuse(
            SyncError("request_timeout", f"request headers not received within {timeout:g}s")
        )

    def _body_expired(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and self.cycle.response_started:
            self._refuse(None)
            return
        timeout = self.limits.body_timeout
        self._refuse(SyncError("request_timeout", f"request body not received within {timeout:g}s"))

    def _head_too_large(self, data: bytes) -> bool:
        """Count `data` into the head being read; whether the head exceeds the limit."""
        seen = self._head_tail + data
        end = _HEAD_END.search(seen)
        if end is not None:  # the head ends in this read
            size = self._head_bytes - len(self._head_tail) + end.end()
        else:
            size = self._head_bytes + len(data)
            self._head_bytes, self._head_tail = size, seen[-3:]
        limit = self.limits.max_header_bytes
        return bool(limit) and size > limit

    def _answered_early(self, cycle: Any) -> None:
        """After a response: one sent before the request body was read (e.g. 413) ends the
        connection; the client reads the answer, the rest of its body is dropped."""
        if cycle is self.cycle and not self.transport.is_closing() and self._reading_body():
            self._refuse(None)

    # ------------------------------------------------------------------ refusal
    def _refuse(self, error: SyncError | None) -> None:
        """Answer `error` (unless something was answered already) and close gracefully."""
        self._cancel_timers()
        self._unset_keepalive()
        cycle = self.cycle
        answered = cycle is not None and cycle.response_started
        if cycle is not None and not cycle.response_complete:
            cycle.disconnected = True  # the application's receive() sees a disconnect
            cycle.message_event.set()
        if self.transport.is_closing():
            return
        if error is not None and not answered:
            response = _response_bytes(error, self.server_state.default_headers, self.limits.cors)
            self.transport.write(response)
        self._refused = True
        self.flow.resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)


class BoundedH11Protocol(H11Protocol, _Bounds):
    """uvicorn's h11 protocol (pure Python) with the bounds."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_bounds()

    def _awaiting_head(self) -> bool:
        return self.conn.their_state is h11.IDLE

    def _reading_body(self) -> bool:
        return self.conn.their_state is h11.SEND_BODY

    def _unset_keepalive(self) -> None:
        self._unset_keepalive_if_required()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection_ends()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._awaiting_head() and not self._head_arrives(data):
            return
        super().data_received(data)
        self._follow_request()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        self._follow_request()
        self._answered_early(cycle)

    def shutdown(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().shutdown()

    def _follow_request(self) -> None:
        """Move the deadlines along with h11's state: head, body, or neither."""
        state = self.conn.their_state
        if state is not h11.IDLE:
            self._head_done()
        if state is h11.SEND_BODY:
            self._body_begins()
        else:
            self._body_done()


class BoundedHttpToolsProtocol(HttpToolsProtocol, _Bounds):
    """uvicorn's httptools protocol (llhttp, C) with the bounds, hooked on the parser's
    callbacks: a head is read from the first byte until `on_headers_complete`, a body from
    there until `on_message_complete`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_bounds()
        self._phase: Literal["head", "body", "done"] = "head"

    def _awaiting_head(self) -> bool:
        return self._phase == "head"

    def _reading_body(self) -> bool:
        return self._phase == "body"

    def _unset_keepalive(self) -> None:
        self._unset_keepalive_if_required()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection_ends()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._phase == "done" and (self.cycle is None or self.cycle.response_complete):
            self._phase = "head"  # the next request begins
        if self._awaiting_head() and not self._head_arrives(data):
            return
        super().data_received(data)

    def on_headers_complete(self) -> None:
        self._head_done()
        self._phase = "body"
        self._body_begins()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._body_done()
        self._phase = "done"
        super().on_message_complete()

    def on_response_complete(self) -> None:
        cycle = self.cycle
        super().on_response_complete()
        self._answered_early(cycle)

    def shutdown(self) -> None:
        if self._refused:
            self.transport.close()
            return
        super().shutdown()


def protocol_class(limits: HttpLimits, parser: str = "httptools") -> type[asyncio.Protocol]:
    """The protocol class uvicorn instantiates per connection, bound to `limits`: httptools
    (llhttp, C) unless `parser` is "h11" (pure Python)."""
    base: type[asyncio.Protocol] = (
        BoundedH11Protocol if parser == "h11" else BoundedHttpToolsProtocol
    )
    return type(base.__name__, (base,), {"limits": limits})


class SyncServer(uvicorn.Server):
    """uvicorn's server, shutting down in the service's order (see the module docstring)."""

    signals: tuple[int, ...] = HANDLED_SIGNALS

    def __init__(
        self,
        config: uvicorn.Config,
        runtime: SyncRuntime,
        *,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(config)
        self.runtime = runtime
        self.on_started = on_started

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            gc_tuning.tune()
        if self.started and self.on_started is not None:
            self.on_started()

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        # Follows uvicorn's Server.shutdown; the differences: the runtime's shutdown begins
        # first, and the grace ends by closing connections before cancelling tasks.
        self.runtime.begin_shutdown()
        log.info("shutting down: new sync requests answer 503")
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        await asyncio.sleep(0.1)
        grace = self.runtime.config.shutdown_grace_seconds
        if not await self._drained(grace):
            left = len(self.server_state.connections)
            log.warning("shutdown grace of %gs exceeded: closing %d connection(s)", grace, left)
            for connection in list(self.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.close()
            if not await self._drained(CUTOFF_SECONDS):
                tasks = list(self.server_state.tasks)
                log.error("cancelling %d request(s) still running after the grace", len(tasks))
                for task in tasks:
                    task.cancel(msg="shutdown grace exceeded")
                await asyncio.sleep(0)
        if not self.force_exit:
            await self.lifespan.shutdown()

    async def _drained(self, timeout: float) -> bool:
        """Wait until every connection and request task is done; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        state = self.server_state
        while (state.connections or state.tasks) and not self.force_exit:
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """uvicorn's signal capture, without re-raising the signal once the server stopped."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in self.signals}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            log.info("received %s", signal.Signals(sig).name)
        super().handle_exit(sig, frame)


def _uvicorn_config(app: Any, runtime: SyncRuntime, log_level: str, **where: Any) -> uvicorn.Config:
    config = runtime.config
    limits = HttpLimits.of(config)
    return uvicorn.Config(
        app,
        log_level=log_level,
        # behind a reverse proxy (docs/server/deployment.md)
        root_path=config.root_path,
        proxy_headers=config.proxy_headers,
        forwarded_allow_ips=config.forwarded_allow_ips,
        access_log=False,  # observability logs one line per request, with its reason
        http=protocol_class(limits, config.http_parser),
        loop="auto",  # uvloop (the server extra installs it)
        # uvicorn annotates int; the value only reaches loop.call_later, which takes a float
        timeout_keep_alive=config.keep_alive_timeout_seconds,  # type: ignore[arg-type]
        # our own head check runs first; h11's buffer limit sits just above it
        h11_max_incomplete_event_size=(limits.max_header_bytes + 1024)
        if limits.max_header_bytes
        else H11_HEAD_CAP,
        **where,
    )


def serve(app: Any, runtime: SyncRuntime, *, host: str, port: int, log_level: str) -> None:
    """Run `app` until SIGTERM/SIGINT, with the runtime configuration's HTTP limits."""
    SyncServer(_uvicorn_config(app, runtime, log_level, host=host, port=port), runtime).run()


def bind(host: str, port: int) -> socket.socket:
    """The listening socket a supervisor shares with its workers (`oversync_server.workers`)."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    return socket.create_server((host, port), family=family, backlog=LISTEN_BACKLOG)


def serve_worker(
    app: Any,
    runtime: SyncRuntime,
    sock: socket.socket,
    *,
    log_level: str,
    on_started: Callable[[], None],
) -> None:
    """Serve `app` on the shared `sock` until SIGTERM (a worker of `serve --workers N`: the
    supervisor turns Ctrl-C into SIGTERM, so SIGINT is left to it); `on_started` once the
    application started and the socket is served."""
    server = SyncServer(_uvicorn_config(app, runtime, log_level), runtime, on_started=on_started)
    server.signals = (signal.SIGTERM,)
    server.run(sockets=[sock])
