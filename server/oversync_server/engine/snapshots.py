"""Snapshot sessions: a frozen after-image of one user's live rows (reference/server.md §6).

A snapshot is materialised entirely inside PostgreSQL: one `INSERT ... SELECT` reads every
registered business table for the user, joins it with the user's live `sync.row_state`, numbers
the rows 1..N by `(table_id, key_bytes)` (bytewise, as the reference orders them), renders each
as its SnapshotRow wire JSON once, and writes them as pages of up to `PAGE_ROWS` rows /
`PAGE_BYTES` bytes into `sync.snapshot_pages` (our extra table; `engine.ddl`) together with the
`sync.snapshot_sessions` row. No snapshot row ever passes through Python at create, and a chunk
(at most `max_rows_per_snapshot_chunk` rows) is the byte slices of the pages it covers, so server
memory does not grow with the snapshot and serving a chunk renders nothing. The reference writes
one `sync.snapshot_session_rows` row per snapshot row instead (two unique indexes and two
foreign-key checks per row, the bulk of the create's cost); sessions the Go server created that
way are still served from there (docs/deviations.md). With `snapshot_storage: reference` this
server writes them that way too (the same statement, only its write part differs), so a Go
server sharing the database can page the sessions this one creates; chunks are the same bytes.

Create runs in one REPEATABLE READ transaction, so the image, `snapshot_bundle_seq` and the scope
gate all come from the same database snapshot: the image is exactly the state after bundle
`snapshot_bundle_seq`. Business rows and row_state must agree (fail-closed, as in the
reference): a live business row without live row_state, or live row_state without a business
row, fails the create.

Storage is bounded per user: a session records its source (`snapshot_sessions.source_id`, an
extra column, docs/deviations.md), a source's new session replaces its older ones (deleted once
the new one is committed, so a failed create leaves the old one usable), and a user may hold at
most `max_snapshot_sessions_per_user` live sessions of other sources, else 429
`too_many_snapshot_sessions` (checked first, before any work; concurrent creates of one user
can overshoot the cap by the number racing, until the TTL or the janitor removes them). Expired
sessions are deleted by the janitor (`oversync_server.janitor`), never by a create.

Round trips: create = BEGIN + scope gate + cap count + [limit pre-count] + [rotation: 1 lock +
1-2 writes] + 1 materialising statement + COMMIT + 1 replacement delete, whatever the row count
(the reference issues one INSERT per row). Chunk = 1 statement. Delete = 1 statement.

Payloads are the text `to_jsonb` prints for the row's catalog-known columns (no
`_sync_scope_id`) with bytea columns as padded standard base64, concatenated per column
(`payload_json_sql`); `byte_count` is the sum of their byte lengths.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from oversync_server.config import ServiceConfig, SnapshotStorage
from oversync_server.engine.catalog import (
    SCOPE_COLUMN,
    Catalog,
    ColumnInfo,
    KeyKind,
    TableInfo,
    ValueKind,
    quote_ident,
    quote_literal,
)
from oversync_server.engine.db import run_retrying
from oversync_server.engine.errors import SyncError
from oversync_server.engine.rotation import SourceReplacement, rotate_source
from oversync_server.engine.scope import Connection, require_initialized
from oversync_server.engine.values import ROW_IDENTITY_JSON_SQL, table_row_identity_json_sql

__all__ = [
    "SnapshotSession",
    "create_snapshot",
    "delete_snapshot",
    "read_chunk",
    "snapshot_not_found",
]

INT64_MAX = 2**63 - 1


@dataclass(frozen=True, slots=True)
class SnapshotSession:
    """A created snapshot: what `POST /sync/snapshot-sessions` answers."""

    snapshot_id: uuid.UUID
    snapshot_bundle_seq: int
    row_count: int
    byte_count: int
    expires_at: datetime


# ------------------------------------------------------------------------------------ errors


def snapshot_not_found(snapshot_id: str) -> SyncError:
    return SyncError("snapshot_session_not_found", f"snapshot session {snapshot_id} was not found")


def _forbidden(snapshot_id: str) -> SyncError:
    return SyncError(
        "snapshot_session_forbidden",
        f"snapshot session {snapshot_id} does not belong to the authenticated user",
    )


def _expired(snapshot_id: str) -> SyncError:
    return SyncError(
        "snapshot_session_expired",
        f"snapshot session {snapshot_id} has expired; start a new snapshot session",
    )


def _pages_lost(snapshot_id: str) -> SyncError:
    # `sync.snapshot_pages` is UNLOGGED (`engine.ddl`): a database crash or failover empties it.
    return SyncError(
        "snapshot_session_expired",
        f"snapshot session {snapshot_id} lost its rows (the database restarted or failed over);"
        " start a new snapshot session",
    )


def _too_large(user_id: str, dimension: str, value: int, limit: int) -> SyncError:
    setting = (
        "max_rows_per_snapshot_session"
        if dimension == "row_count"
        else ("max_bytes_per_snapshot_session")
    )
    return SyncError(
        "snapshot_session_too_large",
        f"snapshot for user {user_id} exceeds the {dimension} limit: {value} > {limit} ({setting})",
    )


class SnapshotInconsistentError(RuntimeError):
    """Business tables and `sync.row_state` disagree for a user; the snapshot is refused."""


def parse_snapshot_id(snapshot_id: str) -> uuid.UUID:
    """The session id, or 404: an id that is not a UUID names no session (Go answers 500)."""
    try:
        return uuid.UUID(snapshot_id.strip())
    except ValueError:
        raise snapshot_not_found(snapshot_id) from None


# ------------------------------------------------------------------------------------ create

_COUNT_LIVE = "SELECT count(*) FROM sync.row_state WHERE user_pk = $1 AND deleted = FALSE"
# Live sessions that count against the user's cap: those of other sources (this source's are
# about to be replaced).
_COUNT_OTHER_SESSIONS = """
SELECT count(*) FROM sync.snapshot_sessions
WHERE user_pk = $1 AND source_id <> $2 AND expires_at > now()
"""
_DELETE_REPLACED = """
DELETE FROM sync.snapshot_sessions
WHERE user_pk = $1 AND source_id = $2 AND snapshot_id <> $3
"""


# Column kinds whose `to_json` text is the text `to_jsonb` prints for the same value (the
# others, numbers through numeric and json documents, take `to_jsonb` of the value).
_TO_JSON_KINDS = frozenset(
    {
        ValueKind.TEXT,
        ValueKind.INTEGER,
        ValueKind.BOOLEAN,
        ValueKind.DATE,
        ValueKind.TIME,
        ValueKind.TIMESTAMP,
        ValueKind.TIMESTAMPTZ,
    }
)


def _value_json(column: ColumnInfo) -> str:
    """SQL for the JSON text of one payload value of `src` (NULL for SQL NULL)."""
    value = f"src.{quote_ident(column.name)}"
    kind = column.kind
    if kind is ValueKind.UUID:
        return f"""'"' || {value}::text || '"'"""
    if kind is ValueKind.BYTEA:
        # PostgreSQL's base64 breaks lines every 76 characters; the wire wants one line.
        return f"""'"' || translate(encode({value}, 'base64'), E'\\n', '') || '"'"""
    if kind in _TO_JSON_KINDS:
        return f"to_json({value})::text"
    return f"to_jsonb({value})::text"


def payload_json_sql(table: TableInfo) -> str:
    """SQL for a row's payload JSON text: exactly what `to_jsonb(src)::text` prints (bytea as
    base64), concatenated per column, which costs PostgreSQL about half as much: keys in
    jsonb's order (shorter first, then bytewise), `": "` and `", "` between them."""
    columns = sorted(table.payload_columns, key=lambda c: (len(c.name.encode()), c.name.encode()))
    parts = [
        quote_literal(
            ("{" if i == 0 else ", ") + json.dumps(column.name, ensure_ascii=False) + ": "
        )
        + f" || COALESCE({_value_json(column)}, 'null')"
        for i, column in enumerate(columns)
    ]
    return " || ".join(parts) + " || '}'" if parts else "'{}'"


