"""The PostgreSQL pool of one server process: bounded waits, session timeouts, per-user turns.

Every wait a request can be stuck in is bounded, and each bound answers a retryable 503
`service_unavailable` instead of a hang:

* `SyncPool.acquire()` waits at most `pool_acquire_timeout_seconds` for a connection (also when
  it is used through `pool.execute()` & co., and by code that only knows `asyncpg.Pool`);
* every pooled connection starts with `lock_timeout`, `statement_timeout` and
  `idle_in_transaction_session_timeout` (startup parameters, so the pool's `RESET ALL` on release
  keeps them);
* a released connection is reset (asyncpg's `pg_advisory_unlock_all()`, `CLOSE ALL`,
  `UNLISTEN *`, `RESET ALL`: one more round trip) unless the code that used it marked it clean
  with `SyncConnection.skip_next_reset()`: `engine.scope.user_lock` does for code that runs
  only this package's statements (no session state: the user lock is transaction-scoped,
  every setting is `SET LOCAL`/`set_config(..., true)`, cursors live in transactions);
* behind a transaction-pooling PgBouncer (`transaction_pooling=True`) the same timeouts are
  set by every transaction instead (`engine.txpool`);
* `user_turns` is the per-process queue of each user's writers in front of the pool (see
  `engine.scope.user_lock`): a writer waiting for its user's turn holds no connection, so one
  busy user cannot drain the pool that every other user needs.

    pool = await create_pool(url, min_size=1, max_size=10, acquire_timeout=10.0,
                             user_lock_timeout=30.0, session=SessionTimeouts(10, 300, 60))
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.pool import PoolAcquireContext, PoolConnectionProxy

from oversync_server.engine.connection import SyncConnection
from oversync_server.engine.errors import SyncError, service_unavailable
from oversync_server.engine.txpool import transaction_pooled_connection_class

if TYPE_CHECKING:  # generic only in the type stubs
    _AcquireContext = PoolAcquireContext[asyncpg.Record]
    _Pool = asyncpg.Pool[asyncpg.Record]
else:
    _AcquireContext = PoolAcquireContext
    _Pool = asyncpg.Pool

__all__ = [
    "SessionTimeouts",
    "SyncConnection",
    "SyncPool",
    "UserTurns",
    "create_pool",
    "database_unavailable",
    "pool_exhausted",
]


@dataclass(frozen=True, slots=True)
class SessionTimeouts:
    """Session settings of every pooled connection, in seconds (0 = off)."""

    lock_timeout: float = 10.0
    statement_timeout: float = 300.0
    idle_in_transaction_session_timeout: float = 60.0

    def server_settings(self) -> dict[str, str]:
        """The startup parameters, in milliseconds as PostgreSQL takes them."""
        return {
            name: str(round(seconds * 1000))
            for name, seconds in (
                ("lock_timeout", self.lock_timeout),
                ("statement_timeout", self.statement_timeout),
                ("idle_in_transaction_session_timeout", self.idle_in_transaction_session_timeout),
            )
        }


# SQLSTATEs after which the same request, retried, can succeed: the connection is gone or the
# server is going away (class 08, 57P01-57P03), too many connections (53300), and the bounded
# waits of the sessions: lock_timeout (55P03, once `run_retrying` gave up) and statement_timeout
# or a cancel (57014).
_UNAVAILABLE_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300", "55P03", "57014"})
# asyncpg's InterfaceError texts of a connection that was lost or a pool that is closing.
_LOST_CONNECTION_TEXTS = ("connection is closed", "connection was closed", "pool is closing")


def _unavailable(error: BaseException) -> bool:
    if isinstance(error, asyncpg.PostgresError):
        state = str(getattr(error, "sqlstate", "") or "")
        return state.startswith("08") or state in _UNAVAILABLE_SQLSTATES
    if isinstance(error, asyncpg.InterfaceError):
        text = str(error)
        return any(lost in text for lost in _LOST_CONNECTION_TEXTS)
    # The protocol of a pooled connection whose backend was terminated while idle is stuck
    # ("cannot switch to state ...; another operation is in progress"); nothing a client did.
    if isinstance(error, asyncpg.exceptions.InternalClientError):
        return True
    return isinstance(error, OSError)  # ConnectionError, TimeoutError, refused connects


def database_unavailable(error: BaseException) -> bool:
    """True when `error`, or an error it was raised while handling, means "the database is
    unreachable or busy right now" (a lost connection or failover, a server shutdown, a hit
    session timeout), not a bug: the same request retried later can succeed."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if _unavailable(current):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def pool_exhausted(timeout: float | None) -> SyncError:
    return service_unavailable(
        f"no database connection became available within {timeout:g}s"
        " (pool_acquire_timeout_seconds); retry"
    )


