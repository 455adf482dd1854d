"""The cluster-wide counters of /syncx/status and /syncx/health (reference/server.md §12.2).

One SQL statement that also works before the `sync` schema exists: a relation named in plain SQL
must exist when the statement is parsed, so each table aggregate runs through `query_to_xml` (the
query text is only parsed if `to_regclass` found the table) and comes back as one comma-separated
`<v>` element; sequences are read with `pg_sequence_last_value`, which is NULL for a sequence never
used and for a missing one. No libxml is needed (the XML is only produced, then matched as text).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from oversync_server.engine.scope import Connection

__all__ = ["StatusCounters", "read_counters"]

_USER_STATS = (
    "SELECT concat_ws(',',"
    " count(*) FILTER (WHERE retained_bundle_floor > next_bundle_seq - 1),"
    " coalesce(max(next_bundle_seq - 1), 0),"
    " coalesce(min(retained_bundle_floor), 0),"
    " coalesce(max(retained_bundle_floor), 0),"
    " coalesce(min(greatest(next_bundle_seq - 1 - retained_bundle_floor, 0)), 0),"
    " coalesce(max(greatest(next_bundle_seq - 1 - retained_bundle_floor, 0)), 0)"
    ") AS v FROM sync.user_state"
)
_BUNDLE_STATS = (
    "SELECT concat_ws(',', count(*), coalesce(sum(byte_count), 0)) AS v FROM sync.bundle_log"
)


def _guarded(table: str, query: str) -> str:
    """SQL for a bigint[] of `query`'s single `v` column, or NULL when `table` does not exist."""
    return f"""CASE WHEN to_regclass('{table}') IS NOT NULL THEN string_to_array(substring(
        query_to_xml('{query.replace("'", "''")}', false, true, '')::text
        FROM '<v>([^<]*)</v>'), ',')::bigint[] END"""


def _sequence(name: str) -> str:
    return f"coalesce(pg_sequence_last_value(to_regclass('{name}')), 0)"


_STATUS = f"""
SELECT
    {_guarded("sync.user_state", _USER_STATS)} AS user_stats,
    {_guarded("sync.bundle_log", _BUNDLE_STATS)} AS bundle_stats,
    {_sequence("sync.history_pruned_error_seq")} AS history_pruned_error_count,
    {_sequence("sync.accepted_push_replay_seq")} AS accepted_push_replay_count,
    {_sequence("sync.rejected_registered_write_seq")} AS rejected_registered_write_count
"""


@dataclass(frozen=True, slots=True)
class StatusCounters:
    """The storage part of the status document (all zero before bootstrap)."""

    user_state_retention_floor_ahead_count: int = 0
    latest_bundle_seq_max: int = 0
    retained_bundle_floor_min: int = 0
    retained_bundle_floor_max: int = 0
    retained_bundle_window_min: int = 0
    retained_bundle_window_max: int = 0
    history_pruned_error_count: int = 0
    accepted_push_replay_count: int = 0
    rejected_registered_write_count: int = 0
    committed_bundle_count: int = 0
    committed_bundle_bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {item.name: getattr(self, item.name) for item in fields(self)}


async def read_counters(conn: Connection) -> StatusCounters:
    """Read every counter in one statement (O(users + retained bundles), no locks)."""
    row = await conn.fetchrow(_STATUS)
    assert row is not None
    users = list(row["user_stats"] or [0] * 6)
    bundles = list(row["bundle_stats"] or [0] * 2)
    return StatusCounters(
        user_state_retention_floor_ahead_count=users[0],
        latest_bundle_seq_max=users[1],
        retained_bundle_floor_min=users[2],
        retained_bundle_floor_max=users[3],
        retained_bundle_window_min=users[4],
        retained_bundle_window_max=users[5],
        history_pruned_error_count=row["history_pruned_error_count"],
        accepted_push_replay_count=row["accepted_push_replay_count"],
        rejected_registered_write_count=row["rejected_registered_write_count"],
        committed_bundle_count=bundles[0],
        committed_bundle_bytes=bundles[1],
    )
