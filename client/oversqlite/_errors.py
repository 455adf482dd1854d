"""Every exception the SDK raises, in one tree.

::

    SyncError                            base of everything below
    ├── ConfigError (ValueError)         config or local schema rejected by open()
    │   └── ServerSchemaMismatchError    attach(): managed tables/columns differ from the server's
    ├── MigrationError                   a local migration failed (rolled back) in open()
    ├── UpgradeRequiredError             the server does not serve this app's schema version
    ├── UnsupportedValueError (ValueError)
    │                                    a local value has no wire encoding (fix the row)
    ├── UsageError (RuntimeError)        the API was called the wrong way
    │   ├── ClientClosedError
    │   ├── OpenRequiredError
    │   └── DatabaseInUseError
    ├── StateError                       durable state needs an explicit call first
    │   ├── AttachRequiredError
    │   ├── AttachConflictError
    │   ├── TokenUserMismatchError       attach(user) with a token of another user
    │   ├── ReconnectRequiredError
    │   ├── RebuildRequiredError
    │   ├── SourceRecoveryRequiredError
    │   ├── PendingChangesError
    │   └── SourceReplacementDivergedError
    ├── ConflictError                    a push conflict could not be settled
    │   ├── InvalidConflictResolutionError
    │   └── ConflictRetryExhaustedError
    ├── TransportError                   no usable answer: network, timeout, 429/5xx
    │   ├── ServerFailureError           the server failed (HTTP 500 and other 5xx but 501)
    │   └── RetryExhaustedError
    ├── ServerRejectedError              a definitive error answer from the server
    │   ├── PushRejectedError
    │   │   └── SchemaMismatchError      a pushed column the server's table does not have
    │   └── LifecycleUnsupportedError
    ├── ProtocolError                    an answer that breaks the protocol contract
    └── LocalStoreError                  SQLite failed
        └── DatabaseBusyError

Local intent is never lost when one of these is raised: pending rows stay in the outbox or in
the dirty-row table, and checkpoints only move together with a durable apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "AttachConflictError",
    "AttachRequiredError",
    "ClientClosedError",
    "ConfigError",
    "ConflictError",
    "ConflictRetryExhaustedError",
    "DatabaseBusyError",
    "DatabaseInUseError",
    "InvalidConflictResolutionError",
    "LifecycleUnsupportedError",
    "LocalStoreError",
    "MigrationError",
    "OpenRequiredError",
    "PendingChangesError",
    "ProtocolError",
    "PushRejectedError",
    "RebuildRequiredError",
    "ReconnectRequiredError",
    "RetryExhaustedError",
    "SchemaMismatchError",
    "ServerFailureError",
    "ServerRejectedError",
    "ServerSchemaMismatchError",
    "SourceRecoveryRequiredError",
    "SourceReplacementDivergedError",
    "StateError",
    "SyncError",
    "TokenUserMismatchError",
    "TransportError",
    "UnsupportedValueError",
    "UpgradeRequiredError",
    "UsageError",
]


class SyncError(Exception):
    """Base class of every error raised by oversqlite."""


class ConfigError(SyncError, ValueError):
    """The client config or the local schema cannot be synced safely; fix it and reopen."""


class ServerSchemaMismatchError(ConfigError):
    """``attach()`` found managed tables or columns that the server does not register as such.

    ``differences`` lists every one, each with its fix; nothing was sent or changed. Fix the
    local schema (a migration) or the server's registration, then attach again.
    """

    def __init__(self, schema: str, differences: list[str]) -> None:
        listing = "".join(f"\n  - {item}" for item in differences)
        super().__init__(
            f"the local managed tables do not match what the server registers for schema "
            f"{schema!r} ({len(differences)} difference(s)); nothing was changed:{listing}"
        )
        self.schema = schema
        self.differences = tuple(differences)


class MigrationError(SyncError):
    """A local migration failed; it was rolled back and the database stays at the version before.

    ``version`` is the migration that failed (the original error is ``__cause__``). Earlier
    migrations of the same ``open()`` stay applied. Fix the migration and open again.
    """

    def __init__(self, version: int, reason: str) -> None:
        super().__init__(
            f"local migration to schema version {version} failed and was rolled back: {reason}"
        )
        self.version = version
        self.reason = reason


class UpgradeRequiredError(SyncError):
    """The server does not serve this app's local schema version; nothing was sent or changed.

    ``local_version`` is ``ClientConfig.schema_version``; the server serves
    ``[min_supported, max_supported]`` (``max_supported`` 0: no upper bound). Pending changes
    stay in the outbox and the dirty rows; after the app is updated (a version inside the range,
    migrating the local database) or the server is upgraded, sync resumes where it stopped.
    """

    def __init__(
        self, operation: str, local_version: int, min_supported: int, max_supported: int
    ) -> None:
        bound = str(max_supported) if max_supported else "any newer"
        supported = f"{min_supported}..{bound}"
        if local_version < min_supported:
            action = "update the app: a newer release migrates the local database"
        else:
            action = (
                "this app is newer than the server: upgrade the server first (or it was rolled "
                "back)"
            )
        super().__init__(
            f"cannot call {operation}(): this app's local schema version {local_version} is not "
            f"served by the server (supported: {supported}); {action}. Pending changes are kept "
            "and sync resumes after the upgrade"
        )
        self.operation = operation
        self.local_version = local_version
        self.min_supported = min_supported
        self.max_supported = max_supported


class UnsupportedValueError(SyncError, ValueError):
    """A local value cannot be encoded for the wire (e.g. a non-finite REAL, a short UUID blob).

    The row stays pending; correct it locally and push again.
    """


class UsageError(SyncError, RuntimeError):
    """The API was used in a way it does not support."""


class ClientClosedError(UsageError):
    """The client was closed (or uninstalled); create a new one."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"cannot call {operation}(): the client is closed")
        self.operation = operation


