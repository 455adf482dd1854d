"""Per-source state: the contiguous `source_bundle_id` sequence of each writer (server.md §8).

`sync.source_state` holds one row per (user, source): `active` with its committed watermark,
`reserved` (a rotation target that has not committed yet) or `retired` (terminal, with the source
that replaced it). The next expected `source_bundle_id` is `max_committed + 1` (1 for an unknown
or reserved source). Writers call, inside their transaction under the user lock:

    await require_next(conn, user_id=..., user_pk=..., source_id=..., source_bundle_id=...)
    next_id = await next_source_bundle_id(conn, user_id=..., user_pk=..., source_id=...)

and the capture finalizer marks the source active with the new watermark (`ACTIVATE_SQL`).
"""

from __future__ import annotations

from dataclasses import dataclass

from oversync_server.engine.db import Connection
from oversync_server.engine.errors import SyncError

_LOAD = """
SELECT state, max_committed_source_bundle_id, replaced_by_source_id
FROM sync.source_state WHERE user_pk = $1 AND source_id = $2
"""
_LOAD_FOR_UPDATE = _LOAD + " FOR UPDATE"

# Upsert to `active` with the committed watermark; a retired row is left alone and yields no
# row, which the caller turns into `source_retired` (callers lock the row first, so this is a
# last line of defence).
ACTIVATE_SQL = """
INSERT INTO sync.source_state (user_pk, source_id, state, max_committed_source_bundle_id)
VALUES ($1, $2, 'active', $3)
ON CONFLICT (user_pk, source_id) DO UPDATE
SET state = 'active', max_committed_source_bundle_id = EXCLUDED.max_committed_source_bundle_id,
    replaced_by_source_id = '', retirement_reason = ''
WHERE sync.source_state.state <> 'retired'
RETURNING 1
"""


@dataclass(frozen=True, slots=True)
class SourceState:
    """A source's row; `state` is None for a source the server has never seen."""

    source_id: str
    state: str | None
    max_committed_source_bundle_id: int = 0
    replaced_by_source_id: str = ""

    @property
    def retired(self) -> bool:
        return self.state == "retired"

    @property
    def expected_next(self) -> int:
        return self.max_committed_source_bundle_id + 1


def source_retired(*, user_id: str, source_id: str, replaced_by_source_id: str) -> SyncError:
    """409 `source_retired` with the structured body (`source_id`, `replaced_by_source_id`)."""
    message = f"source {source_id} for user {user_id} was retired"
    if replaced_by_source_id:
        message += f" and replaced by {replaced_by_source_id}"
    return SyncError(
        "source_retired",
        message,
        source_id=source_id,
        replaced_by_source_id=replaced_by_source_id or None,
    )


def source_tuple_pruned(
    *, user_id: str, source_id: str, source_bundle_id: int, max_committed: int
) -> SyncError:
    return SyncError(
        "history_pruned",
        f"source tuple ({source_id}, {source_bundle_id}) for user {user_id} is older than"
        f" retained duplicate history; max committed source_bundle_id is {max_committed}",
    )


def source_out_of_order(*, user_id: str, source_id: str, expected: int, actual: int) -> SyncError:
    return SyncError(
        "source_sequence_out_of_order",
        f"source {source_id} for user {user_id} expected next source_bundle_id {expected},"
        f" got {actual}",
    )


def source_sequence_changed(
    *, user_id: str, source_id: str, staged: int, expected: int
) -> SyncError:
    return SyncError(
        "source_sequence_changed",
        f"source {source_id} for user {user_id} changed expected next source_bundle_id from"
        f" staged {staged} to {expected} before commit",
    )


async def load_source(
    conn: Connection, user_pk: int, source_id: str, *, for_update: bool = False
) -> SourceState:
    row = await conn.fetchrow(_LOAD_FOR_UPDATE if for_update else _LOAD, user_pk, source_id)
    if row is None:
        return SourceState(source_id, None)
    return SourceState(source_id, row[0], row[1], row[2])


async def next_source_bundle_id(
    conn: Connection, *, user_id: str, user_pk: int, source_id: str, for_update: bool = True
) -> int:
    """The source's next expected `source_bundle_id`; 409 `source_retired` for a retired one."""
    state = await load_source(conn, user_pk, source_id, for_update=for_update)
    if state.retired:
        raise source_retired(
            user_id=user_id, source_id=source_id, replaced_by_source_id=state.replaced_by_source_id
        )
    return state.expected_next


async def require_next(
    conn: Connection,
    *,
    user_id: str,
    user_pk: int,
    source_id: str,
    source_bundle_id: int,
    for_update: bool = True,
) -> SourceState:
    """Accept exactly the next `source_bundle_id`: retired -> 409 `source_retired`, below ->
    409 `history_pruned`, above -> 409 `source_sequence_out_of_order`."""
    state = await load_source(conn, user_pk, source_id, for_update=for_update)
    return check_next(state, user_id=user_id, source_bundle_id=source_bundle_id)


def check_next(state: SourceState, *, user_id: str, source_bundle_id: int) -> SourceState:
    """`require_next` on a source state already read."""
    source_id = state.source_id
    if state.retired:
        raise source_retired(
            user_id=user_id, source_id=source_id, replaced_by_source_id=state.replaced_by_source_id
        )
    if source_bundle_id < state.expected_next:
        raise source_tuple_pruned(
            user_id=user_id,
            source_id=source_id,
            source_bundle_id=source_bundle_id,
            max_committed=state.max_committed_source_bundle_id,
        )
    if source_bundle_id > state.expected_next:
        raise source_out_of_order(
            user_id=user_id,
            source_id=source_id,
            expected=state.expected_next,
            actual=source_bundle_id,
        )
    return state


async def activate(
    conn: Connection, *, user_id: str, user_pk: int, source_id: str, source_bundle_id: int
) -> None:
    """Mark the source active with watermark `source_bundle_id` (in the committing tx)."""
    if await conn.fetchval(ACTIVATE_SQL, user_pk, source_id, source_bundle_id) is None:
        state = await load_source(conn, user_pk, source_id)
        raise source_retired(
            user_id=user_id, source_id=source_id, replaced_by_source_id=state.replaced_by_source_id
        )
