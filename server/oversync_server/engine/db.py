"""Connection helpers shared by the storage modules: the connection type and bounded retries of
serialization failures and deadlocks (the per-user lock is `engine.scope.user_lock`).

    async with user_lock(runtime.pool, actor.user_id) as conn:
        result = await run_retrying(lambda: one_transaction(conn))
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeAlias, TypeVar

import asyncpg
from asyncpg.pool import PoolConnectionProxy

T = TypeVar("T")

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

# serialization_failure, deadlock_detected, lock_not_available
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def is_retryable(error: BaseException) -> bool:
    return getattr(error, "sqlstate", None) in RETRYABLE_SQLSTATES


async def run_retrying(
    attempt: Callable[[], Awaitable[T]], *, attempts: int = 3, backoff: float = 0.025
) -> T:
    """Run `attempt` (a whole transaction) again on 40001/40P01/55P03, `backoff * n` apart."""
    for number in range(1, attempts + 1):
        try:
            return await attempt()
        except asyncpg.PostgresError as error:
            if number == attempts or not is_retryable(error):
                raise
            await asyncio.sleep(backoff * number)
    raise AssertionError("unreachable")
