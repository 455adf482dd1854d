"""A minimal HTTP/1.1 keep-alive client, blocking and asyncio, for a lean load generator.

httpx costs about 1.2 ms of client CPU per request (3.8 ms per 1-row bundle), as much as the
server it measures: on a 2-core machine the load generator would take a core from the server.
This client writes the request bytes itself and reads a Content-Length or chunked response,
about a tenth of that. It speaks only to the local benchmark server: no TLS, no redirects,
no proxies. An idle connection the server closed is reopened once, before any response byte.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Mapping
from urllib.parse import urlencode, urlsplit


class HttpError(RuntimeError):
    def __init__(self, method: str, path: str, status: int, body: bytes) -> None:
        super().__init__(f"{method} {path}: {status} {body[:300].decode(errors='replace')}")
        self.status = status
        self.body = body


def _target(path: str, params: Mapping[str, int | str] | None) -> str:
    return f"{path}?{urlencode(params)}" if params else path


def _request(method: str, target: str, head: bytes, body: bytes | None) -> bytes:
    length = b"" if body is None else b"Content-Type: application/json\r\n"
    length += f"Content-Length: {len(body or b'')}\r\n\r\n".encode()
    return f"{method} {target} HTTP/1.1\r\n".encode() + head + length + (body or b"")


def _head_bytes(host: str, headers: Mapping[str, str]) -> bytes:
    lines = [f"Host: {host}", *(f"{name}: {value}" for name, value in headers.items())]
    return ("\r\n".join(lines) + "\r\n").encode()


def _parse_head(lines: list[bytes]) -> tuple[int, dict[bytes, bytes]]:
    status = int(lines[0].split(b" ", 2)[1])
    fields: dict[bytes, bytes] = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        fields[name.strip().lower()] = value.strip()
    return status, fields


def _framing(status: int, fields: dict[bytes, bytes]) -> tuple[bool, int | None, bool]:
    """(chunked, content length or None, keep the connection open); no body on 1xx/204/304."""
    keep = fields.get(b"connection", b"").lower() != b"close"
    if status < 200 or status in (204, 304):
        return False, 0, keep
    chunked = fields.get(b"transfer-encoding", b"").lower() == b"chunked"
    length = fields.get(b"content-length")
    return (
        chunked,
        None if length is None else int(length),
        keep and (chunked or length is not None),
    )


class Connection:
    """Blocking keep-alive connection to `base` (http://host:port) with fixed headers."""

    def __init__(self, base: str, headers: Mapping[str, str], timeout: float = 300) -> None:
        parts = urlsplit(base)
        self.address = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.head = _head_bytes(parts.netloc, headers)
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.reader: io.BufferedReader | None = None

    def _open(self) -> None:
        self.sock = socket.create_connection(self.address, timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = self.sock.makefile("rb")

    def close(self) -> None:
        if self.sock is not None and self.reader is not None:
            self.reader.close()
            self.sock.close()
        self.sock = self.reader = None

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        params: Mapping[str, int | str] | None = None,
    ) -> tuple[int, bytes]:
        data = _request(method, _target(path, params), self.head, body)
        for attempt in (0, 1):
            reused = self.sock is not None
            if not reused:
                self._open()
            assert self.sock is not None
            assert self.reader is not None
            try:
                self.sock.sendall(data)
                first = self.reader.readline()
            except (ConnectionError, BrokenPipeError):
                first = b""
            if first:
                break
            self.close()
            if not reused or attempt:
                raise ConnectionError(f"{method} {path}: the server closed the connection")
        reader = self.reader
        assert reader is not None
        lines = [first.rstrip(b"\r\n")]
        while line := reader.readline().rstrip(b"\r\n"):
            lines.append(line)
        status, fields = _parse_head(lines)
        chunked, length, keep = _framing(status, fields)
        if chunked:
            parts = []
            while size := int(reader.readline().split(b";", 1)[0], 16):
                parts.append(reader.read(size))
                reader.readline()
            while reader.readline() not in (b"\r\n", b"\n", b""):
                pass  # trailers
            content = b"".join(parts)
        elif length is not None:
            content = reader.read(length)
            if len(content) != length:
                raise ConnectionError(f"{method} {path}: truncated response")
        else:
            content = reader.read()
        if not keep:
            self.close()
        return status, content


class AsyncConnection:
    """The same on asyncio streams."""

    def __init__(self, base: str, headers: Mapping[str, str]) -> None:
        parts = urlsplit(base)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.head = _head_bytes(parts.netloc, headers)
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def close(self) -> None:
        if self.streams is not None:
            _, writer = self.streams
            self.streams = None
            writer.close()
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass

    async def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        params: Mapping[str, int | str] | None = None,
    ) -> tuple[int, bytes]:
        data = _request(method, _target(path, params), self.head, body)
        for attempt in (0, 1):
            reused = self.streams is not None
            if self.streams is None:
                self.streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self.streams
            try:
                writer.write(data)
                first = await reader.readline()
            except ConnectionError:
                first = b""
            if first:
                break
            await self.close()
            if not reused or attempt:
                raise ConnectionError(f"{method} {path}: the server closed the connection")
        lines = [first.rstrip(b"\r\n")]
        while line := (await reader.readline()).rstrip(b"\r\n"):
            lines.append(line)
        status, fields = _parse_head(lines)
        chunked, length, keep = _framing(status, fields)
        if chunked:
            parts = []
            while size := int((await reader.readline()).split(b";", 1)[0], 16):
                parts.append(await reader.readexactly(size))
                await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            content = b"".join(parts)
        elif length is not None:
            content = await reader.readexactly(length)
        else:
            content = await reader.read()
        if not keep:
            await self.close()
        return status, content
