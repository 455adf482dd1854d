"""Per-user sync state shared by every endpoint: the user lock, the scope rows and the scope
state machine (reference/protocol.md §10, reference/server.md §3 and §11.1).

Every function takes an asyncpg connection and runs inside the caller's transaction, so the rows
it creates or changes roll back with the request. Storage is the reference layout:
`sync.user_state` + `sync.scope_state` (state_code 0 UNINITIALIZED, 1 INITIALIZING, 2 INITIALIZED).

Writers (connect, push create/chunk/commit, server-originated writes)::

    async with user_lock(runtime.pool, actor.user_id) as conn, conn.transaction():
        scope = await lock_scope(conn, actor.user_id)           # ensure rows, FOR UPDATE
        # push create:
        seeding = await admit_push_create(
            conn, scope, source_id=actor.source_id, initialization_id=body.initialization_id,
            lease_ttl=ttl)                                      # raises 400/409/410
        # chunk/commit of a session that carries an initialization_id:
        scope = await require_active_lease(
            conn, actor.user_id, source_id=session_source, initialization_id=session_init_id,
            lease_ttl=ttl)                                      # raises 409 initialization_stale
        # the seeding commit, in the commit transaction:
        await mark_initialized(conn, scope.user_pk, source_id=session_source)

Readers (pull, snapshot create, watch subscribe), no lock and no writes::

    scope = await require_initialized(conn, actor.user_id)     # raises 409 scope_*

`Scope` also carries `user_state` (`next_bundle_seq`, `retained_bundle_floor`), so a caller that
needs them gets them from the same statement.

Time: as in the reference, leases use the app-server clock (`now()` here); every function takes
an optional `now` so tests and callers can pin it. An expired lease is treated as UNINITIALIZED
when read; it is never written back on its own (in the reference the write is always either
rolled back by the error that follows or overwritten by the next transition), so reads stay cheap.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import TypeAlias, cast

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from oversync_server.engine.connection import SyncConnection
from oversync_server.engine.errors import SyncError, service_unavailable
from oversync_server.engine.pool import SyncPool, UserTurns, database_unavailable
from oversync_wire.timefmt import rfc3339_nano

Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy
"""A plain asyncpg connection or a pooled one (what `pool.acquire()` yields)."""

__all__ = [
    "Connection",
    "Scope",
    "ScopeCode",
    "admit_push_create",
    "begin_initialization",
    "check_initialized",
    "ensure_scope",
    "lease_ttl_of",
    "lock_scope",
    "mark_initialized",
    "now",
    "read_scope",
    "refresh_lease",
    "require_active_lease",
    "require_initialized",
    "scope_initializing",
    "scope_uninitialized",
    "user_lock",
    "user_lock_key_sql",
]

log = logging.getLogger("oversync_server")

# The reference's per-user key (server.md §11.1); a server sharing the database with Go servers
# must use exactly this expression.
user_lock_key_sql = "hashtextextended($1::text, 0)"
_TRY_LOCK = f"SELECT pg_try_advisory_lock({user_lock_key_sql})"
_UNLOCK = f"SELECT pg_advisory_unlock({user_lock_key_sql})"
UNLOCK_TIMEOUT_SECONDS = 5.0
# Back-off between try-locks while another process holds the user's lock: full jitter over a
# doubling delay, capped so a waiter notices a released lock soon.
BACKOFF_INITIAL_SECONDS = 0.005
BACKOFF_MAX_SECONDS = 0.2
DEFAULT_USER_LOCK_TIMEOUT_SECONDS = 30.0


class ScopeCode(IntEnum):
    """`sync.scope_state.state_code`."""

    UNINITIALIZED = 0
    INITIALIZING = 1
    INITIALIZED = 2


@dataclass(frozen=True, slots=True)
class Scope:
    """One user's scope row joined with its `user_state` row (as of the reading statement)."""

    user_id: str
    user_pk: int
    state: ScopeCode
    initializer_source_id: str | None
    initialization_id: uuid.UUID | None
    lease_expires_at: datetime | None
    initialized_at: datetime | None
    initialized_by_source_id: str | None
    next_bundle_seq: int
    retained_bundle_floor: int

    @property
    def latest_bundle_seq(self) -> int:
        return self.next_bundle_seq - 1


def now() -> datetime:
    """The app-server clock the reference uses for leases (UTC, aware)."""
    return datetime.now(UTC)


