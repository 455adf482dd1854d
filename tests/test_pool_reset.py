"""The pool's reset on release (issue 10, item 2): skipped after `user_lock(reset=False)` released
the user's lock (one round trip less per push step), kept otherwise; the lock is gone either way."""

from __future__ import annotations

import pytest

from oversync_server.engine.pool import create_pool
from oversync_server.engine.scope import user_lock

LOCKS = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"


@pytest.mark.parametrize("reset", [True, False])
async def test_user_lock_skips_the_reset_only_when_asked(database_url: str, reset: bool) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with user_lock(pool, "alice", reset=reset) as conn:
            assert await conn.fetchval(LOCKS) == 1
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
