"""ASGI middleware: CORS (the reference example server answers `*`; `cors_allowed_origins`
narrows it), in-flight accounting, and
the cheap refusals that must come before FastAPI decodes a body.

Every request body is read here, in full, before the application sees it, against a limit:
`max_request_body_bytes` for a push chunk (the only operation that carries rows), and
`SMALL_BODY_BYTES` for everything else (connect, push and snapshot session creation and the
development endpoints carry a few fields; FastAPI decodes whatever arrives, and a 64 MB JSON
document costs gigabytes as Python objects). A declared `Content-Length` beyond the limit is
refused before a byte of the body is read, a chunked body as soon as it crosses the limit: 413
`request_too_large`. A push chunk is then checked by `chunk_guard` (row count first, then each
row, without building an error per field). The body the application reads is the same bytes.
How long a body may take to arrive is the HTTP protocol's business (`http_server`).
"""

from __future__ import annotations

import email.message
import functools
import re

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oversync_server.chunk_guard import check_chunk
from oversync_server.engine.errors import SyncError
from oversync_server.errors import error_json
from oversync_server.observability import route_path
from oversync_server.runtime import SyncRuntime

_CORS_COMMON = [
    (b"access-control-allow-headers", b"Authorization, Content-Type, Oversync-Source-ID"),
    (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
    (b"access-control-max-age", b"600"),
]
# The answer to any origin (`cors_allowed_origins` `*`, the default).
CORS_HEADERS = [(b"access-control-allow-origin", b"*"), *_CORS_COMMON]
# The body limit of every operation but the push chunk upload (their bodies are tiny).
SMALL_BODY_BYTES = 64 * 1024
_CHUNK_PATH = re.compile(r"^/sync/push-sessions/[^/]+/chunks$")


def cors_headers(allowed: tuple[str, ...], origin: bytes | None) -> list[tuple[bytes, bytes]]:
    """The CORS headers of a response to a request from `origin`: `*` when any origin is
    allowed, the origin itself when it is listed, none when the list is empty or lacks it."""
    if not allowed:
        return []
    if "*" in allowed:
        return CORS_HEADERS
    if origin is not None and origin.decode("latin-1") in allowed:
        return [(b"access-control-allow-origin", origin), (b"vary", b"Origin"), *_CORS_COMMON]
    return [(b"vary", b"Origin")]


def too_large(limit: int) -> SyncError:
    return SyncError("request_too_large", f"request body exceeds {limit} bytes")


def _header(scope: Scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return bytes(value)
    return None


@functools.lru_cache(maxsize=64)
def is_json(content_type: bytes | None) -> bool:
    """Whether FastAPI decodes a body of this media type as JSON (its own rule; clients send
    the same few values, so the answers are cached)."""
    if not content_type:
        return True
    message = email.message.Message()
    message["content-type"] = content_type.decode("latin-1")
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


class _ClientGone(Exception):
    """The client disconnected while its body was read."""


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None once it exceeds `limit` (0 = unlimited)."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        part = message.get("body", b"")
        if part:
            size += len(part)
            if limit and size > limit:
                return None
            parts.append(part)
        if not message.get("more_body", False):
            return b"".join(parts)


def replay_body(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands out `body` once, then waits on the real one (disconnects)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed


class SyncMiddleware:
    """Adds the CORS headers to every response, answers any OPTIONS with 204 before routing and
    auth, enforces the body limits and the chunk guard, and counts the `/sync/*` requests in
    flight for the status document."""

    def __init__(self, app: ASGIApp, runtime: SyncRuntime) -> None:
        self.app = app
        self.runtime = runtime

    def _lifespan_send(self, send: Send) -> Send:
        """A refused start (a database the configuration cannot serve) without the traceback:
        `serve` prints the reason as one line."""

        async def lifespan_send(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed" and self.runtime.startup_refusal:
                message = {**message, "message": ""}
            await send(message)

        return lifespan_send

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self.app(scope, receive, self._lifespan_send(send))
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        counted = False
        ends_at_start = False
        cors = cors_headers(self.runtime.config.cors_allowed_origins, _header(scope, b"origin"))

        async def send_with_cors(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *cors]}
                if ends_at_start and counted:
                    counted = False
                    self.runtime.inflight_operations -= 1
            await send(message)

        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": cors})
            await send({"type": "http.response.body", "body": b""})
            return

        if scope["method"] == "POST" and _header(scope, b"content-type") is None:
            # Go never checks the request media type: read a bare POST body as JSON too.
            scope = {
                **scope,
                "headers": [*scope["headers"], (b"content-type", b"application/json")],
            }

        try:
            refusal, receive = await self._read_request(scope, receive)
        except _ClientGone:
            return
        if refusal is not None:
            await error_json(refusal)(scope, receive, send_with_cors)
            return

        path = route_path(scope)  # without a mount's root path (a host app's `/api`)
        counted = path.startswith("/sync/")
        # A watch stream is an operation only until it is subscribed (as in Go), not for its life.
        ends_at_start = path == "/sync/watch"
        if counted:
            self.runtime.inflight_operations += 1
        try:
            await self.app(scope, receive, send_with_cors)
        finally:
            if counted:
                self.runtime.inflight_operations -= 1

    async def _read_request(
        self, scope: Scope, receive: Receive
    ) -> tuple[SyncError | None, Receive]:
        """Read the body (if any) under its limit and check a push chunk; the refusal, if any,
        and the `receive` the application reads the same body from."""
        length_header = _header(scope, b"content-length")
        if length_header is None and _header(scope, b"transfer-encoding") is None:
            return None, receive  # no body
        config = self.runtime.config
        chunk = scope["method"] == "POST" and _CHUNK_PATH.match(route_path(scope)) is not None
        limit = config.max_request_body_bytes
        if not chunk:
            limit = min(limit, SMALL_BODY_BYTES) if limit else SMALL_BODY_BYTES
        if length_header is not None and limit:
            try:
                declared = int(length_header)
            except ValueError:
                declared = 0  # the HTTP parser has refused a malformed length already
            if declared > limit:
                return too_large(limit), receive
        body = await _read_body(receive, limit)
        if body is None:
            return too_large(limit), receive
        if chunk and body and is_json(_header(scope, b"content-type")):
            refusal = check_chunk(body, config.max_rows_per_push_chunk, scope["headers"])
            if refusal is not None:
                return refusal, receive
        return None, replay_body(body, receive)
