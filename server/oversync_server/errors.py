"""Protocol errors and their rendering: every error the server sends is an `ErrorResponse` body.

The engine and the services raise `engine.errors.SyncError`; the handlers installed by
`install_error_handlers` map its code to the HTTP status (`HTTP_STATUS`) and turn it, FastAPI's
request-validation errors and Starlette's HTTP errors (401, 404, 405, malformed JSON) into the
protocol's `{"error": code, "message": text, ...}` shape with the protocol's status codes.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oversync_server.engine.errors import SyncError, invalid_request, service_unavailable
from oversync_server.engine.pool import database_unavailable

log = logging.getLogger("oversync_server")


# The HTTP status of every error code (the spec's `x-error-codes`; tests/test_spec.py compares
# them), plus the transport-level codes this layer adds. A code missing here is a server bug: 500.
HTTP_STATUS: dict[str, int] = {
    "invalid_request": 400,
    "push_session_invalid": 400,
    "push_chunk_invalid": 400,
    "push_commit_invalid": 400,
    "committed_bundle_chunk_invalid": 400,
    "snapshot_session_invalid": 400,
    "snapshot_chunk_invalid": 400,
    "authentication_failed": 401,
    "push_session_forbidden": 403,
    "snapshot_session_forbidden": 403,
    "bundle_change_watch_forbidden": 403,
    "forbidden": 403,
    "push_session_not_found": 404,
    "committed_bundle_not_found": 404,
    "snapshot_session_not_found": 404,
    "user_state_not_found": 404,
    "not_found": 404,
    "method_not_allowed": 405,
    "request_timeout": 408,
    "push_chunk_out_of_order": 409,
    "push_conflict": 409,
    "history_pruned": 409,
    "initialization_stale": 409,
    "scope_initializing": 409,
    "scope_uninitialized": 409,
    "source_replacement_invalid": 409,
    "source_retired": 409,
    "source_sequence_changed": 409,
    "source_sequence_out_of_order": 409,
    "push_session_expired": 410,
    "initialization_expired": 410,
    "snapshot_session_expired": 410,
    "request_too_large": 413,
    "push_bundle_too_large": 413,
    "snapshot_session_too_large": 413,
    "unsupported_media_type": 415,
    "too_many_requests": 429,
    "too_many_snapshot_sessions": 429,
    "too_many_watch_streams": 429,
    "request_headers_too_large": 431,
    "not_implemented": 501,
    "service_unavailable": 503,
    "bundle_change_watch_disabled": 503,
}
# Every operation's generic failure code is a 500 (`failing_as`).
_SERVER_FAILURE = 500
RETRY_AFTER_SECONDS = 1


def http_status(error: SyncError) -> int:
    return HTTP_STATUS.get(error.code, _SERVER_FAILURE)


def error_json(error: SyncError) -> JSONResponse:
    """The `ErrorResponse` of `error` with its status (and `Retry-After` when retryable)."""
    status = http_status(error)
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status in (429, 503) else None
    return JSONResponse(error.body(), status_code=status, headers=headers)


def unavailable_error(error: BaseException) -> SyncError:
    """The retryable 503 for a `database_unavailable` error (logged as a warning, not a 500)."""
    log.warning("database unavailable: %s: %s", type(error).__name__, error)
    return service_unavailable("the database is unavailable right now; retry")


@contextmanager
def failing_as(code: str, message: str) -> Iterator[None]:
    """Let protocol errors through; a lost database connection, a failover or a hit session
    timeout becomes a retryable 503 `service_unavailable`; anything else unexpected is a logged
    500 with `code` (each endpoint has its own generic failure code, e.g. `pull_failed`)."""
    try:
        yield
    except SyncError:
        raise
    except Exception as error:
        if database_unavailable(error):
            raise unavailable_error(error) from error
        log.exception("%s", message)
        raise SyncError(code, message) from error


def error_response(code: str, message: str, **extra: Any) -> JSONResponse:
    return error_json(SyncError(code, message, **extra))


# How each operation reports a request it cannot accept: the message for a body that does not
# decode (Go's "Failed to parse ..."), and the code for values that decode but break a rule.
_OPERATION_VALIDATION: dict[str, tuple[str, str]] = {
    "connect": ("Failed to parse connect request", "invalid_request"),
    "createPushSession": ("Failed to parse push session request", "push_session_invalid"),
    "uploadPushChunk": ("Failed to parse push chunk request", "push_chunk_invalid"),
    "getCommittedBundleRows": ("", "committed_bundle_chunk_invalid"),
    "pull": ("", "invalid_request"),
    "watchBundles": ("", "invalid_request"),
    "createSnapshotSession": (
        "Failed to parse snapshot session request",
        "snapshot_session_invalid",
    ),
    "getSnapshotChunk": ("", "snapshot_chunk_invalid"),
    "deleteSnapshotSession": ("", "snapshot_chunk_invalid"),
}

# pydantic error types that mean "the JSON did not decode into the request's shape" (Go's decoder
# fails on these), as opposed to a decoded value that breaks a declared constraint.
_DECODE_ERRORS = frozenset(
    {
        "json_invalid",
        "json_type",
        "media_invalid",
        "model_type",
        "model_attributes_type",
        "dict_type",
        "list_type",
        "int_type",
        "int_parsing",
        "int_from_float",
        "bool_type",
        "bool_parsing",
        "string_type",
    }
)


# Go's wording where a parameter has a two-sided range.
_RANGE_MESSAGES = {"max_bundles": "max_bundles must be between 1 and 5000"}
_BOUND = re.compile(r"-?\d+$")


def _describe(record: dict[str, Any]) -> str:
    location = [
        str(part) for part in record.get("loc", ()) if part not in ("body", "query", "path")
    ]
    name = ".".join(location) or "body"
    kind = record.get("type", "")
    message = str(record.get("msg", "invalid value"))
    if kind in ("int_parsing", "int_type", "int_from_float"):
        return f"{name} must be an integer"
    if kind == "missing":
        return f"{name} is required"
    if name in _RANGE_MESSAGES and kind in ("greater_than_equal", "less_than_equal"):
        return _RANGE_MESSAGES[name]
    bound = _BOUND.search(message)
    if kind == "greater_than_equal" and bound:
        return f"{name} must be >= {bound.group(0)}"
    if kind == "less_than_equal" and bound:
        return f"{name} must be <= {bound.group(0)}"
    return f"{name}: {message[:1].lower()}{message[1:]}"


_SOURCE_REQUIRED = "Oversync-Source-ID header is required"
_SOURCE_HEADER_RULES = {
    "string_too_long": "Oversync-Source-ID header must be at most 255 characters",
    "string_pattern_mismatch": "Oversync-Source-ID header must not contain control characters",
}


def validation_error(operation_id: str | None, records: list[dict[str, Any]]) -> SyncError:
    """Map FastAPI's validation records of one request to the protocol error Go would answer."""
    header = next((r for r in records if r.get("loc", ("",))[0] == "header"), None)
    if header is not None:
        return invalid_request(_SOURCE_HEADER_RULES.get(header.get("type", ""), _SOURCE_REQUIRED))
    parse_message, rule_code = _OPERATION_VALIDATION.get(
        operation_id or "", ("", "invalid_request")
    )
    first = records[0] if records else {"type": "value_error", "loc": ("body",)}
    in_body = first.get("loc", ("",))[0] == "body"
    strict_body = operation_id == "createSnapshotSession"  # Go: DisallowUnknownFields
    location = first.get("loc", ())
    if operation_id == "uploadPushChunk" and location[:2] == ("body", "rows") and "key" in location:
        # Go decodes a row key as a map and reports a non-string value as a chunk rule breach.
        return SyncError(rule_code, _describe(first))
    if in_body and parse_message and (strict_body or first.get("type") in _DECODE_ERRORS):
        code = rule_code if strict_body else "invalid_request"
        return SyncError(code, f"{parse_message}: {_describe(first)}")
    return SyncError(rule_code, _describe(first))


