"""Connections through a PgBouncer in transaction pooling mode (`pool_mode: transaction`).

Behind such a pooler every transaction may run on a different PostgreSQL session, so nothing
may depend on session state. This module keeps the server's guarantees without it:

* **Per-user serialisation** uses the transaction-scoped `pg_try_advisory_xact_lock` on the
  reference's key (`engine.scope.user_lock_key_sql`), taken by every top-level transaction a
  writer opens on the connection `user_lock` yields (`hold_user_lock`). Advisory locks of the
  session and transaction kind conflict on the same key, so Go servers and servers in session
  mode on the same database still serialise with us.
* **Session timeouts** (`lock_timeout`, `statement_timeout`, `idle_in_transaction_session_timeout`)
  cannot be startup parameters (PgBouncer refuses unknown ones) or session `SET`s; each
  top-level transaction sets them with `set_config(..., true)` in its first statement.
* **Statements outside a transaction**: PgBouncer 1.18 (Debian 12) pins a server connection
  only until the end of a transaction, and asyncpg sends a parameterised statement as
  Parse/Describe/Sync, then Bind/Execute/Sync, which could land on two sessions. So a standalone
  statement runs in a transaction of its own here, and the prepared-statement cache is off
  (`statement_cache_size=0`, set by `engine.pool`).
* Releasing a connection to the pool sends no reset query (`get_reset_query` is empty): there
  is no session state to reset, and it would run on an arbitrary session of the pooler.

`LISTEN` needs a real session: the watch listener uses `watch_database_url` (direct or a
session-mode pooler) instead of the pool.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING, Any, cast

from asyncpg.transaction import Transaction

if TYPE_CHECKING:
    from asyncpg.transaction import _IsolationLevels

from oversync_server.engine.connection import SyncConnection
from oversync_server.engine.errors import service_unavailable

__all__ = ["TransactionPooledConnection", "transaction_pooled_connection_class"]

_USER_LOCK_KEY = "hashtextextended($4::text, 0)"
_BEGIN_SETTINGS = (
    "SELECT set_config('lock_timeout', $1, true),"
    " set_config('statement_timeout', $2, true),"
    " set_config('idle_in_transaction_session_timeout', $3, true)"
)
_BEGIN = f"{_BEGIN_SETTINGS}, NULL::boolean"
_BEGIN_LOCKED = f"{_BEGIN_SETTINGS}, pg_try_advisory_xact_lock({_USER_LOCK_KEY})"
_TRY_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended($1::text, 0))"
BACKOFF_INITIAL_SECONDS = 0.005
BACKOFF_MAX_SECONDS = 0.2


class _PooledTransaction(Transaction):
    """A transaction that, when top-level, applies the session timeouts and the user lock."""

    __slots__ = ()

    async def start(self) -> None:
        connection = self._connection  # type: ignore[attr-defined]
        assert isinstance(connection, TransactionPooledConnection)
        top_level = not connection.is_in_transaction()
        await super().start()
        if not top_level:
            return
        try:
            await connection._begin_transaction()
        except BaseException:
            # End the transaction before the error leaves `async with`, which will not exit it.
            managed: bool = self._managed  # type: ignore[has-type]
            self._managed = False
            try:
                await self.rollback()
            except Exception:
                connection.terminate()
            finally:
                self._managed = managed
            raise


class TransactionPooledConnection(SyncConnection):
    """An asyncpg connection for a transaction-pooling PgBouncer (see the module docstring)."""

    # Set per pool by `transaction_pooled_connection_class`: milliseconds as text.
    session_settings: tuple[str, str, str] = ("0", "0", "0")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_user: str | None = None
        self._lock_deadline: float | None = None
        self._lock_timeout: float | None = None

    # ------------------------------------------------------------------ the user lock
    def hold_user_lock(
        self, user_id: str | None, deadline: float | None, timeout: float | None
    ) -> None:
        """From now on (until called with None), every top-level transaction takes the
        transaction-scoped advisory lock of `user_id`, waiting at most until `deadline` (loop
        time) and then failing with a retryable 503."""
        self._lock_user, self._lock_deadline, self._lock_timeout = user_id, deadline, timeout

    async def _begin_transaction(self) -> None:
        user = self._lock_user
        if user is None:
            await super().fetchrow(_BEGIN, *self.session_settings)
            return
        row = await super().fetchrow(_BEGIN_LOCKED, *self.session_settings, user)
        assert row is not None
        if row[3]:
            return
        # Another session holds the user's lock. Writers run at READ COMMITTED, so waiting in
        # this transaction is safe: every later statement sees what the holder committed.
        loop = asyncio.get_running_loop()
        delay = BACKOFF_INITIAL_SECONDS
        while True:
            remaining = None if self._lock_deadline is None else self._lock_deadline - loop.time()
            if remaining is not None and remaining <= 0:
                raise service_unavailable(
                    f"sync operations of user {user} are busy: its lock was not free within"
                    f" {self._lock_timeout or 0:g}s (user_lock_timeout_seconds); retry"
                )
            pause = random.uniform(delay / 2, delay)
            await asyncio.sleep(pause if remaining is None else min(pause, remaining))
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
            if await super().fetchval(_TRY_LOCK, user):
                return

    # ------------------------------------------------------------------ transactions
    def transaction(
        self,
        *,
        isolation: _IsolationLevels | None = None,
        readonly: bool = False,
        deferrable: bool = False,
    ) -> Transaction:
        self._check_open()  # type: ignore[attr-defined]
        return _PooledTransaction(self, isolation, readonly, deferrable)

    def get_reset_query(self) -> str:
        return ""

    # A standalone statement gets a transaction of its own (see the module docstring).
    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        if not args or self.is_in_transaction():
            return await super().execute(query, *args, timeout=timeout)
        async with self.transaction():
            return await super().execute(query, *args, timeout=timeout)

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        if self.is_in_transaction():
            return await super().executemany(command, args, timeout=timeout)
        async with self.transaction():
            return await super().executemany(command, args, timeout=timeout)

    async def fetch(self, query: str, *args: Any, **kwargs: Any) -> list[Any]:
        if self.is_in_transaction():
            return cast(list[Any], await super().fetch(query, *args, **kwargs))
        async with self.transaction():
            return cast(list[Any], await super().fetch(query, *args, **kwargs))

    async def fetchrow(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_in_transaction():
            return await super().fetchrow(query, *args, **kwargs)
        async with self.transaction():
            return await super().fetchrow(query, *args, **kwargs)

    async def fetchval(self, query: str, *args: Any, **kwargs: Any) -> Any:
        if self.is_in_transaction():
            return await super().fetchval(query, *args, **kwargs)
        async with self.transaction():
            return await super().fetchval(query, *args, **kwargs)


def transaction_pooled_connection_class(
    settings: dict[str, str],
) -> type[TransactionPooledConnection]:
    """A `TransactionPooledConnection` class applying these session settings (the
    `SessionTimeouts.server_settings()` mapping) in every transaction."""
    values = (
        settings["lock_timeout"],
        settings["statement_timeout"],
        settings["idle_in_transaction_session_timeout"],
    )
    return type(
        "TransactionPooledConnection",
        (TransactionPooledConnection,),
        {"session_settings": values},
    )