def _business_select(table: TableInfo) -> str:
    """The user's rows of one table as (table_id, key_bytes, payload JSON text, identity):
    identity is the start of the row's wire object (`engine.values.ROW_IDENTITY_JSON_SQL`)."""
    key = f"src.{quote_ident(table.key_column)}"
    key_bytes = (
        f"uuid_send({key})"
        if table.key_kind is KeyKind.UUID
        else (f"convert_to({key}::text, 'UTF8')")
    )
    # Only the columns this process's catalog knows (a column added since the start is served
    # after a restart has validated its type, as in bundles); no `_sync_scope_id`.
    columns = ", ".join(quote_ident(column.name) for column in table.payload_columns)
    identity = table_row_identity_json_sql(table, key)
    return (
        f"SELECT {table.table_id}::integer AS table_id, {key_bytes} AS key_bytes,"
        f" {payload_json_sql(table)} AS payload, {identity} AS identity"
        f" FROM (SELECT {columns} FROM {table.sql_name}"
        f" WHERE {quote_ident(SCOPE_COLUMN)} = $2) AS src"
    )


PAGE_ROWS = 1000
"""Snapshot rows per `sync.snapshot_pages` row at most."""
PAGE_BYTES = 4 * 1024 * 1024
"""Wire bytes per page: a page closes at the row that crosses a multiple of this (so a page is
at most this plus one row)."""
_PAGE_SPAN = PAGE_ROWS - 1  # a page holding ordinal n starts at n - _PAGE_SPAN or later


