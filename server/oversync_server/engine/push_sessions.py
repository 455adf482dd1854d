"""Push sessions: create, stage chunks, delete (protocol.md §6.2, §6.3, §6.5; server.md §4).

A session stages one bundle of one source (`(user, source_id, source_bundle_id)`) in
`sync.push_sessions` / `sync.push_session_rows` until commit (`push_commit.py`). Sessions belong to
a user, not a source: any source of the user holding the `push_id` may act on it. They expire
`push_session_ttl_seconds` after creation or the last accepted chunk; expired sessions answer 410
and are deleted by the janitor (`oversync_server.janitor`), outside every user lock and request
transaction (the reference deletes every user's expired sessions inside each push create).

Statement budget (each function runs in the caller's transaction):
* `lock_for_create`: 1 (the scope lock, the replay look-up and the source read).
* `create_session`: 1 (the replace of a staging session of the same tuple and the insert).
* `stage_chunk`: 1 for a chunk of up to `SMALL_CHUNK_ROWS` rows (their insert from arrays, the
  session update and the value check in one statement), else 2 whatever the row count: one
  COPY of the rows, and one session update whose RETURNING casts every staged payload through
  its table's row type (`jsonb_populate_record`, the same conversion the commit applies, so
  type errors answer 400 now instead of failing the commit); plus the session lock. A failing
  value check costs one extra statement per payload column to name the column.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass

import asyncpg

from oversync_server.engine.catalog import Catalog, TableInfo, quote_ident
from oversync_server.engine.db import Connection
from oversync_server.engine.errors import SyncError
from oversync_server.engine.push_rows import PreparedRow, chunk_invalid
from oversync_server.engine.scope import Scope, lock_scope_sql, lock_scope_with
from oversync_server.engine.sources import SourceState


@dataclass(frozen=True, slots=True)
class PushSession:
    push_id: uuid.UUID
    user_pk: int
    user_id: str
    source_id: str
    source_bundle_id: int
    planned_row_count: int
    next_expected_row_ordinal: int
    initialization_id: uuid.UUID | None
    expired: bool


_SESSION_FIELDS = (
    "push_id",
    "user_pk",
    "user_id",
    "source_id",
    "source_bundle_id",
    "planned_row_count",
    "next_expected_row_ordinal",
    "initialization_id",
    "expired",
)


@dataclass(frozen=True, slots=True)
class AlreadyCommitted:
    bundle_seq: int
    source_id: str
    source_bundle_id: int
    row_count: int
    bundle_hash: str


@dataclass(frozen=True, slots=True)
class CreateContext:
    """What a push create decides on, read in one statement: the locked scope, the retained
    committed bundle of the source tuple (an idempotent replay), and the source's state."""

    scope: Scope
    committed: AlreadyCommitted | None
    source: SourceState


_CREATE_CONTEXT = lock_scope_sql(
    "c.bundle_seq AS committed_bundle_seq, c.row_count AS committed_row_count,"
    " c.bundle_hash AS committed_bundle_hash, src.state AS source_state,"
    " src.max_committed_source_bundle_id, src.replaced_by_source_id",
    """LEFT JOIN sync.bundle_log c ON c.user_pk = u.user_pk AND c.source_id = $2
    AND c.source_bundle_id = $3 AND c.bundle_seq > u.retained_bundle_floor
LEFT JOIN sync.source_state src ON src.user_pk = u.user_pk AND src.source_id = $2""",
)

# One statement: delete a staging session of the same tuple, then insert the new one. The insert
# reads the delete's result, so the delete has run (and freed the tuple's unique key) before it.
_REPLACE_AND_INSERT = """
WITH replaced AS (
    DELETE FROM sync.push_sessions WHERE user_pk = $2 AND source_id = $3 AND source_bundle_id = $4
    RETURNING 1
)
INSERT INTO sync.push_sessions (push_id, user_pk, source_id, source_bundle_id, planned_row_count,
                                next_expected_row_ordinal, initialization_id, expires_at)
SELECT $1, $2, $3, $4, $5, 0, $6, now() + make_interval(secs => $7)
FROM (SELECT count(*) FROM replaced) AS done
"""

_LOCK = """
SELECT ps.push_id, ps.user_pk, us.user_id, ps.source_id, ps.source_bundle_id,
       ps.planned_row_count, ps.next_expected_row_ordinal, ps.initialization_id,
       ps.expires_at < clock_timestamp() AS expired
FROM sync.push_sessions ps JOIN sync.user_state us ON us.user_pk = ps.user_pk
WHERE ps.push_id = $1
FOR UPDATE OF ps
"""