# ------------------------------------------------------------------------------------ the lock


@contextlib.asynccontextmanager
async def user_lock(
    pool: asyncpg.Pool, user_id: str, *, reset: bool = True
) -> AsyncIterator[Connection]:
    """Serialise the user's writers; yield the pooled connection they run on.

    Every writer of a user's sync state (connect, push create/chunk/commit, server writes) runs
    under this lock, on the yielded connection, doing its locked work inside transactions (one
    per attempt). Waiting never holds a pool connection:

    1. in this process, the user's writers queue FIFO for their turn (`SyncPool.user_turns`);
    2. on a `SyncPool` connection every top-level transaction opened on the yielded connection
       takes the user's transaction-scoped advisory lock (the reference's key, so Go servers
       and other server processes on the same database, direct or behind a transaction-pooling
       PgBouncer, serialise with us) in its `BEGIN` round trip, backing off (jittered,
       doubling, capped at 200 ms) while another session holds it (`engine.connection`). The
       lock ends with each transaction: no unlock statement, nothing left for a reset.

    Both waits share one deadline, the pool's `user_lock_timeout` (30 s for a plain asyncpg
    pool), after which the writer gets a retryable 503 `service_unavailable`.

    A plain `asyncpg.Pool` (its connections are no `SyncConnection`) holds the session advisory lock instead, from
    a `pg_try_advisory_lock` before the work to a `pg_advisory_unlock` after it (a connection
    whose unlock failed is terminated, so the lock dies with its session).

    `reset=False` says only this package's statements run on the connection (no session state
    is left: `engine.pool`), so the pool's reset on release is skipped, one round trip less per
    operation; a host callback's connection keeps the reset.
    """
    if isinstance(pool, SyncPool):
        timeout, turns = pool.user_lock_timeout, pool.user_turns
    else:
        timeout, turns = DEFAULT_USER_LOCK_TIMEOUT_SECONDS, UserTurns()
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = None if timeout is None else started + timeout
    waiting = True
    try:
        async with turns.turn(user_id, timeout):
            waiting = False
            if not isinstance(pool, SyncPool):
                async with _session_lock(pool, user_id, deadline, timeout) as locked:
                    yield locked
                return
            connection = await pool.acquire()
            synced = cast(SyncConnection, connection)  # the proxy forwards to it
            waited = loop.time() - started
            synced.hold_user_lock(user_id, deadline, timeout)
            try:
                yield connection
            finally:
                if not connection.is_closed():
                    waited += synced.lock_waited
                    synced.hold_user_lock(None, None, None)
                    if not reset:
                        synced.skip_next_reset()
                if observe := getattr(pool, "on_user_lock_wait", None):  # metrics: the waits
                    observe(waited)
                await pool.release(connection)
    except TimeoutError as error:
        if not waiting:  # raised by the operation, not by the wait for the turn
            raise
        raise _lock_busy(user_id, timeout) from error


@contextlib.asynccontextmanager
async def _session_lock(
    pool: asyncpg.Pool, user_id: str, deadline: float | None, timeout: float | None
) -> AsyncIterator[Connection]:
    """The session advisory lock of a plain asyncpg pool's connection (see `user_lock`)."""
    connection = await _try_lock_until(pool, user_id, deadline, timeout)
    try:
        yield connection
    finally:
        await _unlock(connection, user_id)
        await pool.release(connection)


def _lock_busy(user_id: str, timeout: float | None) -> SyncError:
    return service_unavailable(
        f"sync operations of user {user_id} are busy: its lock was not free within"
        f" {timeout or 0:g}s (user_lock_timeout_seconds); retry"
    )


async def _try_lock_until(
    pool: asyncpg.Pool, user_id: str, deadline: float | None, timeout: float | None
) -> PoolConnectionProxy[asyncpg.Record]:
    """A pooled connection holding the user's advisory lock, or 503 at `deadline`."""
    loop = asyncio.get_running_loop()
    delay = BACKOFF_INITIAL_SECONDS
    while True:
        connection = await pool.acquire()
        try:
            locked = await connection.fetchval(_TRY_LOCK, user_id)
        except BaseException:
            # The server may or may not have granted it: end the session with the lock.
            connection.terminate()
            await pool.release(connection)
            raise
        if locked:
            return connection
        await pool.release(connection)
        remaining = None if deadline is None else deadline - loop.time()
        if remaining is not None and remaining <= 0:
            raise _lock_busy(user_id, timeout)
        pause = random.uniform(delay / 2, delay)
        await asyncio.sleep(pause if remaining is None else min(pause, remaining))
        delay = min(delay * 2, BACKOFF_MAX_SECONDS)


