"""ASGI middleware: CORS as the reference example server answers it, and in-flight accounting."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oversync_server.runtime import SyncRuntime

CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-headers", b"Authorization, Content-Type, Oversync-Source-ID"),
    (b"access-control-allow-methods", b"GET, POST, DELETE, OPTIONS"),
    (b"access-control-max-age", b"600"),
]


class SyncMiddleware:
    """Adds the CORS headers to every response, answers any OPTIONS with 204 before routing and
    auth, and counts the `/sync/*` requests in flight for the status document."""

    def __init__(self, app: ASGIApp, runtime: SyncRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": CORS_HEADERS})
            await send({"type": "http.response.body", "body": b""})
            return

        if scope["method"] == "POST" and not any(
            name == b"content-type" for name, _ in scope.get("headers", [])
        ):
            # Go never checks the request media type: read a bare POST body as JSON too.
            scope = {
                **scope,
                "headers": [*scope["headers"], (b"content-type", b"application/json")],
            }

        counted = scope["path"].startswith("/sync/")
        # A watch stream is an operation only until it is subscribed (as in Go), not for its life.
        ends_at_start = scope["path"] == "/sync/watch"

        async def send_with_cors(message: Message) -> None:
            nonlocal counted
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *CORS_HEADERS]}
                if ends_at_start and counted:
                    counted = False
                    self.runtime.inflight_operations -= 1
            await send(message)

        if counted:
            self.runtime.inflight_operations += 1
        try:
            await self.app(scope, receive, send_with_cors)
        finally:
            if counted:
                self.runtime.inflight_operations -= 1
