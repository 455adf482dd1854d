"""The pool's reset on release (issue 10, item 2): skipped after `user_lock(reset=False)` released
the user's lock (one round trip less per push step), kept otherwise; the lock is gone either way
(it is transaction-scoped)."""

from __future__ import annotations

import pytest

from oversync_server.engine.errors import SyncError
from oversync_server.engine.pool import create_pool
from oversync_server.engine.scope import user_lock

LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"


@pytest.mark.parametrize("reset", [True, False])
async def test_user_lock_skips_the_reset_only_when_asked(database_url: str, reset: bool) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with user_lock(pool, "alice", reset=reset) as conn:
            async with conn.transaction():  # the user lock is held by each transaction
                assert await conn.fetchval(LOCKS) == 1
            assert await conn.fetchval(LOCKS) == 0
            # session state a reset would clear (this package never leaves any)
            await conn.execute("SET application_name = 'left-behind'")
        async with pool.acquire() as conn:  # the same (only) connection
            name = await conn.fetchval("SHOW application_name")
            assert await conn.fetchval(LOCKS) == 0
        assert (name == "left-behind") is (not reset)
        # the skip applies to one release only
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'again'")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW application_name") != "again"
    finally:
        await pool.close()


async def test_user_lock_is_transaction_scoped_and_serialises_with_session_locks(
    database_url: str,
) -> None:
    """Each transaction takes the lock in its BEGIN round trip; a Go-style session lock on the
    same key makes it wait until its deadline (503), and a held transaction lock keeps a
    Go-style locker out; user ids with quotes and backslashes take the same key."""
    pool = await create_pool(database_url, min_size=1, max_size=2, user_lock_timeout=0.3)
    go_key = "hashtextextended($1::text, 0)"
    try:
        for user in ("alice", "o'brien\\x"):
            async with user_lock(pool, user) as conn:
                async with conn.transaction(), pool.acquire() as other:
                    assert not await other.fetchval(f"SELECT pg_try_advisory_lock({go_key})", user)
                async with pool.acquire() as other:
                    assert await other.fetchval(f"SELECT pg_try_advisory_lock({go_key})", user)
                    with pytest.raises(SyncError) as refused:
                        async with conn.transaction():
                            pass
                    assert refused.value.code == "service_unavailable"
                    assert not conn.is_in_transaction()
                    await other.execute(f"SELECT pg_advisory_unlock({go_key})", user)
                async with conn.transaction():  # free again
                    assert await conn.fetchval(LOCKS) == 1
    finally:
        await pool.close()
