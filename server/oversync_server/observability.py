"""Request ids, one log line per request, Prometheus metrics and `GET /metrics`.

`ObservabilityMiddleware` is the outermost ASGI layer of the app, so it sees every answer,
the front's refusals (413, chunk guard) included:

* the request id: an incoming `X-Request-ID` (printable ASCII, at most 128 characters) is kept,
  else a new one is made; the response always carries it back;
* one log line per request (logger `oversync_server.requests`), when the answer is complete:
  method, path, operation, status, duration, user, source and the request id; an error answer
  adds its `ErrorResponse` code and message, so every 4xx/5xx says why once. `log_format` json
  writes each line as one JSON object with these fields;
* the metrics of `oversync_server.metrics`, from the operation, the status and, for the few
  operations whose small answers carry figures (commit, push session creation, connect) or
  for errors, the answer's body.

The user is whatever the authenticator returned (`note_user`, called by the app's `authorize`
through a context variable, so no other layer changes). Logging: `configure_logging` makes the
lines appear under plain uvicorn too, where nothing configures the `oversync_server` logger.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from starlette.routing import BaseRoute, Route, compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from oversync_server import metrics
from oversync_server.runtime import SyncRuntime

request_log = logging.getLogger("oversync_server.requests")

REQUEST_ID_HEADER = b"x-request-id"
_VALID_REQUEST_ID = re.compile(rb"^[\x21-\x7e]{1,128}$")
# Answers read for their figures: small JSON documents.
_FIGURES_OPERATIONS = frozenset({"commitPushSession", "createPushSession", "connect"})
_MAX_CAPTURED_BYTES = 16 * 1024
_MAX_SOURCE_CHARS = 255


@dataclass(slots=True)
class RequestRecord:
    """What the log line of one request reports."""

    request_id: str
    method: str
    path: str
    operation: str
    source: str
    user: str = ""
    # the peer's address, or the client's from X-Forwarded-For when the peer is a trusted proxy
    client: str = ""


_current: ContextVar[RequestRecord | None] = ContextVar("oversync_request", default=None)


def note_user(user_id: str) -> None:
    """Record the authenticated user of the current request (for its log line)."""
    record = _current.get()
    if record is not None:
        record.user = user_id


def current_request_id() -> str | None:
    """The id of the request being served (for a host application's own log lines)."""
    record = _current.get()
    return record.request_id if record is not None else None


# ------------------------------------------------------------------ logging
class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, message and the request's fields."""

    _second = -1
    _second_text = ""

    def _time(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # strftime once per second, not per line
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "request", None)
        if isinstance(fields, dict):  # a request line: the fields say it all
            entry["message"] = f"{fields['method']} {fields['path']} {fields['status']}"
            entry.update(fields)
        elif (request_id := current_request_id()) is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


TEXT_FORMAT = "%(levelname)s %(name)s: %(message)s"


def configure_logging(log_format: str) -> None:
    """Route the `oversync_server` loggers to standard error in `log_format` when needed.

    json: always (the lines become JSON objects). text: only when nothing would show them
    (no handler on the root logger nor ours, as under plain uvicorn); otherwise the host's or
    `serve`'s logging configuration prints them. Idempotent.
    """
    logger = logging.getLogger("oversync_server")
    for handler in [h for h in logger.handlers if getattr(h, "oversync_handler", False)]:
        logger.removeHandler(handler)
    if log_format != "json" and (logging.getLogger().handlers or logger.handlers):
        logger.propagate = True
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.oversync_handler = True  # type: ignore[attr-defined]
    handler.setFormatter(
        JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    )
    logger.addHandler(handler)
    logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)


# ------------------------------------------------------------------ operations
class _Operations:
    """Maps a request to its operation id (as in the spec), matched like the router does:
    literal paths by lookup, templated ones by their regex. Built on first use, so routes
    added after the middleware (development endpoints) count too."""

    def __init__(self, routes: list[BaseRoute]) -> None:
        self.literal: dict[tuple[str, str], str] = {}
        self.templated: list[tuple[str, re.Pattern[str], str]] = []
        self._add(routes, "")

    def _add(self, routes: list[BaseRoute], prefix: str) -> None:
        for route in routes:
            included = getattr(route, "original_router", None)  # FastAPI's include_router
            if included is not None:
                context = getattr(route, "include_context", None)
                self._add(included.routes, prefix + str(getattr(context, "prefix", "")))
                continue
            if not isinstance(route, Route):
                continue
            name = getattr(route, "operation_id", None) or route.name
            path = prefix + route.path
            for method in route.methods or ():
                if "{" in path:
                    self.templated.append((method, compile_path(path)[0], name))
                else:
                    self.literal[(method, path)] = name

    def of(self, method: str, path: str) -> str:
        found = self.literal.get((method, path))
        if found is not None:
            return found
        for route_method, pattern, name in self.templated:
            if route_method == method and pattern.match(path):
                return name
        return "none"