_HTTP_CODES = {
    401: "authentication_failed",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "request_too_large",
    415: "unsupported_media_type",
}


async def _on_sync_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, SyncError)
    return error_json(error)


async def _on_validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    route = request.scope.get("route")
    operation_id = getattr(route, "operation_id", None)
    return error_json(validation_error(operation_id, list(error.errors())))


async def _on_http_error(_: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    status = error.status_code
    if status == 400:
        # Starlette raises 400 for a body that is not valid JSON before any model sees it.
        code, message = "invalid_request", f"Failed to parse request: {error.detail}"
    elif status == 401:
        code, message = "authentication_failed", "Authorization header required"
    else:
        code, message = _HTTP_CODES.get(status, "http_error"), str(error.detail)
    return JSONResponse(
        {"error": code, "message": message}, status_code=status, headers=error.headers
    )


def exception_handlers() -> dict[Any, Any]:
    """The handlers to pass to `create_app`: protocol, validation and HTTP errors."""
    return {
        SyncError: _on_sync_error,
        RequestValidationError: _on_validation_error,
        StarletteHTTPException: _on_http_error,
    }


def install_error_handlers(app: FastAPI) -> None:
    for kind, handler in exception_handlers().items():
        app.add_exception_handler(kind, handler)


def not_implemented() -> SyncError:
    return SyncError("not_implemented", "This operation is not implemented yet")