# The write part of `materialize_sql` per `snapshot_storage`: a CTE `written` over `joined`
# that stores the session's rows and returns (row_count, payload_bytes) per written table row.
_WRITE_PAGES = f"""
rendered AS (
    SELECT table_id, key_bytes, octet_length(payload) AS payload_bytes,
           convert_to(identity || ',"row_version":' || bundle_seq
                      || ',"payload":' || payload || '}}', 'UTF8') AS wire
    FROM joined
    WHERE bundle_seq IS NOT NULL AND payload IS NOT NULL
), numbered AS (
    -- one sort: the ordinal and the running byte offset (each row counted with its comma)
    SELECT payload_bytes, wire, row_number() OVER w AS ordinal,
           sum(octet_length(wire) + 1) OVER w AS byte_end
    FROM rendered
    WINDOW w AS (ORDER BY table_id, key_bytes ROWS UNBOUNDED PRECEDING)
), grouped AS (
    SELECT min(ordinal) AS first_ordinal, count(*) AS row_count,
           sum(payload_bytes) AS payload_bytes,
           min(byte_end - octet_length(wire) - 1) AS base,
           array_agg(byte_end ORDER BY ordinal) AS byte_ends,
           string_agg(wire, '\\x2c'::bytea ORDER BY ordinal) AS rows_wire
    FROM numbered
    GROUP BY (ordinal - 1) / {PAGE_ROWS}, (byte_end - 1) / {PAGE_BYTES}
), written AS (
    INSERT INTO sync.snapshot_pages
        (snapshot_id, first_ordinal, row_count, payload_bytes, row_ends, rows_wire)
    SELECT $1, first_ordinal, row_count, payload_bytes,
           ARRAY(SELECT (e - base - 1)::integer FROM unnest(byte_ends) AS e), rows_wire
    FROM grouped
    RETURNING row_count, payload_bytes
)"""
# As the Go server writes them (and this server did before `sync.snapshot_pages`).
_WRITE_REFERENCE = """
written AS (
    INSERT INTO sync.snapshot_session_rows
        (snapshot_id, row_ordinal, table_id, key_bytes, bundle_seq, payload_wire)
    SELECT $1, row_number() OVER (ORDER BY table_id, key_bytes), table_id, key_bytes,
           bundle_seq, payload::json
    FROM joined
    WHERE bundle_seq IS NOT NULL AND payload IS NOT NULL
    RETURNING 1 AS row_count, octet_length(payload_wire::text) AS payload_bytes
)"""
_WRITES = {"pages": _WRITE_PAGES, "reference": _WRITE_REFERENCE}