class OpenRequiredError(UsageError):
    """``open()`` has not been called yet."""

    def __init__(self, operation: str) -> None:
        super().__init__(f"cannot call {operation}(): call open() first")
        self.operation = operation


class DatabaseInUseError(UsageError):
    """Another live client in this process already owns the database file."""


class StateError(SyncError):
    """The durable sync state requires an explicit call before this operation can run."""


class AttachRequiredError(StateError):
    """No user is attached in this session; call ``attach(user_id)``."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"cannot call {operation}(): no user is attached; call attach(user_id) first "
            "(also needed once after every open())"
        )
        self.operation = operation


class AttachConflictError(StateError):
    """The database is attached to another user; ``detach()`` first."""

    def __init__(self, attached_user_id: str, requested_user_id: str) -> None:
        super().__init__(
            f"the database is attached to user {attached_user_id!r}, not {requested_user_id!r}; "
            "call detach() (or sync_then_detach()) before attaching another user"
        )
        self.attached_user_id = attached_user_id
        self.requested_user_id = requested_user_id


class TokenUserMismatchError(StateError):
    """``attach(user_id)`` was called with a token that authenticates another user.

    Nothing was attached; pass the signed-in user's id, or a token of ``user_id``.
    """

    def __init__(self, requested_user_id: str, token_user_id: str) -> None:
        super().__init__(
            f"attach({requested_user_id!r}): the token authenticates user {token_user_id!r}; "
            "the server would write into that account. Attach the token's user or get a token "
            f"for {requested_user_id!r}"
        )
        self.requested_user_id = requested_user_id
        self.token_user_id = token_user_id


class ReconnectRequiredError(StateError):
    """The server no longer recognises this attachment (lost initialization lease or scope).

    The client is back to anonymous with its pending rows kept; call ``attach(user_id)`` again.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(
            f"the server ended this attachment ({code}: {message}); pending rows are kept, "
            "call attach(user_id) again"
        )
        self.code = code


class RebuildRequiredError(StateError):
    """A snapshot rebuild was started and not finished; call ``rebuild()``."""

    def __init__(self, operation: str) -> None:
        super().__init__(
            f"cannot call {operation}(): an interrupted snapshot rebuild must finish first; "
            "call rebuild()"
        )
        self.operation = operation


class SourceRecoveryRequiredError(StateError):
    """The server no longer accepts this source's bundle sequence; call ``rebuild()``.

    ``rebuild()`` (and ``sync()``, automatically) rotates to a fresh source id with a snapshot
    and keeps every pending local change, which is pushed afterwards.
    """

    def __init__(self, reason: str, message: str = "") -> None:
        detail = f" ({message})" if message else ""
        super().__init__(
            f"source recovery required: {reason}{detail}; call rebuild() to rotate the source "
            "and keep pending changes"
        )
        self.reason = reason


class PendingChangesError(StateError):
    """The operation needs a state without unpushed changes; push them first."""

    def __init__(self, operation: str, pending_row_count: int) -> None:
        super().__init__(
            f"cannot call {operation}(): {pending_row_count} local row(s) are waiting to be "
            "pushed; call push_pending() or sync() first"
        )
        self.operation = operation
        self.pending_row_count = pending_row_count


