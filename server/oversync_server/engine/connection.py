"""The asyncpg connection class of the server's pool (`engine.pool`, `engine.txpool`).

**Per-user serialisation** (`engine.scope.user_lock`) is a transaction-scoped advisory lock on
the reference's key (`engine.scope.user_lock_key_sql`), taken by every top-level transaction a
writer opens on the connection `user_lock` yields (`hold_user_lock`), in the round trip of its
`BEGIN`: the transaction starts with one simple query, `BEGIN; [settings;] SELECT 1 WHERE
pg_try_advisory_xact_lock(...)`, whose command tag says whether the lock was free. The lock ends
with the transaction, so there is no unlock statement and nothing for the pool's reset to clear.
Session and transaction advisory locks conflict on the same key, so Go servers (session locks)
and every other server process serialise with us, directly or behind a transaction-pooling
PgBouncer (`engine.txpool`, which also sets the session timeouts in the same round trip).

While another session holds the lock the transaction stays open and retries
`pg_try_advisory_xact_lock` with jittered, doubling back-off (capped at 200 ms) until the
writer's deadline, then fails with a retryable 503. Writers run at READ COMMITTED, so waiting in
the transaction is safe: every later statement sees what the holder committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg
from asyncpg.transaction import Transaction, TransactionState

if TYPE_CHECKING:
    from asyncpg.transaction import _IsolationLevels

from oversync_server.engine.errors import service_unavailable

__all__ = ["SyncConnection", "transaction_with"]

_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 0))"
BACKOFF_INITIAL_SECONDS = 0.005
BACKOFF_MAX_SECONDS = 0.2


def _text_literal(value: str) -> str:
    """An SQL string literal of `value`, whatever `standard_conforming_strings` says."""
    return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def _begin_sql(transaction: Transaction) -> str:
    """asyncpg's `BEGIN` of a top-level transaction (isolation, READ ONLY, DEFERRABLE)."""
    query = "BEGIN"
    isolation: str | None = transaction._isolation  # type: ignore[attr-defined]
    if isolation:
        query += " ISOLATION LEVEL " + isolation.replace("_", " ").upper()
    if transaction._readonly:  # type: ignore[attr-defined]
        query += " READ ONLY"
    if transaction._deferrable:  # type: ignore[attr-defined]
        query += " DEFERRABLE"
    return query + ";"


class _SyncTransaction(Transaction):
    """A transaction whose `BEGIN` round trip, when top-level, also runs the connection's
    per-transaction settings, this transaction's own (`settings`) and takes the user lock the
    connection holds (see the module docstring)."""

    __slots__ = ("_settings",)
    _settings: str
    _state: TransactionState

    async def start(self) -> None:
        connection = self._connection  # type: ignore[attr-defined]
        assert isinstance(connection, SyncConnection)
        internals: Any = connection  # asyncpg's `_top_xact` is not in its type stubs
        user = connection._lock_user
        suffix = connection.begin_settings + self._settings
        # (a user id PostgreSQL cannot hold as text takes the lock in a statement of its own)
        lock_in_begin = user is not None and "\x00" not in user
        if user is not None and lock_in_begin:
            suffix += (
                " SELECT 1 WHERE pg_try_advisory_xact_lock(hashtextextended("
                f"{_text_literal(user)}::text, 0))"
            )
        top_level = internals._top_xact is None and not connection.is_in_transaction()
        if not top_level or self._state is not TransactionState.NEW or not suffix:
            await super().start()  # nested (a savepoint), misuse (asyncpg's errors), plain
            if top_level and user is not None:
                await self._locked(connection, user, None)
            if not top_level and self._settings:
                await asyncpg.Connection.execute(connection, self._settings)
            return
        internals._top_xact = self
        try:
            status = await asyncpg.Connection.execute(connection, _begin_sql(self) + suffix)
            if user is not None:
                await self._locked(connection, user, status if lock_in_begin else None)
        except BaseException:
            self._state = TransactionState.FAILED
            internals._top_xact = None
            if connection.is_in_transaction():  # end it: `async with` will not exit it
                try:
                    await asyncpg.Connection.execute(connection, "ROLLBACK")
                except Exception:
                    connection.terminate()
            raise
        self._state = TransactionState.STARTED

    @staticmethod
    async def _locked(connection: SyncConnection, user: str, status: str | None) -> None:
        if status == "SELECT 1":
            return
        if status is None and await asyncpg.Connection.fetchval(connection, _TRY_LOCK, user):
            return
        await connection._wait_for_user_lock(user)