async def _unlock(connection: Connection, user_id: str) -> bool:
    """Release the user's lock; False when the session had to end (or had ended) instead."""
    if connection.is_closed():
        return False
    try:
        if connection.is_in_transaction():
            raise RuntimeError("user_lock released inside an open transaction")
        async with asyncio.timeout(UNLOCK_TIMEOUT_SECONDS):  # no extra task, unlike wait_for
            await connection.execute(_UNLOCK, user_id)
        return True
    except (Exception, asyncio.CancelledError) as error:
        if database_unavailable(error):  # the session is gone, and its lock with it
            log.warning("could not release the user lock: %s: %s", type(error).__name__, error)
        else:
            log.warning("could not release the user lock; closing its connection", exc_info=True)
    # The unlock failed: the server side may still hold the lock, so the session must end. A
    # connection the server closed has been handed back to the pool already (asyncpg releases it
    # when it is lost): its session, and the lock, are gone.
    with contextlib.suppress(asyncpg.InterfaceError):
        connection.terminate()
    return False


# ------------------------------------------------------------------------------------ reading

_COLUMNS = """
    u.user_pk, s.state_code, s.initializer_source_id, s.initialization_id,
    s.lease_expires_at, s.initialized_at, s.initialized_by_source_id,
    u.next_bundle_seq, u.retained_bundle_floor
"""

_READ = f"""
SELECT {_COLUMNS}
FROM sync.user_state u LEFT JOIN sync.scope_state s ON s.user_pk = u.user_pk
WHERE u.user_id = $1
"""

_LOCK_SCOPE = f"""
SELECT {_COLUMNS}
FROM sync.user_state u JOIN sync.scope_state s ON s.user_pk = u.user_pk
WHERE u.user_id = $1
FOR UPDATE OF s
"""

# One statement: the user row, then its scope row (UNINITIALIZED), each only if missing.
_ENSURE = """
WITH inserted AS (
    INSERT INTO sync.user_state (user_id) VALUES ($1)
    ON CONFLICT (user_id) DO NOTHING
    RETURNING user_pk
), target AS (
    SELECT user_pk FROM inserted
    UNION ALL
    SELECT user_pk FROM sync.user_state WHERE user_id = $1
    LIMIT 1
)
INSERT INTO sync.scope_state (user_pk, state_code)
SELECT user_pk, 0 FROM target
ON CONFLICT (user_pk) DO NOTHING
"""


def _scope(user_id: str, row: asyncpg.Record, at: datetime) -> Scope:
    code = row["state_code"]
    scope = Scope(
        user_id=user_id,
        user_pk=row["user_pk"],
        state=ScopeCode(0 if code is None else code),
        initializer_source_id=row["initializer_source_id"],
        initialization_id=row["initialization_id"],
        lease_expires_at=row["lease_expires_at"],
        initialized_at=row["initialized_at"],
        initialized_by_source_id=row["initialized_by_source_id"],
        next_bundle_seq=row["next_bundle_seq"],
        retained_bundle_floor=row["retained_bundle_floor"],
    )
    return _expire_lease(scope, at)


def _expire_lease(scope: Scope, at: datetime) -> Scope:
    """An INITIALIZING scope whose lease has run out reads as UNINITIALIZED."""
    if (
        scope.state is ScopeCode.INITIALIZING
        and scope.lease_expires_at is not None
        and scope.lease_expires_at <= at
    ):
        return replace(
            scope,
            state=ScopeCode.UNINITIALIZED,
            initializer_source_id=None,
            initialization_id=None,
            lease_expires_at=None,
        )
    return scope


async def read_scope(conn: Connection, user_id: str, *, at: datetime | None = None) -> Scope | None:
    """The user's scope without locks or writes (None when the user has no `user_state` row).

    A missing `scope_state` row reads as UNINITIALIZED; an expired lease as UNINITIALIZED.
    """
    row = await conn.fetchrow(_READ, user_id)
    return None if row is None else _scope(user_id, row, at or now())


async def ensure_scope(conn: Connection, user_id: str) -> None:
    """Create the user's `user_state` and `scope_state` rows if missing (in the caller's tx)."""
    await conn.execute(_ENSURE, user_id)