def route_path(scope: Scope) -> str:
    """The path inside this application (without a mount's or proxy's root path)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and path[len(root) : len(root) + 1] in ("/", ""):
        return path[len(root) :] or "/"
    return path


def _error_of(body: bytes) -> tuple[str, str]:
    """The `error` code and `message` of an ErrorResponse body ("" when it is not one)."""
    try:
        document = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(document, dict):
        return "", ""
    return str(document.get("error", "")), str(document.get("message", ""))


def _record_figures(operation: str, body: bytes, duration: float) -> None:
    """The metrics of what a successful commit, push session creation or connect said."""
    if operation == "createPushSession" and b"already_committed" not in body:
        return  # a new session: nothing to count (and nothing to decode)
    try:
        document = json.loads(body)
    except ValueError:
        return
    if not isinstance(document, dict):
        return
    if operation == "commitPushSession":
        metrics.PUSH_COMMITS.inc()
        rows = document.get("row_count")
        if isinstance(rows, int):
            metrics.ROWS_COMMITTED.inc(rows)
        metrics.COMMIT_SECONDS.observe(duration)
    elif operation == "createPushSession" and document.get("status") == "already_committed":
        metrics.RETRIES.labels("already_committed").inc()
    elif operation == "connect" and document.get("resolution") == "retry_later":
        metrics.RETRIES.labels("retry_later").inc()


class ObservabilityMiddleware:
    """See the module docstring."""

    def __init__(self, app: ASGIApp, runtime: SyncRuntime, application: FastAPI) -> None:
        self.app = app
        self.runtime = runtime
        self.application = application
        self.metrics_enabled = runtime.config.metrics_enabled
        self._operations: _Operations | None = None

    def _operation(self, method: str, path: str) -> str:
        if self._operations is None:
            self._operations = _Operations(self.application.routes)
        return self._operations.of(method, path)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming_id = source = b""
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                incoming_id = value
            elif name == b"oversync-source-id":
                source = value
        request_id = (
            incoming_id if _VALID_REQUEST_ID.match(incoming_id) else os.urandom(8).hex().encode()
        )
        method: str = scope["method"]
        path = route_path(scope)
        metrics_request = path == "/metrics" and self.metrics_enabled and method == "GET"
        record = RequestRecord(
            request_id=request_id.decode("ascii"),
            method=method,
            path=scope["path"],  # as the client sent it (with a mount's root path)
            operation="metrics" if metrics_request else self._operation(method, path),
            source=source.decode("utf-8", "replace")[:_MAX_SOURCE_CHARS],
            client=str(scope["client"][0]) if scope.get("client") else "",
        )
        status = 0
        captured: list[bytes] | None = None
        watching = False

        async def observed_send(message: Message) -> None:
            nonlocal status, captured, watching
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [*message.get("headers", ()), (REQUEST_ID_HEADER, request_id)]
                message = {**message, "headers": headers}
                if status >= 400 or (status == 200 and record.operation in _FIGURES_OPERATIONS):
                    captured = []
                if record.operation == "watchBundles" and status == 200 and self.metrics_enabled:
                    watching = True
                    metrics.WATCH_SUBSCRIBERS.inc()
            elif message["type"] == "http.response.body" and captured is not None:
                body = message.get("body", b"")
                if body and sum(map(len, captured)) + len(body) <= _MAX_CAPTURED_BYTES:
                    captured.append(body)
            await send(message)

        token = _current.set(record)
        try:
            if metrics_request:
                await self._serve_metrics(observed_send)
            else:
                await self.app(scope, receive, observed_send)
        except BaseException:
            status = status or 500
            raise
        finally:
            _current.reset(token)
            if watching:
                metrics.WATCH_SUBSCRIBERS.dec()
            self._finish(record, status, b"".join(captured or ()), time.perf_counter() - started)

    async def _serve_metrics(self, send: Send) -> None:
        body = await metrics.exposition(self.runtime)
        headers = [
            (b"content-type", metrics.CONTENT_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _finish(self, record: RequestRecord, status: int, body: bytes, duration: float) -> None:
        code = message = ""
        if status >= 400:
            code, message = _error_of(body)
        if self.metrics_enabled and record.operation != "metrics":
            self._count(record.operation, status, code, body, duration)
        if status == 0:
            return  # the client went away before any answer: nothing was served
        fields: dict[str, Any] = {
            "request_id": record.request_id,
            "method": record.method,
            "path": record.path,
            "operation": record.operation,
            "status": status,
            "duration_ms": round(duration * 1000, 3),
            "user": record.user or None,
            "source": record.source or None,
            "client": record.client or None,
        }
        if code or message:
            fields["error"] = code
            fields["error_message"] = message
        text = (
            f"{record.method} {record.path} {status} {fields['duration_ms']}ms"
            f" operation={record.operation} user={record.user or '-'}"
            f" source={record.source or '-'} client={record.client or '-'}"
            f" request_id={record.request_id}"
        )
        if code or message:
            text += f" error={code}: {message}"
        level = logging.WARNING if status >= 500 else logging.INFO
        if request_log.isEnabledFor(level):
            # makeRecord + handle: `log()` would also look up the caller's frame, per request
            entry = request_log.makeRecord(
                request_log.name, level, __file__, 0, text, (), None, extra={"request": fields}
            )
            request_log.handle(entry)

    def _count(self, operation: str, status: int, code: str, body: bytes, duration: float) -> None:
        metrics.request_counter(operation, status).inc()
        if operation != "watchBundles":
            metrics.request_timer(operation).observe(duration)
        if status == 200 and operation in _FIGURES_OPERATIONS:
            _record_figures(operation, body, duration)
        elif code:
            metrics.ERRORS.labels(operation, code).inc()
            if code == "push_conflict":
                metrics.CONFLICTS.inc()
            elif code == "history_pruned":
                metrics.HISTORY_PRUNED.inc()
            elif code == "service_unavailable":
                metrics.RETRIES.labels("service_unavailable").inc()
        if operation == "createSnapshotSession" and status == 200:
            metrics.SNAPSHOT_SESSIONS.inc()


def install(app: FastAPI, runtime: SyncRuntime) -> None:
    """Add the middleware (outermost: call after every other `add_middleware`), the logging
    set-up and the metrics hooks to the app `create_application` builds."""
    configure_logging(runtime.config.log_format)
    app.add_middleware(ObservabilityMiddleware, runtime=runtime, application=app)
    if runtime.config.metrics_enabled:
        metrics.install(runtime)
