"""What the inspector shows, read in one read-only transaction with bounded queries.

Every statement is capped (LIMIT, per-user LATERAL limits over the primary keys, counts of at
most `COUNT_CAP` rows, `engine.status` counters that read a bounded number of pages), so a page
costs about the same on a database with ten users or ten million; a fixed number of statements
runs per page (`Inspection.queries` says how many). Users page by `user_pk` (keyset, never
OFFSET); the rows of one bundle page by `row_ordinal`.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from oversync_server import metrics
from oversync_server.engine.scope import Connection
from oversync_server.engine.status import StatusCounters, read_counters
from oversync_server.runtime import SyncRuntime
from oversync_server.watch import bundle_watch

__all__ = [
    "BUNDLE_ROWS_PAGE",
    "COUNT_CAP",
    "USERS_PAGE",
    "Inspection",
    "Query",
    "metric_figures",
    "read_inspection",
]

COUNT_CAP = 10_000  # counts stop here ("10000+")
USERS_PAGE = 50  # users per page
SOURCES_PER_USER = 5  # on the overview; a selected user shows SOURCES_OF_ONE_USER
SOURCES_OF_ONE_USER = 100
BUNDLES_PER_USER = 3  # latest bundles per user on the page; a selected user shows 20
BUNDLES_OF_ONE_USER = 20
RECENT_BUNDLES = 20
ROWS_PER_BUNDLE = 5  # rows shown under each recent bundle
BUNDLE_ROWS_PAGE = 100  # rows per page of one selected bundle
SESSIONS_SHOWN = 20
WATCHED_USERS_SHOWN = 50
PAYLOAD_CHARS = 300


@dataclass(frozen=True)
class Query:
    """The page's parameters (already validated)."""

    user_id: str | None = None  # focus on one user
    users_after: int = 0  # keyset cursor: user_pk of the last user of the previous page
    bundle_seq: int | None = None  # with user_id: that bundle's rows
    rows_after: int = 0  # row_ordinal cursor within that bundle


@dataclass
class Inspection:
    figures: list[tuple[str, str]] = field(default_factory=list)
    tables: list[dict[str, Any]] = field(default_factory=list)
    users: list[dict[str, Any]] = field(default_factory=list)
    next_users_after: int | None = None
    sources: list[dict[str, Any]] = field(default_factory=list)
    bundles: list[dict[str, Any]] = field(default_factory=list)
    rows: dict[tuple[int, int], list[dict[str, Any]]] = field(default_factory=dict)
    next_rows_after: int | None = None
    push_sessions: list[dict[str, Any]] = field(default_factory=list)
    snapshot_sessions: list[dict[str, Any]] = field(default_factory=list)
    watchers: list[tuple[str, int]] = field(default_factory=list)
    retention: list[tuple[str, str]] = field(default_factory=list)
    queries: int = 0


class _Counted:
    """The connection, counting the statements the page costs."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.count = 0

    async def fetch(self, sql: str, *args: Any) -> list[Any]:
        self.count += 1
        return list(await self.conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: Any) -> Any:
        self.count += 1
        return await self.conn.fetchrow(sql, *args)


# Each count stops at $1 rows; retired sources are counted among those same rows.
_COUNTS = """
SELECT
  (SELECT count(*) FROM (SELECT 1 FROM sync.user_state LIMIT $1) t) AS users,
  (SELECT count(*) FROM (SELECT 1 FROM sync.source_state LIMIT $1) t) AS sources,
  (SELECT count(*) FILTER (WHERE state = 'retired')
     FROM (SELECT state FROM sync.source_state LIMIT $1) t) AS retired_sources,
  (SELECT count(*) FROM (SELECT 1 FROM sync.push_sessions LIMIT $1) t) AS push_sessions,
  (SELECT count(*) FROM (SELECT 1 FROM sync.snapshot_sessions LIMIT $1) t) AS snapshot_sessions