async def lock_scope(conn: Connection, user_id: str, *, at: datetime | None = None) -> Scope:
    """Ensure the user's rows exist and lock its scope row (`FOR UPDATE`) for this transaction.

    Call under `user_lock`, inside a transaction. The returned scope has an expired lease
    already turned into UNINITIALIZED (nothing is written for that; see the module notes).
    """
    scope, _ = await lock_scope_with(conn, _LOCK_SCOPE, user_id, at=at)
    return scope


def lock_scope_sql(columns: str, joins: str) -> str:
    """`lock_scope`'s statement reading more `columns` (from `joins` on `u`, the user_state
    row) in the same round trip; `$1` is the user id, further parameters are the caller's."""
    return f"""
SELECT {_COLUMNS}, {columns}
FROM sync.user_state u JOIN sync.scope_state s ON s.user_pk = u.user_pk
{joins}
WHERE u.user_id = $1
FOR UPDATE OF s
"""


async def lock_scope_with(
    conn: Connection, sql: str, user_id: str, *args: object, at: datetime | None = None
) -> tuple[Scope, asyncpg.Record]:
    """`lock_scope` through `sql` (from `lock_scope_sql`): the scope and the whole row."""
    moment = at or now()
    row = await conn.fetchrow(sql, user_id, *args)
    if row is None:  # first contact: create both rows, then lock them
        await ensure_scope(conn, user_id)
        row = await conn.fetchrow(sql, user_id, *args)
        if row is None:
            raise RuntimeError(f"scope rows for user {user_id!r} vanished after creation")
    return _scope(user_id, row, moment), row


# ------------------------------------------------------------------------------- transitions

_TO_INITIALIZING = """
UPDATE sync.scope_state
SET state_code = 1, initializer_source_id = $2, initialization_id = $3, lease_expires_at = $4,
    initialized_at = NULL, initialized_by_source_id = NULL
WHERE user_pk = $1
"""

_TO_INITIALIZED = """
UPDATE sync.scope_state
SET state_code = 2, initializer_source_id = NULL, initialization_id = NULL,
    lease_expires_at = NULL, initialized_at = now(), initialized_by_source_id = $2
WHERE user_pk = $1
RETURNING initialized_at
"""

_REFRESH_LEASE = "UPDATE sync.scope_state SET lease_expires_at = $2 WHERE user_pk = $1"


async def begin_initialization(
    conn: Connection,
    scope: Scope,
    *,
    source_id: str,
    lease_ttl: timedelta,
    initialization_id: uuid.UUID | None = None,
    at: datetime | None = None,
) -> Scope:
    """Scope -> INITIALIZING by `source_id` with lease now+ttl (a new id unless one is given)."""
    init_id = initialization_id or uuid.uuid4()
    lease = (at or now()) + lease_ttl
    await conn.execute(_TO_INITIALIZING, scope.user_pk, source_id, init_id, lease)
    return replace(
        scope,
        state=ScopeCode.INITIALIZING,
        initializer_source_id=source_id,
        initialization_id=init_id,
        lease_expires_at=lease,
        initialized_at=None,
        initialized_by_source_id=None,
    )


async def mark_initialized(conn: Connection, user_pk: int, *, source_id: str) -> None:
    """Scope -> INITIALIZED by `source_id` (`initialized_at` = DB now()).

    Used by connect (`initialize_empty`), by the seeding commit (with the session's source, in the
    commit transaction) and by server-originated writes that auto-initialize a scope.
    """
    await conn.execute(_TO_INITIALIZED, user_pk, source_id)


async def refresh_lease(
    conn: Connection, scope: Scope, *, lease_ttl: timedelta, at: datetime | None = None
) -> Scope:
    """Move an INITIALIZING scope's lease to now+ttl."""
    lease = (at or now()) + lease_ttl
    await conn.execute(_REFRESH_LEASE, scope.user_pk, lease)
    return replace(scope, lease_expires_at=lease)


# ------------------------------------------------------------------------------------- checks


def scope_uninitialized(user_id: str) -> SyncError:
    return SyncError("scope_uninitialized", f"sync scope for user {user_id} is not initialized")


def scope_initializing(user_id: str, lease_expires_at: datetime | None) -> SyncError:
    until = f" until {rfc3339_nano(lease_expires_at)}" if lease_expires_at else ""
    return SyncError("scope_initializing", f"sync scope for user {user_id} is initializing{until}")


