"""The cluster-wide counters of /syncx/status and /syncx/health (reference/server.md §12.2).

The reference aggregates all of `sync.user_state` and `sync.bundle_log` on every call, so a
monitor's poll costs O(users + retained bundles). Here every call costs about the same whatever
the table sizes, at most `EXACT_MAX_PAGES` + `SAMPLE_PAGES` pages per table:

* a table of at most `EXACT_MAX_PAGES` pages (1 MiB; ~15,000 users or ~7,000 bundles) is
  aggregated exactly, as the reference does;
* beyond that, the user fields `latest_bundle_seq_max`, `retained_bundle_floor_min/max` and
  `retained_bundle_window_min/max` come from a block sample of about `SAMPLE_PAGES` pages
  (`TABLESAMPLE SYSTEM ... REPEATABLE`, so repeated calls read the same blocks and agree),
  `committed_bundle_count` from the statistics collector (`pg_stat_user_tables.n_live_tup`,
  else `pg_class.reltuples`, else the sample scaled up) and `committed_bundle_bytes` as that count times
  the sampled mean `byte_count`: **these five user fields and the two bundle fields are
  approximate on large tables**;
* `user_state_retention_floor_ahead_count`, which decides healthy/unhealthy, stays exact and
  cheap: while the layout's CHECK constraint `user_state_retained_floor_check` (floor <= latest)
  is present and validated, no row can be ahead, so it is 0 without reading a row; only a
  database whose constraint was dropped or not validated is scanned for it;
* the three cumulative counters are sequence values (`pg_sequence_last_value`, NULL when never
  used or missing), exact and O(1).

Every statement works before the `sync` schema exists (everything is looked up through
`to_regclass`, and the table queries run only for tables that exist), so the status document of
a fresh database is all zeros.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from oversync_server.engine.scope import Connection

__all__ = ["EXACT_MAX_PAGES", "SAMPLE_PAGES", "StatusCounters", "read_counters"]

EXACT_MAX_PAGES = 128
SAMPLE_PAGES = 128


def _sequence(name: str) -> str:
    return f"coalesce(pg_sequence_last_value(to_regclass('{name}')), 0)"


def _pages(table: str) -> str:
    return (
        f"coalesce(pg_relation_size(to_regclass('{table}')), 0)"
        " / current_setting('block_size')::bigint"
    )


# One catalog-only statement: which tables exist, their sizes, the statistics, the sequences.
_OVERVIEW = f"""
SELECT
    to_regclass('sync.user_state') IS NOT NULL AS has_users,
    to_regclass('sync.bundle_log') IS NOT NULL AS has_bundles,
    {_pages("sync.user_state")} AS user_pages,
    {_pages("sync.bundle_log")} AS bundle_pages,
    (SELECT n_live_tup FROM pg_stat_user_tables
      WHERE relid = to_regclass('sync.bundle_log')) AS bundle_live_tuples,
    (SELECT reltuples FROM pg_class WHERE oid = to_regclass('sync.bundle_log')) AS bundle_reltuples,
    EXISTS (
        SELECT 1 FROM pg_constraint
        WHERE conrelid = to_regclass('sync.user_state')
          AND conname = 'user_state_retained_floor_check' AND contype = 'c' AND convalidated
    ) AS floor_checked,
    {_sequence("sync.history_pruned_error_seq")} AS history_pruned_error_count,
    {_sequence("sync.accepted_push_replay_seq")} AS accepted_push_replay_count,
    {_sequence("sync.rejected_registered_write_seq")} AS rejected_registered_write_count
"""

_FLOOR_AHEAD = "count(*) FILTER (WHERE retained_bundle_floor > next_bundle_seq - 1)"
_USER_STATS = """
SELECT {floor_ahead} AS floor_ahead,
       coalesce(max(next_bundle_seq - 1), 0) AS latest_max,
       coalesce(min(retained_bundle_floor), 0) AS floor_min,
       coalesce(max(retained_bundle_floor), 0) AS floor_max,
       coalesce(min(greatest(next_bundle_seq - 1 - retained_bundle_floor, 0)), 0) AS window_min,
       coalesce(max(greatest(next_bundle_seq - 1 - retained_bundle_floor, 0)), 0) AS window_max