_ADVANCE = """
UPDATE sync.push_sessions
SET next_expected_row_ordinal = $2, expires_at = now() + make_interval(secs => $3)
WHERE push_id = $1
"""

_STAGE_COLUMNS = (
    "push_id",
    "row_ordinal",
    "table_id",
    "key_bytes",
    "op_code",
    "base_bundle_seq",
    "payload_apply",
)


async def lock_for_create(
    conn: Connection, *, user_id: str, source_id: str, source_bundle_id: int
) -> CreateContext:
    """Lock the user's scope (`engine.scope.lock_scope`) and read the tuple's committed bundle
    and the source's state with it: one round trip instead of three."""
    scope, row = await lock_scope_with(conn, _CREATE_CONTEXT, user_id, source_id, source_bundle_id)
    committed = None
    if row["committed_bundle_seq"] is not None:
        committed = AlreadyCommitted(
            bundle_seq=row["committed_bundle_seq"],
            source_id=source_id,
            source_bundle_id=source_bundle_id,
            row_count=row["committed_row_count"],
            bundle_hash=bytes(row["committed_bundle_hash"]).hex(),
        )
    source = SourceState(source_id, None)
    if row["source_state"] is not None:
        source = SourceState(
            source_id,
            row["source_state"],
            row["max_committed_source_bundle_id"],
            row["replaced_by_source_id"],
        )
    return CreateContext(scope, committed, source)


async def create_session(
    conn: Connection,
    *,
    user_pk: int,
    source_id: str,
    source_bundle_id: int,
    planned_row_count: int,
    initialization_id: str | None,
    ttl_seconds: float,
) -> uuid.UUID:
    """Replace any staging session of the same tuple with a new one; its `push_id`."""
    push_id = uuid.uuid4()
    await conn.execute(
        _REPLACE_AND_INSERT,
        push_id,
        user_pk,
        source_id,
        source_bundle_id,
        planned_row_count,
        uuid.UUID(initialization_id) if initialization_id else None,
        float(ttl_seconds),
    )
    return push_id


def session_not_found(push_id: str) -> SyncError:
    return SyncError("push_session_not_found", f"push session {push_id} was not found")


async def lock_session(conn: Connection, push_id: str, user_id: str) -> PushSession:
    """Lock the caller's live session: 404 unknown (or not a UUID), 403 another user's, 410
    expired."""
    parsed = parse_push_id(push_id)
    return checked_session(push_id, user_id, await conn.fetchrow(_LOCK, parsed))


def parse_push_id(push_id: str) -> uuid.UUID:
    """The session id as a UUID; 404 `push_session_not_found` for anything else."""
    try:
        return uuid.UUID(push_id)
    except ValueError:
        raise session_not_found(push_id) from None


def checked_session(push_id: str, user_id: str, row: asyncpg.Record | None) -> PushSession:
    """The session of a row read like `lock_session`'s (its columns first): 404 none, 403
    another user's, 410 expired."""
    if row is None:
        raise session_not_found(push_id)
    if row["user_id"] != user_id:
        raise SyncError(
            "push_session_forbidden",
            f"push session {push_id} does not belong to the authenticated user",
        )
    if row["expired"]:
        raise SyncError(
            "push_session_expired",
            f"push session {push_id} has expired; start a new push session",
        )
    return PushSession(*(row[field] for field in _SESSION_FIELDS))


