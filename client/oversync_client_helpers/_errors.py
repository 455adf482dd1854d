"""`unwrap`: the success model of a generated call, or a raised `ApiError`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, TypeVar, overload

import httpx

from oversync_client.models import ErrorResponse, PushSessionAlreadyCommitted, PushSessionStaging
from oversync_client.types import Response

__all__ = ["RETRYABLE_STATUSES", "ApiError", "error_from_response", "unwrap"]

T = TypeVar("T")

# Answers worth retrying later (with backoff, honouring Retry-After): overload and shutdown.
RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})


class ApiError(Exception):
    """The server refused a call: HTTP `status` (None when unknown, e.g. from a plain `.sync()`
    call), the protocol's `code` (ErrorResponse `error`, e.g. `push_conflict`), its `message`,
    and the whole error body in `details` (conflict details and the like)."""

    def __init__(
        self, status: int | None, code: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status or 'HTTP error'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details: Mapping[str, Any] = details or {}

    @property
    def retryable(self) -> bool:
        """Whether trying again later can succeed (429, 502, 503, 504)."""
        return self.status in RETRYABLE_STATUSES


def _from_error_body(status: int | None, error: ErrorResponse) -> ApiError:
    return ApiError(status, error.error, error.message, error.to_dict())


def _from_content(status: int | None, content: bytes) -> ApiError:
    """An error whose body the generated parser did not model (a proxy's page, an
    undocumented status): the JSON `error`/`message` when present, else the text."""
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return ApiError(status, body["error"], str(body.get("message") or ""), body)
    return ApiError(status, "http_error", content[:200].decode("utf-8", "replace"))


def error_from_response(response: httpx.Response) -> ApiError:
    """The `ApiError` of a raw httpx error response (its body must have been read)."""
    return _from_content(response.status_code, response.content)


# mypy cannot solve `ErrorResponse | T` against a union of three, so the one operation with two
# success models (create_push_session) has overloads of its own; tests check every operation.
_PushSessionCreated = PushSessionAlreadyCommitted | PushSessionStaging


@overload
def unwrap(result: Response[ErrorResponse | _PushSessionCreated]) -> _PushSessionCreated: ...
@overload
def unwrap(result: Response[ErrorResponse | T]) -> T: ...
@overload
def unwrap(result: ErrorResponse | _PushSessionCreated | None) -> _PushSessionCreated: ...
@overload
def unwrap(result: ErrorResponse | T | None) -> T: ...
def unwrap(result: Any) -> Any:
    """The success value of a generated call, or `ApiError`.

    Pass a `sync_detailed`/`asyncio_detailed` `Response` (the error then carries its HTTP
    status) or the `ErrorResponse | X | None` of `sync`/`asyncio` (status None). An operation
    with several success models (`create_push_session`: `PushSessionStaging |
    PushSessionAlreadyCommitted`) gives their union; narrow it with `isinstance`.
    """
    if isinstance(result, Response):
        status = int(result.status_code)
        if isinstance(result.parsed, ErrorResponse):
            raise _from_error_body(status, result.parsed)
        if status >= 400 or result.parsed is None:
            raise _from_content(status, result.content)
        return result.parsed
    if isinstance(result, ErrorResponse):
        raise _from_error_body(None, result)
    if result is None:  # an undocumented status, with raise_on_unexpected_status off
        raise ApiError(None, "unexpected_status", "the server answered an undocumented status")
    return result