FROM sync.user_state {sample}
"""
_FLOOR_AHEAD_SCAN = f"SELECT {_FLOOR_AHEAD} FROM sync.user_state"
_BUNDLES_EXACT = "SELECT count(*), coalesce(sum(byte_count), 0) FROM sync.bundle_log"
_BUNDLES_SAMPLED = "SELECT avg(byte_count), count(*) FROM sync.bundle_log {sample}"


def _sample(pages: int) -> str:
    """A block sample of about `SAMPLE_PAGES` pages of a table of `pages` pages."""
    percent = min(100.0, 100.0 * SAMPLE_PAGES / max(pages, 1))
    return f"TABLESAMPLE SYSTEM ({percent:.6f}) REPEATABLE (0)"


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
    """Read every counter in 1-4 bounded statements (see the module notes), no locks."""
    overview = await conn.fetchrow(_OVERVIEW)
    assert overview is not None
    users: dict[str, int] = {}
    if overview["has_users"]:
        users = dict(await _user_stats(conn, overview["user_pages"], overview["floor_checked"]))
    bundle_count = bundle_bytes = 0
    if overview["has_bundles"]:
        bundle_count, bundle_bytes = await _bundle_stats(
            conn,
            overview["bundle_pages"],
            overview["bundle_live_tuples"],
            overview["bundle_reltuples"],
        )
    return StatusCounters(
        user_state_retention_floor_ahead_count=users.get("floor_ahead", 0),
        latest_bundle_seq_max=users.get("latest_max", 0),
        retained_bundle_floor_min=users.get("floor_min", 0),
        retained_bundle_floor_max=users.get("floor_max", 0),
        retained_bundle_window_min=users.get("window_min", 0),
        retained_bundle_window_max=users.get("window_max", 0),
        history_pruned_error_count=overview["history_pruned_error_count"],
        accepted_push_replay_count=overview["accepted_push_replay_count"],
        rejected_registered_write_count=overview["rejected_registered_write_count"],
        committed_bundle_count=bundle_count,
        committed_bundle_bytes=bundle_bytes,
    )


async def _user_stats(conn: Connection, pages: int, floor_checked: bool) -> dict[str, int]:
    exact = pages <= EXACT_MAX_PAGES
    floor_ahead = "0::bigint" if floor_checked or not exact else _FLOOR_AHEAD
    sql = _USER_STATS.format(floor_ahead=floor_ahead, sample="" if exact else _sample(pages))
    row = await conn.fetchrow(sql)
    assert row is not None
    stats: dict[str, int] = dict(row)
    if not floor_checked and not exact:
        # No constraint rules it out: the health verdict must still be exact.
        stats["floor_ahead"] = await conn.fetchval(_FLOOR_AHEAD_SCAN)
    return stats


async def _bundle_stats(
    conn: Connection, pages: int, live_tuples: int | None, reltuples: float | None
) -> tuple[int, int]:
    if pages <= EXACT_MAX_PAGES:
        row = await conn.fetchrow(_BUNDLES_EXACT)
        assert row is not None
        return int(row[0]), int(row[1])
    row = await conn.fetchrow(_BUNDLES_SAMPLED.format(sample=_sample(pages)))
    assert row is not None
    mean, sampled = float(row[0] or 0), int(row[1])
    if live_tuples:
        count = int(live_tuples)
    elif reltuples is not None and reltuples > 0:
        count = int(reltuples)
    else:  # no statistics yet (never analyzed, or reset): scale the sample up
        count = round(sampled * pages / SAMPLE_PAGES)
    return count, round(count * mean)
