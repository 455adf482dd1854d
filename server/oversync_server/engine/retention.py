"""Retention: the per-user retained bundle floor and the pruning step (reference/server.md §7).

Each user keeps the last `ServiceConfig.retained_bundles_per_user` committed bundles; everything
at or below `sync.user_state.retained_bundle_floor` is outside the protocol contract (pull,
committed-rows fetch and replay look-ups answer 409 `history_pruned`), whether or not its rows
are physically gone yet. `row_state` and `source_state` are never pruned, so tombstones and
per-source watermarks stay exact and a stale `(source_id, source_bundle_id)` is refused with
`history_pruned` instead of being accepted again.

The pruning step runs inside every bundle-producing transaction (push commit and server-originated
writes): the capture code folds it into the bundle's own statement (`advance_sql`, which also
allocates the bundle_seq); `apply_retention` runs it as a statement of its own::

    await apply_retention(conn, user_pk=user_pk, config=runtime.config)

Unlike the reference, `retained_bundles_per_user = 0` turns pruning off (Go falls back to 10000).
"""

from __future__ import annotations

import logging

import asyncpg

from oversync_server.config import ServiceConfig
from oversync_server.engine.errors import SyncError
from oversync_server.engine.scope import Connection

__all__ = [
    "advance_sql",
    "apply_retention",
    "count_history_pruned",
    "enforce_floor",
    "history_pruned",
]

log = logging.getLogger("oversync_server")


def _new_floor_sql(*, latest: str, keep: str, batch: str, old_floor: str) -> str:
    """The retention policy: latest - keep, advanced at most `batch` past the old floor (the
    callers never move it backwards)."""
    return f"LEAST(GREATEST({latest} - {keep}, 0), {old_floor} + {batch})"


# One statement: the new floor, then the bundles at or below it; bundle_rows follow through ON
# DELETE CASCADE. The caller's transaction already holds the user_state row lock (bundle_seq
# allocation).
_PRUNE_FLOOR = _new_floor_sql(
    latest="next_bundle_seq - 1",
    keep="$2::bigint",
    batch="$3::bigint",
    old_floor="retained_bundle_floor",
)
_PRUNE = f"""
WITH target AS (
    SELECT user_pk, retained_bundle_floor AS old_floor,
           {_PRUNE_FLOOR} AS new_floor
    FROM sync.user_state
    WHERE user_pk = $1
), moved AS (
    UPDATE sync.user_state AS u
    SET retained_bundle_floor = t.new_floor
    FROM target AS t
    WHERE u.user_pk = t.user_pk AND t.new_floor > t.old_floor
    RETURNING u.retained_bundle_floor
), pruned AS (
    DELETE FROM sync.bundle_log AS b
    USING moved AS m
    WHERE b.user_pk = $1 AND b.bundle_seq <= m.retained_bundle_floor
    RETURNING b.bundle_seq
)
SELECT COALESCE((SELECT retained_bundle_floor FROM moved), (SELECT old_floor FROM target))
       AS floor,
       (SELECT count(*) FROM pruned) AS pruned
"""


def advance_sql(*, keep: str, batch: str) -> str:
    """CTEs `advanced` and `pruned` for the bundle's own statement (`engine.capture`): allocate
    bundle_seq $2 of user $1 (only if it is still the user's next one: `advanced` is then
    empty) and, when `keep` > 0, the same retention step as `_PRUNE` with $2 the latest bundle,
    in the same row update."""
    new_floor = _new_floor_sql(latest="$2", keep=keep, batch=batch, old_floor="o.old_floor")
    return f"""advanced AS (
    UPDATE sync.user_state AS u
    SET next_bundle_seq = $2 + 1,
        retained_bundle_floor = CASE WHEN {keep} > 0 AND {new_floor} > o.old_floor
                                     THEN {new_floor} ELSE o.old_floor END
    FROM (SELECT retained_bundle_floor AS old_floor FROM sync.user_state WHERE user_pk = $1) AS o
    WHERE u.user_pk = $1 AND u.next_bundle_seq = $2
    RETURNING u.retained_bundle_floor AS floor, o.old_floor
), pruned AS (
    DELETE FROM sync.bundle_log AS b
    USING advanced AS a
    WHERE b.user_pk = $1 AND a.floor > a.old_floor AND b.bundle_seq <= a.floor
)"""


_COUNT_PRUNED = "SELECT nextval('sync.history_pruned_error_seq')"


async def apply_retention(conn: Connection, *, user_pk: int, config: ServiceConfig) -> int | None:
    """Advance the user's floor per the retention policy and delete the bundles below it.

    Runs in the caller's bundle-producing transaction; one round trip. Returns the floor after
    the step, or None when retention is off (no statement is run).
    """
    keep = config.retained_bundles_per_user
    if keep <= 0:
        return None
    row = await conn.fetchrow(_PRUNE, user_pk, keep, config.retention_prune_batch_size)
    if row is None or row["floor"] is None:
        raise RuntimeError(f"sync.user_state row {user_pk} is missing during retention")
    floor: int = row["floor"]
    return floor


def history_pruned(user_id: str, requested: int, floor: int) -> SyncError:
    """409 `history_pruned` with the reference's message for a checkpoint at or below the floor."""
    return SyncError(
        "history_pruned",
        f"requested checkpoint {requested} is older than retained history floor {floor}"
        f" for user {user_id}",
    )


def enforce_floor(user_id: str, requested: int, floor: int) -> None:
    """Raise `history_pruned` when `0 < requested <= floor` (0 is never pruned by itself)."""
    if 0 < requested <= floor:
        raise history_pruned(user_id, requested, floor)


async def count_history_pruned(pool: asyncpg.Pool) -> None:
    """Best effort: count one `history_pruned` answer in `sync.history_pruned_error_seq`.

    Call it after the failed request's transaction (the sequence is non-transactional, but a
    failed transaction cannot run statements); errors are logged, never raised.
    """
    try:
        async with pool.acquire() as connection:
            await connection.execute(_COUNT_PRUNED)
    except Exception:  # best effort: never turn the 409 into another error
        log.warning("could not count a history_pruned answer", exc_info=True)