def materialize_sql(catalog: Catalog, storage: SnapshotStorage = "pages") -> str:
    """The one statement that freezes a user's live rows into a new snapshot session.

    Parameters: $1 snapshot_id, $2 user_id, $3 user_pk, $4 snapshot_bundle_seq, $5 TTL seconds,
    $6 source_id.
    Returns the counts, plus the number and one example of rows on either side of the
    business/row_state consistency check (the caller rolls back if any).

    Rows are numbered 1..N by `(table_id, key_bytes)`. With `storage` "pages" they are
    rendered once as their SnapshotRow wire JSON and written as pages (`sync.snapshot_pages`,
    a few hundred table rows for 100k snapshot rows, so chunk reads only copy bytes); with
    "reference" each is one `sync.snapshot_session_rows` row, as the Go server writes them.
    """
    business = "\nUNION ALL\n".join(_business_select(table) for table in catalog.tables)
    return f"""
WITH business AS (
{business}
), live AS (
    SELECT table_id, key_bytes, bundle_seq FROM sync.row_state
    WHERE user_pk = $3 AND deleted = FALSE
), joined AS MATERIALIZED (
    SELECT COALESCE(b.table_id, l.table_id) AS table_id,
           COALESCE(b.key_bytes, l.key_bytes) AS key_bytes,
           l.bundle_seq, b.payload, b.identity
    FROM business AS b FULL JOIN live AS l
      ON l.table_id = b.table_id AND l.key_bytes = b.key_bytes
), {_WRITES[storage].strip()}, session AS (
    INSERT INTO sync.snapshot_sessions
        (snapshot_id, user_pk, snapshot_bundle_seq, row_count, byte_count, expires_at, source_id)
    SELECT $1, $3, $4, COALESCE(sum(row_count), 0), COALESCE(sum(payload_bytes), 0),
           now() + make_interval(secs => $5::double precision), $6::text
    FROM written
    RETURNING row_count, byte_count, expires_at
), checked AS (  -- one scan of the image for all three (the writes scan it once more)
    SELECT count(*) FILTER (WHERE bundle_seq IS NULL) AS missing_state,
           count(*) FILTER (WHERE payload IS NULL) AS missing_business,
           (array_agg(table_id || ':' || encode(key_bytes, 'hex') ORDER BY table_id, key_bytes)
              FILTER (WHERE bundle_seq IS NULL OR payload IS NULL))[1] AS example
    FROM joined
)
SELECT s.row_count, s.byte_count, s.expires_at, c.missing_state, c.missing_business, c.example
FROM session AS s, checked AS c
"""


async def create_snapshot(
    pool: asyncpg.Pool,
    *,
    catalog: Catalog,
    config: ServiceConfig,
    user_id: str,
    source_id: str,
    replacement: SourceReplacement | None,
) -> SnapshotSession:
    """Freeze the user's live rows; with `replacement`, rotate the source in the same tx.

    Raises 409 `scope_uninitialized` / `scope_initializing`, 429 `too_many_snapshot_sessions`,
    the rotation errors (`rotation.rotate_source`), 413 `snapshot_session_too_large`, and
    `SnapshotInconsistentError` when business rows and row_state disagree. A serialization
    failure (a concurrent commit touched the rotated source) re-runs the whole transaction.
    Once the new session is committed, `source_id`'s older sessions of the user are deleted.
    """
    async with pool.acquire() as conn:

        async def attempt() -> tuple[SnapshotSession, int]:
            async with conn.transaction(isolation="repeatable_read"):
                return await _create_in_tx(
                    conn,
                    catalog=catalog,
                    config=config,
                    user_id=user_id,
                    source_id=source_id,
                    replacement=replacement,
                )

        session, user_pk = await run_retrying(attempt)
        # Outside the snapshot transaction, so a concurrent delete of the same old session
        # (the janitor, the client) cannot fail the create; its rows cascade.
        await conn.execute(_DELETE_REPLACED, user_pk, source_id, session.snapshot_id)
        return session


def _too_many_sessions(user_id: str, live: int, limit: int) -> SyncError:
    return SyncError(
        "too_many_snapshot_sessions",
        f"user {user_id} already has {live} live snapshot sessions of other sources"
        f" (max_snapshot_sessions_per_user {limit}); finish or delete one, or retry after"
        " they expire",
    )


