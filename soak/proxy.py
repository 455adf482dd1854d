"""A fault-injecting HTTP/1.1 proxy (asyncio, in a thread) between devices and servers.

One request per connection: the proxy reads the request head and its ``Content-Length`` body,
sends it upstream with ``Connection: close`` (so the upstream's end of the response is the end
of the connection) to the next live server, and relays the answer as it comes (a
``/sync/watch`` stream stays open through it). Per request, with the configured
probabilities, it instead:

- ``drop_request``: closes the client connection without forwarding;
- ``drop_response``: forwards, reads the whole answer (the server processed it), closes;
- ``delay``: waits up to ``max_delay`` seconds before forwarding;
- ``cut_body``: forwards the head and half of the body, then closes both sides;
- ``duplicate``: sends the request upstream twice (the first answer is discarded).
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

PROXY_FAULTS = ("drop_request", "drop_response", "delay", "cut_body", "duplicate")
_MAX_HEAD = 64 * 1024
_UPSTREAM_TIMEOUT = 60.0  # of one read from upstream (the watch stream sends heartbeats)
_READ_SIZE = 64 * 1024


@dataclass
class ProxyFaults:
    """Per-request probabilities of each fault (0 disables it); ``enabled`` switches all."""

    rates: dict[str, float] = field(default_factory=dict)
    max_delay: float = 1.5
    enabled: bool = True


class FaultProxy:
    def __init__(self, backends: Sequence[int], faults: ProxyFaults, seed: int) -> None:
        self.backends = list(backends)
        self.faults = faults
        self.counts: Counter[str] = Counter()
        self.in_flight_commits: Counter[int] = Counter()  # backend port -> commits in flight
        self._rng = random.Random(f"proxy/{seed}")
        self._next = 0
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self.port = 0

    def start(self) -> FaultProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(timeout=10)
        return self

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in list(self._handlers):  # open watch streams never end by themselves
                task.cancel()
            await asyncio.gather(*self._handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _listen(self) -> int:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _choose_fault(self) -> str | None:
        if not self.faults.enabled:
            return None
        roll = self._rng.random()
        for name in PROXY_FAULTS:
            rate = self.faults.rates.get(name, 0.0)
            if roll < rate:
                return name
            roll -= rate
        return None

    async def _connect(self) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
        """The next backend that accepts a connection (round robin)."""
        error: OSError | None = None
        for _ in range(len(self.backends)):
            port = self.backends[self._next % len(self.backends)]
            self._next += 1
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                return port, reader, writer
            except OSError as exc:
                error = exc
        raise error or OSError("no backend")

    async def _exchange(
        self, request: bytes, path: bytes, relay: asyncio.StreamWriter | None
    ) -> None:
        """Send ``request`` upstream; its answer goes to ``relay`` as it comes (None: dropped)."""
        port, reader, writer = await self._connect()
        commit = path.endswith(b"/commit")
        if commit:
            self.in_flight_commits[port] += 1
        try:
            writer.write(request)
            await writer.drain()
            while chunk := await asyncio.wait_for(reader.read(_READ_SIZE), _UPSTREAM_TIMEOUT):
                if relay is not None:
                    relay.write(chunk)
                    await relay.drain()
        finally:
            if commit:
                self.in_flight_commits[port] -= 1
            writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._serve_one(reader, writer)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            pass
        except asyncio.CancelledError:  # the proxy stops
            pass
        finally:
            self._handlers.discard(task)
            writer.close()

    async def _serve_one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _MAX_HEAD:
            return
        request_line, *header_lines = head[:-4].split(b"\r\n")
        length = 0
        kept = []
        for line in header_lines:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"content-length":
                length = int(value.strip())
            if lowered not in (b"connection", b"keep-alive"):
                kept.append(line)
        body = await reader.readexactly(length) if length else b""
        upstream_head = b"\r\n".join([request_line, *kept, b"Connection: close"]) + b"\r\n\r\n"
        request = upstream_head + body
        path = request_line.split(b" ")[1].split(b"?")[0] if b" " in request_line else b""
        fault = self._choose_fault()
        if fault == "cut_body" and not body:
            fault = None
        if fault in ("drop_response", "duplicate") and path.endswith(b"/watch"):
            fault = "drop_request"  # a stream has no end to wait for before dropping it
        if fault:
            self.counts[fault] += 1
        if fault == "drop_request":
            return
        if fault == "delay":
            await asyncio.sleep(self._rng.uniform(0.05, self.faults.max_delay))
        if fault == "cut_body":
            _port, _reader, upstream = await self._connect()
            upstream.write(upstream_head + body[: len(body) // 2])
            await upstream.drain()
            upstream.close()
            return
        if fault == "duplicate":
            await self._exchange(request, path, None)
        await self._exchange(request, path, None if fault == "drop_response" else writer)
