"""The sync engine's refusals: one exception type carrying the protocol's error code.

The engine knows the protocol's error codes (`push_conflict`, `history_pruned`, ...) but not how
they travel: `oversync_server.errors` maps each code to its HTTP status at the service boundary
(the table mirrors the spec's `x-error-codes`).
"""

from __future__ import annotations

from typing import Any


class SyncError(Exception):
    """A refusal of the wire protocol: the `error` code, a message and extra body fields."""

    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.extra = {name: value for name, value in extra.items() if value is not None}

    def body(self) -> dict[str, Any]:
        """The `ErrorResponse` body."""
        return {"error": self.code, "message": self.message, **self.extra}


def invalid_request(message: str) -> SyncError:
    return SyncError("invalid_request", message)


def authentication_failed(message: str) -> SyncError:
    return SyncError("authentication_failed", message)


def service_unavailable(message: str) -> SyncError:
    """A retryable refusal (the client retries after `Retry-After`)."""
    return SyncError("service_unavailable", message)


__all__ = ["SyncError", "authentication_failed", "invalid_request", "service_unavailable"]