async def _create_in_tx(
    conn: Connection,
    *,
    catalog: Catalog,
    config: ServiceConfig,
    user_id: str,
    source_id: str,
    replacement: SourceReplacement | None,
) -> tuple[SnapshotSession, int]:
    scope = await require_initialized(conn, user_id)
    cap = config.max_snapshot_sessions_per_user
    others = await conn.fetchval(_COUNT_OTHER_SESSIONS, scope.user_pk, source_id)
    if others >= cap:
        raise _too_many_sessions(user_id, others, cap)
    if replacement is not None:
        await rotate_source(
            conn,
            user_id=user_id,
            user_pk=scope.user_pk,
            source_id=source_id,
            replacement=replacement,
        )
    max_rows = config.max_rows_per_snapshot_session
    if max_rows > 0:
        # Cheap (index-only) refusal before materialising an image that would be thrown away.
        live = await conn.fetchval(_COUNT_LIVE, scope.user_pk)
        if live > max_rows:
            raise _too_large(user_id, "row_count", live, max_rows)
    snapshot_id = uuid.uuid4()
    row = await conn.fetchrow(
        materialize_sql(catalog, config.snapshot_storage),
        snapshot_id,
        user_id,
        scope.user_pk,
        scope.latest_bundle_seq,
        float(config.snapshot_session_ttl_seconds),
        source_id,
    )
    assert row is not None  # the session CTE always inserts exactly one row
    if row["missing_state"] or row["missing_business"]:
        raise SnapshotInconsistentError(
            f"snapshot for user {user_id} refused: {row['missing_state']} live business rows"
            f" lack live sync.row_state and {row['missing_business']} live sync.row_state rows"
            f" lack a business row (first: table_id:key_hex {row['example']})"
        )
    if max_rows > 0 and row["row_count"] > max_rows:
        raise _too_large(user_id, "row_count", row["row_count"], max_rows)
    max_bytes = config.max_bytes_per_snapshot_session
    if max_bytes > 0 and row["byte_count"] > max_bytes:
        raise _too_large(user_id, "byte_count", row["byte_count"], max_bytes)
    session = SnapshotSession(
        snapshot_id=snapshot_id,
        snapshot_bundle_seq=scope.latest_bundle_seq,
        row_count=row["row_count"],
        byte_count=row["byte_count"],
        expires_at=row["expires_at"],
    )
    return session, scope.user_pk


# ------------------------------------------------------------------------------------ chunks

# One statement: the session (owner and expiry decided by the database clock) and the rows with
# ordinals in (after, upper] as wire JSON: slices of this server's pages, or, for a session the
# Go server created, its `snapshot_session_rows` rendered as SnapshotRow JSON (Go's field order).
# Ordinals are contiguous 1..row_count, so has_more is row_count > upper.
_CHUNK = """
WITH s AS (
    SELECT s.snapshot_id, s.snapshot_bundle_seq, s.row_count,
           u.user_id = $2 AS owned, s.expires_at < now() AS expired
    FROM sync.snapshot_sessions AS s
    JOIN sync.user_state AS u ON u.user_pk = s.user_pk
    WHERE s.snapshot_id = $1
), p AS (
    SELECT p.row_ends, p.rows_wire,
           greatest($3 + 1, p.first_ordinal) - p.first_ordinal + 1 AS low,
           least($4, p.first_ordinal + p.row_count - 1) - p.first_ordinal + 1 AS high,
           p.first_ordinal
    FROM s JOIN sync.snapshot_pages AS p ON p.snapshot_id = s.snapshot_id
    WHERE s.owned AND NOT s.expired
      AND p.first_ordinal BETWEEN $3 + 1 - {PAGE_SPAN} AND $4
      AND p.first_ordinal + p.row_count > $3 + 1
), sliced AS (
    SELECT first_ordinal, high - low + 1 AS returned,
           CASE WHEN low = 1 THEN 0 ELSE row_ends[low - 1] + 1 END AS start, row_ends[high] AS stop,
           rows_wire
    FROM p
)
SELECT s.snapshot_bundle_seq, s.row_count, s.owned, s.expired,
       (SELECT COALESCE(sum(returned), 0)::bigint FROM sliced) AS paged,
       (SELECT array_agg(substring(rows_wire FROM start + 1 FOR stop - start)
                         ORDER BY first_ordinal)
         FROM sliced) AS pages,
       (SELECT count(*) FROM sync.snapshot_session_rows AS r
         WHERE s.owned AND NOT s.expired AND r.snapshot_id = s.snapshot_id
           AND r.row_ordinal > $3 AND r.row_ordinal <= $4) AS returned,
       (SELECT string_agg(
            {ROW_IDENTITY_JSON_SQL}
            || ',"row_version":' || r.bundle_seq
            || ',"payload":' || r.payload_wire::text || '}',
            ',' ORDER BY r.row_ordinal)
         FROM sync.snapshot_session_rows AS r
         JOIN sync.table_catalog AS c ON c.table_id = r.table_id
         WHERE s.owned AND NOT s.expired AND r.snapshot_id = s.snapshot_id
           AND r.row_ordinal > $3 AND r.row_ordinal <= $4) AS rows
FROM s
""".replace("{ROW_IDENTITY_JSON_SQL}", ROW_IDENTITY_JSON_SQL).replace(
    "{PAGE_SPAN}", str(_PAGE_SPAN)
)