async def delete_session(conn: Connection, push_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM sync.push_sessions WHERE push_id = $1", push_id)


def _value_checks(tables: list[TableInfo], source: str, where: str = "") -> str:
    """SQL adding up, for each table, the staged rows `p` of `source` (`where` ending in AND
    narrows them) cast through the table's row type (`jsonb_populate_record`, which fails on a
    value the column type refuses, as the commit's apply would). The text depends only on the
    set of tables, so the prepared statement is reused."""
    return " + ".join(
        f"(SELECT count(*) FROM {source},"
        f" jsonb_populate_record(NULL::{table.sql_name}, p.payload_apply::jsonb) r"
        f" WHERE {where}p.table_id = {table.table_id} AND p.op_code <> 3)"
        for table in tables
    )


def _advance_and_check_sql(tables: list[TableInfo]) -> str:
    """One statement: advance the session and (in its RETURNING) cast every staged payload of
    this chunk through its table's row type."""
    checks = _value_checks(
        tables, "sync.push_session_rows p", "p.push_id = $1 AND p.row_ordinal >= $4 AND "
    )
    return _ADVANCE.rstrip() + " RETURNING " + checks


# Chunks of up to this many rows are staged by one statement: the rows as arrays
# (`_STAGE_SMALL`), the session advance and the value check of their payloads; bigger ones by a
# COPY and the advance-and-check statement.
SMALL_CHUNK_ROWS = 100

_STAGE_SMALL = """
WITH p AS (
    SELECT $4 + r.ordinal - 1 AS row_ordinal, r.table_id, r.key_bytes, r.op_code,
           r.base_bundle_seq, r.payload_apply::json AS payload_apply
    FROM unnest($5::int4[], $6::bytea[], $7::int2[], $8::int8[], $9::text[])
         WITH ORDINALITY AS r(table_id, key_bytes, op_code, base_bundle_seq, payload_apply, ordinal)
), staged AS (
    INSERT INTO sync.push_session_rows (push_id, row_ordinal, table_id, key_bytes, op_code,
                                        base_bundle_seq, payload_apply)
    SELECT $1, row_ordinal, table_id, key_bytes, op_code, base_bundle_seq, payload_apply FROM p
), advanced AS (
    UPDATE sync.push_sessions
    SET next_expected_row_ordinal = $2, expires_at = now() + make_interval(secs => $3)
    WHERE push_id = $1
)
SELECT {checks}
"""


async def stage_chunk(
    conn: Connection,
    session: PushSession,
    *,
    start_row_ordinal: int,
    rows: list[PreparedRow],
    ttl_seconds: float,
) -> int:
    """Stage one chunk, check its values against the column types, advance the session.

    Returns the new `next_expected_row_ordinal`.
    """
    tables = sorted(
        {row.table.table_id: row.table for row in rows if row.payload_apply}.values(),
        key=lambda table: table.table_id,
    )
    end = start_row_ordinal + len(rows)
    if len(rows) <= SMALL_CHUNK_ROWS:
        await conn.fetchval(
            _STAGE_SMALL.format(checks=_value_checks(tables, "p") if tables else "0"),
            session.push_id,
            end,
            float(ttl_seconds),
            start_row_ordinal,
            [row.table.table_id for row in rows],
            [row.key_bytes for row in rows],
            [row.op_code for row in rows],
            [row.base_row_version for row in rows],
            [row.payload_apply for row in rows],
        )
        return end
    records = [
        (
            session.push_id,
            start_row_ordinal + index,
            row.table.table_id,
            row.key_bytes,
            row.op_code,
            row.base_row_version,
            row.payload_apply,
        )
        for index, row in enumerate(rows)
    ]
    await conn.copy_records_to_table(
        "push_session_rows", schema_name="sync", columns=_STAGE_COLUMNS, records=records
    )
    if tables:
        await conn.fetchval(
            _advance_and_check_sql(tables),
            session.push_id,
            end,
            float(ttl_seconds),
            start_row_ordinal,
        )
    else:
        await conn.execute(_ADVANCE, session.push_id, end, float(ttl_seconds))
    return end


async def explain_value_error(
    conn: Connection, catalog: Catalog, rows: list[PreparedRow], error: asyncpg.PostgresError
) -> SyncError:
    """Name the table and column of a value the chunk check refused (outside the failed tx)."""
    by_table: dict[int, list[dict[str, object]]] = {}
    for row in rows:
        if row.payload_apply is not None:
            by_table.setdefault(row.table.table_id, []).append(json.loads(row.payload_apply))
    for table_id, payloads in by_table.items():
        table = catalog.by_id(table_id)
        for column in table.payload_columns:
            values = [{column.name: p[column.name]} for p in payloads if column.name in p]
            if not values:
                continue
            try:
                await conn.fetchval(
                    f"SELECT count(*) FROM jsonb_populate_recordset(NULL::{table.sql_name},"
                    f" $1::jsonb) AS r WHERE r.{quote_ident(column.name)} IS NULL OR TRUE",
                    json.dumps(values),
                )
            except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as column_error:
                return chunk_invalid(
                    f"payload for {table.qualified_name} has an invalid value for column"
                    f' "{column.name}" ({column.sql_type}): {column_error}'
                )
    return chunk_invalid(f"payload value is invalid: {error}")