def _stale(message: str) -> SyncError:
    return SyncError("initialization_stale", message)


def _same_id(active: uuid.UUID | None, given: str | uuid.UUID | None) -> bool:
    if active is None or given is None:
        return False
    return str(active) == (str(given) if isinstance(given, uuid.UUID) else given.strip())


def check_initialized(user_id: str, scope: Scope | None) -> Scope:
    """Raise 409 `scope_uninitialized` / `scope_initializing` unless the scope is INITIALIZED."""
    if scope is None or scope.state is ScopeCode.UNINITIALIZED:
        raise scope_uninitialized(user_id)
    if scope.state is ScopeCode.INITIALIZING:
        raise scope_initializing(user_id, scope.lease_expires_at)
    return scope


async def require_initialized(
    conn: Connection, user_id: str, *, at: datetime | None = None
) -> Scope:
    """The read-path gate (pull, snapshot create, watch): one read-only statement.

    Returns the INITIALIZED scope (with `next_bundle_seq` / `retained_bundle_floor`); raises
    409 `scope_uninitialized` (no row, UNINITIALIZED, or an expired lease) or
    409 `scope_initializing` ("... is initializing until <RFC3339Nano>"), for every source,
    the initializer included.
    """
    return check_initialized(user_id, await read_scope(conn, user_id, at=at))


async def admit_push_create(
    conn: Connection,
    scope: Scope,
    *,
    source_id: str,
    initialization_id: str | None,
    lease_ttl: timedelta,
    at: datetime | None = None,
) -> bool:
    """The push-create scope gate on a scope from `lock_scope`; True for a seeding push.

    * UNINITIALIZED: 410 `initialization_expired` if an initialization_id was sent, else
      409 `scope_uninitialized`;
    * INITIALIZING: 400 `push_session_invalid` without an initialization_id; 409
      `initialization_stale` when `source_id` does not hold the lease or the id differs;
      on success the lease is refreshed to now+ttl;
    * INITIALIZED: 400 `push_session_invalid` if an initialization_id was sent.

    `initialization_id` is the request's value; blank counts as absent.
    """
    given = (initialization_id or "").strip() or None
    if scope.state is ScopeCode.UNINITIALIZED:
        if given is not None:
            raise SyncError("initialization_expired", "initialization lease is no longer active")
        raise scope_uninitialized(scope.user_id)
    if scope.state is ScopeCode.INITIALIZED:
        if given is not None:
            raise SyncError(
                "push_session_invalid",
                "initialization_id must be absent once the scope is initialized",
            )
        return False
    if given is None:
        raise SyncError(
            "push_session_invalid",
            "initialization_id is required while the scope is initializing",
        )
    _check_lease_owner(scope, source_id=source_id, initialization_id=given)
    await refresh_lease(conn, scope, lease_ttl=lease_ttl, at=at)
    return True


def _check_lease_owner(scope: Scope, *, source_id: str, initialization_id: str | uuid.UUID) -> None:
    if scope.initializer_source_id != source_id:
        raise _stale("source does not own the active initialization lease")
    if not _same_id(scope.initialization_id, initialization_id):
        raise _stale("initialization_id does not match the active initialization lease")


async def require_active_lease(
    conn: Connection,
    user_id: str,
    *,
    source_id: str,
    initialization_id: str | uuid.UUID,
    lease_ttl: timedelta,
    at: datetime | None = None,
) -> Scope:
    """The lease check of a seeding session's chunk upload or commit; refreshes the lease.

    Locks the scope (`lock_scope`) and raises 409 `initialization_stale` with the reference's
    messages: "scope is no longer initializing" (also for an expired lease),
    "source does not own the active initialization lease", "initialization_id does not match
    the active initialization lease". `source_id` is the session's source.
    """
    moment = at or now()
    scope = await lock_scope(conn, user_id, at=moment)
    if scope.state is not ScopeCode.INITIALIZING:
        raise _stale("scope is no longer initializing")
    _check_lease_owner(scope, source_id=source_id, initialization_id=initialization_id)
    return await refresh_lease(conn, scope, lease_ttl=lease_ttl, at=moment)


def lease_ttl_of(seconds: int | float) -> timedelta:
    """The configured lease TTL (`ServiceConfig.initialization_lease_ttl_seconds`)."""
    return timedelta(seconds=seconds)
