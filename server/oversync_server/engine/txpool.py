"""Connections through a PgBouncer in transaction pooling mode (`pool_mode: transaction`).

Behind such a pooler every transaction may run on a different PostgreSQL session, so nothing
may depend on session state. This module keeps the server's guarantees without it:

* **Per-user serialisation** is the same as with direct connections (`engine.connection`): a
  transaction-scoped advisory lock taken by every top-level transaction of a writer.
* **Session timeouts** (`lock_timeout`, `statement_timeout`, `idle_in_transaction_session_timeout`)
  cannot be startup parameters (PgBouncer refuses unknown ones) or session `SET`s; each
  top-level transaction sets them with `set_config(..., true)` in its `BEGIN` round trip
  (`SyncConnection.begin_settings`).
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

import os
from typing import Any, cast

from oversync_server.engine.connection import SyncConnection

__all__ = ["TransactionPooledConnection", "transaction_pooled_connection_class"]


class TransactionPooledConnection(SyncConnection):
    """An asyncpg connection for a transaction-pooling PgBouncer (see the module docstring)."""

    def get_reset_query(self) -> str:
        return ""

    # asyncpg names the statements of cursors from a per-process counter, and closes them
    # later, in another transaction, so possibly on another server session of the pooler: the
    # name can outlive its client on a session another process (same counter) then uses. A
    # random part makes every name unique.
    def _get_unique_id(self, prefix: str) -> str:
        return f"__asyncpg_{prefix}_{os.urandom(8).hex()}__"

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
    `SessionTimeouts.server_settings()` mapping, milliseconds) in every transaction."""
    names = ("lock_timeout", "statement_timeout", "idle_in_transaction_session_timeout")
    values = ", ".join(f"set_config('{name}', '{int(settings[name])}', true)" for name in names)
    return type(
        "TransactionPooledConnection",
        (TransactionPooledConnection,),
        {"begin_settings": f" SELECT {values};"},
    )