class SyncConnection(asyncpg.Connection):
    """A pooled connection of the server: takes the user lock it is told to hold in every
    top-level transaction, and can skip the pool's reset on its next release."""

    __slots__ = ("_lock_deadline", "_lock_timeout", "_lock_user", "_skip_reset", "lock_waited")

    # SQL run in the `BEGIN` round trip of every top-level transaction (statements ending in
    # `;`); `engine.txpool` sets the session timeouts there.
    begin_settings: str = ""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._skip_reset = False
        self._lock_user: str | None = None
        self._lock_deadline: float | None = None
        self._lock_timeout: float | None = None
        self.lock_waited = 0.0  # seconds this connection backed off for the user lock

    def skip_next_reset(self) -> None:
        """The session holds nothing to reset (no advisory lock, setting, cursor or LISTEN):
        the next release returns it to the pool as it is."""
        self._skip_reset = True

    # ------------------------------------------------------------------ the user lock
    def hold_user_lock(
        self, user_id: str | None, deadline: float | None, timeout: float | None
    ) -> None:
        """From now on (until called with None), every top-level transaction takes the
        transaction-scoped advisory lock of `user_id`, waiting at most until `deadline` (loop
        time) and then failing with a retryable 503."""
        self._lock_user, self._lock_deadline, self._lock_timeout = user_id, deadline, timeout
        self.lock_waited = 0.0

    async def _wait_for_user_lock(self, user: str) -> None:
        """Another session holds the user's lock: retry in this transaction until the
        deadline (see the module docstring)."""
        loop = asyncio.get_running_loop()
        started = loop.time()
        delay = BACKOFF_INITIAL_SECONDS
        try:
            while True:
                remaining = (
                    None if self._lock_deadline is None else self._lock_deadline - loop.time()
                )
                if remaining is not None and remaining <= 0:
                    raise service_unavailable(
                        f"sync operations of user {user} are busy: its lock was not free within"
                        f" {self._lock_timeout or 0:g}s (user_lock_timeout_seconds); retry"
                    )
                pause = random.uniform(delay / 2, delay)
                await asyncio.sleep(pause if remaining is None else min(pause, remaining))
                delay = min(delay * 2, BACKOFF_MAX_SECONDS)
                if await asyncpg.Connection.fetchval(self, _TRY_LOCK, user):
                    return
        finally:
            self.lock_waited += loop.time() - started

    def transaction(
        self,
        *,
        isolation: _IsolationLevels | None = None,
        readonly: bool = False,
        deferrable: bool = False,
        settings: str = "",
    ) -> Transaction:
        """asyncpg's transaction; `settings` (SQL statements, each ending in `;`, e.g.
        `SET LOCAL ...;`) run in its `BEGIN` round trip."""
        self._check_open()  # type: ignore[attr-defined]
        transaction = _SyncTransaction(self, isolation, readonly, deferrable)
        transaction._settings = (" " + settings) if settings else ""
        return transaction


@contextlib.asynccontextmanager
async def transaction_with(connection: Any, settings: str) -> AsyncIterator[None]:
    """A transaction on `connection` whose `settings` (statements, each ending in `;`) run
    first: in the `BEGIN` round trip on a `SyncConnection` (or a pool's proxy of one), right
    after `BEGIN` on any other asyncpg connection."""
    if getattr(connection, "begin_settings", None) is not None:
        async with connection.transaction(settings=settings):
            yield
        return
    async with connection.transaction():
        await connection.execute(settings)
        yield