class SourceReplacementDivergedError(StateError):
    """The server already replaced this source by a different one than the local reservation.

    Another copy of this database rotated the source; this copy cannot continue safely.
    Uninstall sync (``uninstall_sync()``) and attach afresh.
    """

    def __init__(self, local_replacement: str, remote_replacement: str) -> None:
        super().__init__(
            f"source replacement diverged: reserved {local_replacement!r} locally but the server "
            f"names {remote_replacement!r}; call uninstall_sync() and attach again"
        )
        self.local_replacement = local_replacement
        self.remote_replacement = remote_replacement


class ConflictError(SyncError):
    """A push conflict could not be settled automatically."""


class InvalidConflictResolutionError(ConflictError):
    """The resolver returned something that cannot be applied; nothing was changed.

    The local intent is back in the pending rows; fix the resolver or the row and push again.
    """

    def __init__(self, table: str, key: str, reason: str) -> None:
        super().__init__(
            f"invalid conflict resolution for {table} {key}: {reason}; the local change is kept "
            "pending"
        )
        self.table = table
        self.key = key
        self.reason = reason


class ConflictRetryExhaustedError(ConflictError):
    """Conflicts kept occurring after the configured number of automatic retries.

    Every local intent is kept pending with its base moved to the latest server version; call
    ``push_pending()`` again (other devices may still be writing the same rows).
    """

    def __init__(self, retries: int, pending_row_count: int) -> None:
        super().__init__(
            f"push still conflicted after {retries} automatic retries; {pending_row_count} "
            "row(s) remain pending, call push_pending() again"
        )
        self.retries = retries
        self.pending_row_count = pending_row_count


class TransportError(SyncError):
    """No usable answer: a network failure, a timeout, or a 429/502/503/504 status."""

    def __init__(
        self,
        operation: str,
        message: str,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{operation}: {message}")
        self.operation = operation
        self.status = status
        self.retry_after = retry_after


class ServerFailureError(TransportError):
    """The server failed to answer (HTTP 500 or another 5xx): retryable, nothing is lost.

    A frozen bundle stays frozen and is resent with the same identity by the next push.
    """


class RetryExhaustedError(TransportError):
    """Retries with backoff were used up; the last error is ``last_error`` (and ``__cause__``).

    Nothing was lost; call the operation again later.
    """

    def __init__(self, operation: str, attempts: int, last_error: SyncError) -> None:
        status = getattr(last_error, "status", None)
        super().__init__(
            operation,
            f"gave up after {attempts} attempt(s): {last_error}; try again later",
            status if isinstance(status, int) else None,
        )
        self.attempts = attempts
        self.last_error = last_error


class ServerRejectedError(SyncError):
    """The server answered with a definitive error (``status``, ``code``, ``message``).

    ``details`` is the whole JSON error body (structured errors carry more fields).
    """

    def __init__(
        self,
        operation: str,
        status: int,
        code: str,
        message: str,
        details: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(f"{operation}: HTTP {status} {code}: {message}")
        self.operation = operation
        self.status = status
        self.code = code
        self.server_message = message
        self.details: Mapping[str, Any] = details or {}


class PushRejectedError(ServerRejectedError):
    """The server refused the push session itself (not a row); its rows are pending again.

    A row the server cannot store (a type, NOT NULL or foreign-key error) does not raise: it
    is moved to the rejected changes (:meth:`oversqlite.Client.rejected_changes`).
    """


class SchemaMismatchError(PushRejectedError):
    """The server's table lacks a column the local table has, so it refused the push.

    ``table`` and ``column`` name it. The rows are pending again. Either add the column on the
    server (an additive change: a nullable or defaulted column, then restart the server) or
    drop it from the local table with a migration; local-only data belongs in an unmanaged table.
    """

    def __init__(
        self,
        exc: ServerRejectedError,
        table: str,
        column: str,
    ) -> None:
        super().__init__(exc.operation, exc.status, exc.code, exc.server_message, exc.details)
        self.args = (
            f"{exc.operation}: the server's table {table} has no column {column!r}, which the "
            f"local table has; add the column on the server (nullable or with a default) and "
            f"restart it, or remove it locally with a migration. The rows stay pending "
            f"(HTTP {exc.status} {exc.code}: {exc.server_message})",
        )
        self.table = table
        self.column = column


class LifecycleUnsupportedError(ServerRejectedError):
    """The server does not offer the connect lifecycle (no ``/sync/connect``)."""


class ProtocolError(SyncError):
    """A server answer broke the protocol contract (malformed, inconsistent or unverifiable).

    Nothing was applied and no checkpoint moved; retrying later is safe.
    """


class LocalStoreError(SyncError):
    """The local SQLite database failed."""


class DatabaseBusyError(LocalStoreError):
    """The local database stayed locked by another connection; retry the call."""