async def read_chunk(
    conn: Connection,
    *,
    snapshot_id: str,
    user_id: str,
    after_row_ordinal: int,
    max_rows: int,
) -> bytes:
    """One page of a snapshot as the SnapshotChunkResponse JSON body.

    Rows with ordinal in `(after_row_ordinal, after_row_ordinal + max_rows]`; `max_rows` must
    already be capped. Raises 404 (unknown or non-UUID id), 403 (another user's), 410 (expired,
    or its pages lost in a database crash).
    Reading does not extend the TTL.
    """
    session_id = parse_snapshot_id(snapshot_id)
    upper = min(after_row_ordinal + max_rows, INT64_MAX)
    row = await conn.fetchrow(_CHUNK, session_id, user_id, after_row_ordinal, upper)
    if row is None:
        raise snapshot_not_found(snapshot_id)
    if not row["owned"]:
        raise _forbidden(snapshot_id)
    if row["expired"]:
        raise _expired(snapshot_id)
    parts: list[bytes] = list(row["pages"] or ())
    if row["rows"]:
        parts.append(row["rows"].encode())
    returned: int = row["paged"] + row["returned"]
    if returned < min(row["row_count"], upper) - after_row_ordinal:
        raise _pages_lost(snapshot_id)
    head = (
        f'{{"snapshot_id":"{session_id}","snapshot_bundle_seq":{row["snapshot_bundle_seq"]}'
        ',"rows":['
    )
    tail = (
        f'],"next_row_ordinal":{after_row_ordinal + returned}'
        f',"has_more":{json.dumps(row["row_count"] > upper)}}}'
    )
    return b"".join((head.encode(), b",".join(parts), tail.encode()))


# ------------------------------------------------------------------------------------ delete

_DELETE = """
WITH s AS (
    SELECT s.snapshot_id, u.user_id = $2 AS owned
    FROM sync.snapshot_sessions AS s
    JOIN sync.user_state AS u ON u.user_pk = s.user_pk
    WHERE s.snapshot_id = $1
), deleted AS (
    DELETE FROM sync.snapshot_sessions AS d
    USING s
    WHERE d.snapshot_id = s.snapshot_id AND s.owned
    RETURNING d.snapshot_id
)
SELECT s.owned FROM s
"""


async def delete_snapshot(conn: Connection, *, snapshot_id: str, user_id: str) -> None:
    """Delete a snapshot session and its rows. 404 unknown, 403 another user's; no expiry check."""
    session_id = parse_snapshot_id(snapshot_id)
    owned = await conn.fetchval(_DELETE, session_id, user_id)
    if owned is None:
        raise snapshot_not_found(snapshot_id)
    if not owned:
        raise _forbidden(snapshot_id)
