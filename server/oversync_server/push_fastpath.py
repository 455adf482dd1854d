"""The three requests of every pushed bundle without FastAPI's routing and dependency solving.

`POST /sync/push-sessions`, `POST /sync/push-sessions/{push_id}/chunks` and
`POST /sync/push-sessions/{push_id}/commit` run for every bundle a device pushes, and for a
small bundle FastAPI's own work per request (route matching through the nested routers,
dependency solving, validation of each parameter, response re-validation) costs about as much
as the push itself (issue 10). `PushFastPath` sits inside `SyncMiddleware` (so CORS, the body
limits, the chunk guard, in-flight counting, request ids, request logs and metrics stay the
same) and serves a well-formed request of these three itself, with the same service methods,
the same body models (validated from the decoded JSON, as FastAPI does), the same response
bytes (the response model's JSON, aliases, unset fields left out) and the same error responses
(`errors.error_json`).

Only the happy path is served here: a request it does not take for certain (another route or
method, a percent-encoded path, a missing, repeated or non-ASCII `Authorization` or
`Oversync-Source-ID` header, a source id the spec's constraints refuse, a token the
authenticator refuses, a body that is not JSON or does not validate, a body over
`FAST_BODY_BYTES`) goes on, untouched, to the FastAPI application, which answers it as it always
has. Nothing has run for it by then.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from oversync_protocol import models
from oversync_server.api._runtime.server.security import bearer_token
from oversync_server.engine.errors import SyncError
from oversync_server.errors import error_json
from oversync_server.middleware import is_json, replay_body
from oversync_server.observability import route_path
from oversync_server.services.push import Push

__all__ = ["PushFastPath"]

_CREATE_PATH = "/sync/push-sessions"
_SESSION_PATH = re.compile(r"/sync/push-sessions/([^/]+)/(chunks|commit)")
# The spec's constraints of the Oversync-Source-ID header (openapi/oversync.yaml).
_SOURCE_ID = re.compile(r"[^\x00-\x1f\x7f]{1,255}")

# Bodies up to this size only: a bigger one is a big chunk, where FastAPI's fixed cost does not
# matter, and a malformed one would be decoded twice (here, then by FastAPI for its answer).
FAST_BODY_BYTES = 64 * 1024

_CREATE_RESPONSE = TypeAdapter(models.PushSessionCreateResponse)
_CHUNK_RESPONSE = TypeAdapter(models.PushChunkResponse)
_COMMIT_RESPONSE = TypeAdapter(models.PushCommitResponse)


class _NotMine(Exception):
    """The request is left to the FastAPI application."""


async def _read_body(receive: Receive) -> bytes | None:
    """The request body (`SyncMiddleware` has read it within its limit); None on a disconnect."""
    parts: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _body(model: type[BaseModel], body: bytes) -> Any:
    """The request body as FastAPI reads it: JSON, then the model from the decoded value."""
    if not body:
        raise _NotMine
    try:
        return model.model_validate(json.loads(body))
    except (ValueError, ValidationError):  # JSONDecodeError and UnicodeDecodeError included
        raise _NotMine from None


class PushFastPath:
    """ASGI middleware serving the push create, chunk and commit requests (module docstring)."""

    def __init__(
        self, app: ASGIApp, push: Push, authenticate: Callable[[str], Awaitable[object]]
    ) -> None:
        self.app = app
        self.push = push
        self.authenticate = authenticate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or b"%" in scope.get("raw_path", b"")
        ):
            await self.app(scope, receive, send)
            return
        path = route_path(scope)
        if path == _CREATE_PATH:
            operation, push_id = "create", ""
        elif matched := _SESSION_PATH.fullmatch(path):
            push_id, operation = matched.group(1), matched.group(2)
        else:
            await self.app(scope, receive, send)
            return
        body = b""
        if operation != "commit":  # the commit has no body (FastAPI reads none either)
            read = await _read_body(receive)
            if read is None:
                return  # the client has gone
            body = read
            receive = replay_body(body, receive)
            if len(body) > FAST_BODY_BYTES:
                await self.app(scope, receive, send)
                return
        try:
            response = await self._serve(scope, operation, push_id, body)
        except _NotMine:
            await self.app(scope, receive, send)
            return
        except SyncError as error:
            response = error_json(error)
        await response(scope, receive, send)

    async def _serve(self, scope: Scope, operation: str, push_id: str, body: bytes) -> Response:
        authorization = source = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if authorization is not None:
                    raise _NotMine
                authorization = value
            elif name == b"oversync-source-id":
                if source is not None:
                    raise _NotMine
                source = value
            elif name == b"content-type":
                content_type = value
        if authorization is None or source is None or not authorization.isascii():
            raise _NotMine
        if not source.isascii() or not _SOURCE_ID.fullmatch(source_id := source.decode()):
            raise _NotMine
        token = bearer_token(authorization.decode())
        if token is None:
            raise _NotMine
        if operation != "commit" and not is_json(content_type):
            raise _NotMine
        request: Any = None
        if operation == "create":
            request = _body(models.PushSessionCreateRequest, body)
        elif operation == "chunks":
            request = _body(models.PushChunkRequest, body)
        try:
            principal = await self.authenticate(token)
        except Exception:  # refused: FastAPI's route answers it
            raise _NotMine from None
        result: object
        adapter: Any
        if operation == "create":
            result = await self.push.create_push_session(
                principal=principal, Oversync_Source_ID=source_id, body=request
            )
            adapter = _CREATE_RESPONSE
        elif operation == "chunks":
            result = await self.push.upload_push_chunk(
                principal=principal, push_id=push_id, Oversync_Source_ID=source_id, body=request
            )
            adapter = _CHUNK_RESPONSE
        else:
            result = await self.push.commit_push_session(
                principal=principal, push_id=push_id, Oversync_Source_ID=source_id
            )
            adapter = _COMMIT_RESPONSE
        if isinstance(result, Response):
            return result
        if not isinstance(result, BaseModel):
            raise TypeError(f"push {operation} answered {type(result).__name__}")
        content = adapter.dump_json(result, by_alias=True, exclude_unset=True)
        return Response(content=content, media_type="application/json")
