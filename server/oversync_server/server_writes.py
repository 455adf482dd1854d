"""Server-originated writes: change a user's synced data from server code, as one bundle
(reference/server.md §10: `ScopeManager.ExecWrite` and `WithinSyncBundle`).

Writes to registered tables are refused outside a sync bundle context (the owner-guard trigger),
so server code (an admin tool, a webhook, a scheduled job) writes through this module. The
callback gets the connection of one transaction; whatever it changes in registered tables
(cascades and trigger effects included) becomes one ordinary committed bundle of the scope:
devices receive it through pull, the watch stream wakes them, snapshots include it.

`exec_write` is the convenience API. It serialises with every other writer of the scope (the
per-user advisory lock), auto-initialises an UNINITIALIZED scope (so no device can later win
`initialize_local`), numbers the bundle from the writer's own watermark and refuses a callback
that captured nothing (rolling everything back, the auto-initialisation included)::

    from oversync_server.server_writes import exec_write

    async def add_welcome_post(conn: Connection) -> None:
        await conn.execute(
            "INSERT INTO business.posts (id, title, content) VALUES ($1, 'Welcome', 'Hi!')",
            uuid.uuid4(),
        )  # `_sync_scope_id` is filled in by the owner guard

    result = await exec_write(runtime, "alice", writer_id="server:welcome", fn=add_welcome_post)
    result.bundle.bundle_seq      # the committed bundle devices will pull
    result.auto_initialized       # True if alice's scope was created by this write

`within_sync_bundle` is the low-level primitive: the caller chooses the exact
`(source_id, source_bundle_id)`, the scope must already be initialized, and a callback that
captured nothing still commits (its unregistered writes persist) and returns None.

Writer ids share the namespace of device source ids within a scope (the same id continues the
same sequence) and start at 1 in every scope. The callback runs once: there is no retry on
serialization failures, so it may have side effects outside the database. An exception raised
by the callback rolls the whole transaction back and propagates unchanged.

Exceptions (all `ServerWriteError`)::

    ServerWriteError
    ├── ScopeWriteInvalidError (ValueError)   blank scope/writer id, bad source_bundle_id, no callback
    ├── ScopeWriteNoCapturedChangesError      exec_write's callback changed no registered row
    └── ServerWriteRejectedError              the scope or source refuses the write; `.code` is the
                                              protocol code (scope_initializing,
                                              scope_uninitialized, source_retired,
                                              history_pruned, source_sequence_out_of_order)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from oversync_server.engine import sources
from oversync_server.engine.capture import CommittedBundle, bundle_transaction
from oversync_server.engine.errors import SyncError
from oversync_server.engine.schema import catalog_of
from oversync_server.engine.scope import (
    Connection,
    Scope,
    ScopeCode,
    check_initialized,
    lock_scope,
    mark_initialized,
    user_lock,
)
from oversync_server.runtime import SyncRuntime

__all__ = [
    "ScopeWriteInvalidError",
    "ScopeWriteNoCapturedChangesError",
    "ScopeWriteResult",
    "ServerWriteError",
    "ServerWriteRejectedError",
    "exec_write",
    "within_sync_bundle",
]

T = TypeVar("T")
WriteCallback = Callable[[Connection], Awaitable[T]]


class ServerWriteError(Exception):
    """Base of the errors of server-originated writes."""


class ScopeWriteInvalidError(ServerWriteError, ValueError):
    """The arguments cannot describe a write (blank ids, non-positive source_bundle_id...)."""


class ScopeWriteNoCapturedChangesError(ServerWriteError):
    """`exec_write`'s callback changed no registered row; nothing was committed."""

    def __init__(self, scope_id: str, writer_id: str) -> None:
        super().__init__(
            f"server write by {writer_id} to scope {scope_id} captured no registered-table"
            " changes; nothing was committed"
        )
        self.scope_id = scope_id
        self.writer_id = writer_id