class _Turn:
    __slots__ = ("holders", "lock")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.holders = 0  # the holder and the waiters


class UserTurns:
    """Per-process FIFO turns per user; an entry lives only while someone holds or waits."""

    def __init__(self) -> None:
        self._turns: dict[str, _Turn] = {}

    def __len__(self) -> int:
        return len(self._turns)

    @contextlib.asynccontextmanager
    async def turn(self, user_id: str, timeout: float | None) -> AsyncIterator[None]:
        """Wait (FIFO, at most `timeout` seconds, None = no limit) for `user_id`'s turn.

        Raises `TimeoutError` when the turn did not come in time.
        """
        entry = self._turns.get(user_id)
        if entry is None:
            entry = self._turns[user_id] = _Turn()
        entry.holders += 1
        try:
            if entry.holders == 1:  # nobody holds or waits: the turn is ours at once
                await entry.lock.acquire()
            else:
                async with asyncio.timeout(timeout):
                    await entry.lock.acquire()
            try:
                yield
            finally:
                entry.lock.release()
        finally:
            entry.holders -= 1
            if entry.holders == 0:
                del self._turns[user_id]


async def _reset(connection: asyncpg.Connection) -> None:
    """The pool's reset on release (after asyncpg rolled back an open transaction)."""
    if isinstance(connection, SyncConnection) and connection._skip_reset:
        connection._skip_reset = False
        return
    query = connection.get_reset_query()
    if query:
        await connection.execute(query)


class _BoundedAcquire(_AcquireContext):
    """`pool.acquire()` whose timeout is a 503 `service_unavailable`."""

    __slots__ = ()

    async def __aenter__(self) -> PoolConnectionProxy[asyncpg.Record]:
        try:
            return await super().__aenter__()
        except TimeoutError as error:
            raise pool_exhausted(self.timeout) from error

    def __await__(self) -> Generator[Any, None, PoolConnectionProxy[asyncpg.Record]]:
        self.done = True
        return self._bounded().__await__()

    async def _bounded(self) -> PoolConnectionProxy[asyncpg.Record]:
        try:
            return await PoolAcquireContext(self.pool, self.timeout)
        except TimeoutError as error:
            raise pool_exhausted(self.timeout) from error


class SyncPool(_Pool):
    """An asyncpg pool with a default acquire timeout and the process's per-user turns."""

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int,
        max_size: int,
        acquire_timeout: float | None,
        user_lock_timeout: float | None,
        session: SessionTimeouts,
        transaction_pooling: bool = False,
    ) -> None:
        # Behind a transaction-pooling PgBouncer the timeouts are set per transaction and the
        # prepared-statement cache is off (engine.txpool).
        connection_options: dict[str, Any] = (
            {
                "connection_class": transaction_pooled_connection_class(session.server_settings()),
                "statement_cache_size": 0,
            }
            if transaction_pooling
            else {
                "connection_class": SyncConnection,
                "server_settings": session.server_settings(),
            }
        )
        super().__init__(
            dsn,
            min_size=min_size,
            max_size=max_size,
            max_queries=50_000,
            max_inactive_connection_lifetime=300.0,
            loop=None,
            record_class=asyncpg.Record,
            reset=_reset,
            **connection_options,
        )
        self.transaction_pooling = transaction_pooling
        self.acquire_timeout = acquire_timeout
        self.user_lock_timeout = user_lock_timeout
        self.user_turns = UserTurns()
        # Called with each writer's wait for its user's lock, in seconds (metrics).
        self.on_user_lock_wait: Callable[[float], None] | None = None

    def acquire(self, *, timeout: float | None = None) -> PoolAcquireContext[asyncpg.Record]:
        return _BoundedAcquire(self, self.acquire_timeout if timeout is None else timeout)


async def create_pool(
    dsn: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    acquire_timeout: float = 10.0,
    user_lock_timeout: float = 30.0,
    session: SessionTimeouts | None = None,
    transaction_pooling: bool = False,
) -> SyncPool:
    """Open a `SyncPool` (timeouts in seconds, 0 = no limit); `transaction_pooling` for a
    PgBouncer in transaction mode (`engine.txpool`)."""
    pool = SyncPool(
        dsn,
        min_size=min_size,
        max_size=max_size,
        acquire_timeout=acquire_timeout or None,
        user_lock_timeout=user_lock_timeout or None,
        session=session or SessionTimeouts(),
        transaction_pooling=transaction_pooling,
    )
    return await pool