"""

# One statement text per case (a page of users, or one user), never `$n IS NULL OR ...`:
# a generic plan of such a condition cannot use the index the case needs.
_USER_COLUMNS = f"""
SELECT u.user_pk, u.user_id, u.next_bundle_seq - 1 AS latest,
       u.retained_bundle_floor AS floor, s.state_code, s.initializer_source_id,
       s.lease_expires_at, s.initialized_at, s.initialized_by_source_id,
       (SELECT count(*) FROM (SELECT 1 FROM sync.source_state ss
                              WHERE ss.user_pk = u.user_pk LIMIT {SOURCES_OF_ONE_USER + 1}) x)
         AS sources
FROM sync.user_state u LEFT JOIN sync.scope_state s ON s.user_pk = u.user_pk
"""
_USERS_PAGE = _USER_COLUMNS + "WHERE u.user_pk > $1 ORDER BY u.user_pk LIMIT $2"
_ONE_USER = _USER_COLUMNS + "WHERE u.user_id = $1"

_SOURCES = """
SELECT p.user_id, s.source_id, s.state, s.max_committed_source_bundle_id,
       s.replaced_by_source_id, s.retirement_reason
FROM unnest($1::bigint[], $2::text[]) AS p(user_pk, user_id)
CROSS JOIN LATERAL (
    SELECT * FROM sync.source_state ss WHERE ss.user_pk = p.user_pk
    ORDER BY ss.source_id LIMIT $3
) s
ORDER BY p.user_pk, s.source_id
"""

_BUNDLE_COLUMNS = """
SELECT b.user_pk, p.user_id, b.bundle_seq, b.source_id, b.source_bundle_id, b.row_count,
       b.byte_count, encode(b.bundle_hash, 'hex') AS bundle_hash, b.committed_at
FROM unnest($1::bigint[], $2::text[]) AS p(user_pk, user_id)
"""
# The latest $3 bundles of each user, then the newest $4 of them all.
_LATEST_BUNDLES = (
    _BUNDLE_COLUMNS
    + """
CROSS JOIN LATERAL (
    SELECT * FROM sync.bundle_log l WHERE l.user_pk = p.user_pk
    ORDER BY l.bundle_seq DESC LIMIT $3
) b
ORDER BY b.committed_at DESC, b.user_pk, b.bundle_seq DESC
LIMIT $4
"""
)
_ONE_BUNDLE = (
    _BUNDLE_COLUMNS
    + """
JOIN sync.bundle_log b ON b.user_pk = p.user_pk AND b.bundle_seq = $3
"""
)

_KEY_TEXT = """CASE c.sync_key_kind
    WHEN 1 THEN encode(r.key_bytes, 'hex')::uuid::text
    ELSE convert_from(r.key_bytes, 'UTF8') END"""

_ROWS = f"""
SELECT p.user_pk, p.bundle_seq, r.row_ordinal, c.schema_name, c.table_name, c.sync_key_column,
       {_KEY_TEXT} AS key, r.op_code, left(r.payload_wire::text, {PAYLOAD_CHARS + 1}) AS payload
FROM unnest($1::bigint[], $2::bigint[]) AS p(user_pk, bundle_seq)
CROSS JOIN LATERAL (
    SELECT * FROM sync.bundle_rows br
    WHERE br.user_pk = p.user_pk AND br.bundle_seq = p.bundle_seq AND br.row_ordinal > $4
    ORDER BY br.row_ordinal LIMIT $3
) r
JOIN sync.table_catalog c ON c.table_id = r.table_id
ORDER BY p.user_pk, p.bundle_seq, r.row_ordinal
"""

_PUSH_COLUMNS = """
SELECT ps.push_id::text AS push_id, u.user_id, ps.source_id, ps.source_bundle_id,
       ps.planned_row_count, ps.next_expected_row_ordinal, ps.expires_at,
       ps.expires_at <= now() AS expired
FROM sync.push_sessions ps JOIN sync.user_state u ON u.user_pk = ps.user_pk
"""
# All users: the ps_expires_at_idx index; one user: the (user_pk, source_id, ...) unique index.
_PUSH_SESSIONS = _PUSH_COLUMNS + "ORDER BY ps.expires_at DESC LIMIT $1"
_PUSH_SESSIONS_OF_USER = (
    _PUSH_COLUMNS + "WHERE ps.user_pk = $1 ORDER BY ps.expires_at DESC LIMIT $2"
)

_SNAPSHOT_COLUMNS = """
SELECT ss.snapshot_id::text AS snapshot_id, u.user_id, ss.snapshot_bundle_seq, ss.row_count,
       ss.byte_count, ss.expires_at, ss.expires_at <= now() AS expired