class ServerWriteRejectedError(ServerWriteError):
    """The scope or source state refuses the write (same codes as the HTTP protocol)."""

    def __init__(self, code: str, message: str, details: dict[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.details = details  # e.g. replaced_by_source_id for source_retired


@dataclass(frozen=True, slots=True)
class ScopeWriteResult(Generic[T]):
    """A committed server write: the bundle, whether it initialized the scope, the callback's
    return value."""

    bundle: CommittedBundle
    auto_initialized: bool
    value: T


@contextmanager
def _rejections() -> Iterator[None]:
    """Scope/source refusals surface as `ServerWriteRejectedError`, not HTTP-shaped errors."""
    try:
        yield
    except SyncError as error:
        raise ServerWriteRejectedError(error.code, error.message, dict(error.extra)) from error


async def _capture(
    runtime: SyncRuntime,
    conn: Connection,
    scope: Scope,
    *,
    source_id: str,
    source_bundle_id: int,
    fn: WriteCallback[T],
) -> tuple[CommittedBundle | None, T]:
    """Check the source, run `fn` under the bundle context and finalize (in the caller's tx)."""
    with _rejections():
        await sources.require_next(
            conn,
            user_id=scope.user_id,
            user_pk=scope.user_pk,
            source_id=source_id,
            source_bundle_id=source_bundle_id,
        )
    # Business FKs are checked at COMMIT, after the bundle is final (as push commits do).
    await conn.execute("SET CONSTRAINTS ALL DEFERRED")
    async with bundle_transaction(
        conn,
        catalog_of(runtime),
        runtime.config,
        user_id=scope.user_id,
        user_pk=scope.user_pk,
        source_id=source_id,
        source_bundle_id=source_bundle_id,
    ) as capture:
        value = await fn(conn)
    return capture.bundle, value


async def exec_write(
    runtime: SyncRuntime, scope_id: str, *, writer_id: str, fn: WriteCallback[T]
) -> ScopeWriteResult[T]:
    """Run `fn` in one captured transaction of `scope_id` under the stable `writer_id`.

    The bundle's `source_bundle_id` is the writer's next one in this scope. An UNINITIALIZED
    scope is initialized (by `writer_id`) in the same transaction.

    Raises `ScopeWriteInvalidError`, `ServerWriteRejectedError` (scope initializing, writer
    retired), `ScopeWriteNoCapturedChangesError`, or whatever `fn` raises (all roll back).
    """
    scope_id, writer_id = _required(scope_id, "scope id"), _required(writer_id, "writer id")
    _require_callable(fn)
    async with user_lock(runtime.pool, scope_id) as conn, conn.transaction():
        scope = await lock_scope(conn, scope_id)
        auto_initialized = scope.state is ScopeCode.UNINITIALIZED
        if auto_initialized:
            await mark_initialized(conn, scope.user_pk, source_id=writer_id)
        else:
            with _rejections():
                check_initialized(scope_id, scope)  # INITIALIZING: fail closed, do not wait
        with _rejections():
            expected = await sources.next_source_bundle_id(
                conn, user_id=scope_id, user_pk=scope.user_pk, source_id=writer_id
            )
        bundle, value = await _capture(
            runtime, conn, scope, source_id=writer_id, source_bundle_id=expected, fn=fn
        )
        if bundle is None:  # leaving the block with an error rolls back, auto-init included
            raise ScopeWriteNoCapturedChangesError(scope_id, writer_id)
    return ScopeWriteResult(bundle=bundle, auto_initialized=auto_initialized, value=value)


async def within_sync_bundle(
    runtime: SyncRuntime,
    user_id: str,
    *,
    source_id: str,
    source_bundle_id: int,
    fn: WriteCallback[Any],
) -> CommittedBundle | None:
    """Run `fn` as bundle `(source_id, source_bundle_id)` of an initialized scope.

    `source_bundle_id` must be exactly the source's next one. Returns the committed bundle, or
    None when `fn` changed no registered row (the transaction still commits).

    Raises `ScopeWriteInvalidError`, `ServerWriteRejectedError` (scope not initialized, source
    retired, tuple below or above the expected one), or whatever `fn` raises (all roll back).
    """
    user_id, source_id = _required(user_id, "user id"), _required(source_id, "source id")
    if isinstance(source_bundle_id, bool) or source_bundle_id < 1:
        raise ScopeWriteInvalidError(f"source_bundle_id must be > 0, got {source_bundle_id}")
    _require_callable(fn)
    async with user_lock(runtime.pool, user_id) as conn, conn.transaction():
        scope = await lock_scope(conn, user_id)
        with _rejections():
            check_initialized(user_id, scope)
        bundle, _ = await _capture(
            runtime, conn, scope, source_id=source_id, source_bundle_id=source_bundle_id, fn=fn
        )
    return bundle


def _required(value: str, name: str) -> str:
    """`value` itself (ids are identities: never rewritten), refused when blank."""
    if not isinstance(value, str) or not value.strip():
        raise ScopeWriteInvalidError(f"{name} is required")
    return value


def _require_callable(fn: object) -> None:
    if not callable(fn):
        raise ScopeWriteInvalidError("a write callback is required")