FROM sync.snapshot_sessions ss JOIN sync.user_state u ON u.user_pk = ss.user_pk
"""
# snapshot_sessions has no user index (reference layout): one user's sessions are found by
# walking the expiry index, which reads at most every live snapshot session (a few per user,
# `max_snapshot_sessions_per_user`, deleted by the janitor once expired).
_SNAPSHOT_SESSIONS = _SNAPSHOT_COLUMNS + "ORDER BY ss.expires_at DESC LIMIT $1"
_SNAPSHOT_SESSIONS_OF_USER = (
    _SNAPSHOT_COLUMNS + "WHERE ss.user_pk = $1 ORDER BY ss.expires_at DESC LIMIT $2"
)

_USER_IDS = "SELECT user_pk, user_id FROM sync.user_state WHERE user_pk = ANY($1::bigint[])"

_OPS = {1: "INSERT", 2: "UPDATE", 3: "DELETE"}
_SCOPE_STATES = {0: "uninitialized", 1: "initializing", 2: "initialized"}


def capped(count: int) -> str:
    return f"{COUNT_CAP}+" if count > COUNT_CAP else str(count)


# ------------------------------------------------------------------ metrics
def metric_figures(runtime: SyncRuntime) -> list[tuple[str, str]]:
    """Key figures of the Prometheus metrics (`oversync_server.metrics`: every worker's), shown
    under "At a glance" after those read from PostgreSQL and this process; none when
    `metrics_enabled` is off."""
    if not runtime.config.metrics_enabled:
        return []
    return metrics.key_figures()


def _process_figures(runtime: SyncRuntime) -> list[tuple[str, str]]:
    pool = runtime.pool
    watch = bundle_watch(runtime)
    return [
        ("lifecycle", runtime.lifecycle),
        ("sync requests in flight (this process)", str(runtime.inflight_operations)),
        (
            "pool connections (size / idle / max)",
            f"{pool.get_size()} / {pool.get_idle_size()} / {pool.get_max_size()}",
        ),
        ("watch", "on" if watch.enabled else "off"),
        ("watch streams (this process)", str(watch.hub.stream_count)),
    ]


def _storage_figures(counts: Any, counters: StatusCounters) -> list[tuple[str, str]]:
    return [
        ("users", capped(counts["users"])),
        ("sources (retired)", f"{capped(counts['sources'])} ({counts['retired_sources']})"),
        ("open push sessions", capped(counts["push_sessions"])),
        ("open snapshot sessions", capped(counts["snapshot_sessions"])),
        ("retained bundles", str(counters.committed_bundle_count)),
        ("retained bundle bytes", str(counters.committed_bundle_bytes)),
        ("highest bundle_seq of a user", str(counters.latest_bundle_seq_max)),
        ("history_pruned answers", str(counters.history_pruned_error_count)),
        ("rejected writes to registered tables", str(counters.rejected_registered_write_count)),
    ]


def _row(record: Any) -> dict[str, Any]:
    return dict(record.items())


def _user(record: Any) -> dict[str, Any]:
    user = _row(record)
    user["scope"] = _SCOPE_STATES.get(user.pop("state_code"), "uninitialized")
    user["sources"] = (
        f"{SOURCES_OF_ONE_USER}+" if user["sources"] > SOURCES_OF_ONE_USER else user["sources"]
    )
    return user


def _bundle_row(record: Any) -> dict[str, Any]:
    row = _row(record)
    row["op"] = _OPS.get(row.pop("op_code"), "?")
    payload = row["payload"]
    if payload is not None and len(payload) > PAYLOAD_CHARS:
        row["payload"] = payload[:PAYLOAD_CHARS] + "…"
    return row


async def read_inspection(runtime: SyncRuntime, query: Query) -> Inspection:
    """Everything on the page, in one read-only transaction."""
    config = runtime.config
    result = Inspection()
    result.tables = [
        {"table_id": t.table_id, "name": t.qualified_name, "key": t.key_column}
        for t in (runtime.catalog.tables if runtime.catalog is not None else ())
    ]
    result.retention = [
        ("retained_bundles_per_user", str(config.retained_bundles_per_user or "everything")),
        ("retention_prune_batch_size", str(config.retention_prune_batch_size)),
    ]
    one_user = query.user_id is not None
    async with runtime.pool.acquire() as raw, raw.transaction(readonly=True):
        conn = _Counted(raw)
        counts = await conn.fetchrow(_COUNTS, COUNT_CAP + 1)
        counters = await read_counters(raw)
        conn.count += 4  # read_counters: at most 4 bounded statements (engine.status)
        if one_user:
            users = await conn.fetch(_ONE_USER, query.user_id)
        else:
            users = await conn.fetch(_USERS_PAGE, query.users_after, USERS_PAGE + 1)
            if len(users) > USERS_PAGE:
                users = users[:USERS_PAGE]
                result.next_users_after = users[-1]["user_pk"]
        result.users = [_user(record) for record in users]
        pks = [user["user_pk"] for user in result.users]
        ids = [user["user_id"] for user in result.users]
        detail = one_user and query.bundle_seq is not None
        if pks:
            per_user = SOURCES_OF_ONE_USER if one_user else SOURCES_PER_USER
            result.sources = [_row(r) for r in await conn.fetch(_SOURCES, pks, ids, per_user)]
            if detail:
                bundles = await conn.fetch(_ONE_BUNDLE, pks, ids, query.bundle_seq)
            else:
                per_user = BUNDLES_OF_ONE_USER if one_user else BUNDLES_PER_USER
                bundles = await conn.fetch(_LATEST_BUNDLES, pks, ids, per_user, RECENT_BUNDLES)
            result.bundles = [_row(record) for record in bundles]
        if result.bundles:
            rows = await conn.fetch(
                _ROWS,
                [b["user_pk"] for b in result.bundles],
                [b["bundle_seq"] for b in result.bundles],
                BUNDLE_ROWS_PAGE + 1 if detail else ROWS_PER_BUNDLE,
                query.rows_after if detail else 0,
            )
            for record in rows:
                key = (record["user_pk"], record["bundle_seq"])
                result.rows.setdefault(key, []).append(_bundle_row(record))
            if detail:
                page = result.rows.get((pks[0], query.bundle_seq or 0), [])
                if len(page) > BUNDLE_ROWS_PAGE:
                    del page[BUNDLE_ROWS_PAGE:]
                    result.next_rows_after = page[-1]["row_ordinal"]
        if not one_user:
            push = await conn.fetch(_PUSH_SESSIONS, SESSIONS_SHOWN)
            snapshots = await conn.fetch(_SNAPSHOT_SESSIONS, SESSIONS_SHOWN)
        elif pks:
            push = await conn.fetch(_PUSH_SESSIONS_OF_USER, pks[0], SESSIONS_SHOWN)
            snapshots = await conn.fetch(_SNAPSHOT_SESSIONS_OF_USER, pks[0], SESSIONS_SHOWN)
        else:  # an unknown user: nothing of theirs to show
            push = snapshots = []
        result.push_sessions = [_row(record) for record in push]
        result.snapshot_sessions = [_row(record) for record in snapshots]
        watched = bundle_watch(runtime).hub.user_pks()[:WATCHED_USERS_SHOWN]
        if watched:
            hub = bundle_watch(runtime).hub
            named = await conn.fetch(_USER_IDS, watched)
            result.watchers = sorted(
                (record["user_id"], hub.subscriber_count(record["user_id"])) for record in named
            )
        result.queries = conn.count
    result.figures = [
        *_storage_figures(counts, counters),
        *_process_figures(runtime),
        *metric_figures(runtime),
    ]
    return result


def when(value: dt.datetime | None) -> str:
    """A timestamp as the page shows it (UTC, seconds)."""
    if value is None:
        return ""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
