"""Push sessions: create, stage chunks, delete (protocol.md §6.2, §6.3, §6.5; server.md §4).

A session stages one bundle of one source (`(user, source_id, source_bundle_id)`) in
`sync.push_sessions` / `sync.push_session_rows` until commit (`push_commit.py`). Sessions belong to
a user, not a source: any source of the user holding the `push_id` may act on it. They expire
`push_session_ttl_seconds` after creation or the last accepted chunk; expired sessions answer 410
and are deleted by the janitor (`oversync_server.janitor`), outside every user lock and request
transaction (the reference deletes every user's expired sessions inside each push create).

Statement budget (each function runs in the caller's transaction):
* `lock_for_create`: 1 (the scope lock, the replay look-up and the source read, and the usual
  create itself: the replace of a staging session of the same tuple and the insert).
* `create_session`: 1 (the same replace and insert, for a create `lock_for_create` did not make:
  a seeding push, a user's first contact).
* `lock_and_stage`: 1 for a chunk of up to `SMALL_CHUNK_ROWS` rows that is sure to be accepted
  (the session lock, the rows' insert from arrays, the session update and the value check in one
  statement); otherwise the session lock alone, and `stage_chunk` after the caller's checks.
* `stage_chunk`: 1 for a small chunk (the same statement), else 2 whatever the row count: one
  COPY of the rows, and one session update whose RETURNING casts every staged payload through
  its table's row type (`jsonb_populate_record`, the same conversion the commit applies, so
  type errors answer 400 now instead of failing the commit). A failing value check costs one
  extra statement per payload column to name the column.
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
    committed bundle of the source tuple (an idempotent replay), and the source's state; and
    `created`, the session the same statement created when every check was sure to pass."""

    scope: Scope
    committed: AlreadyCommitted | None
    source: SourceState
    created: uuid.UUID | None


@dataclass(frozen=True, slots=True)
class PlannedSession:
    """The session a push create makes when its checks pass (`create_session`'s values)."""

    planned_row_count: int
    initialization_id: str | None
    ttl_seconds: float


# Create the session of the `target` CTE's row (push_id, user_pk, source_id, source_bundle_id,
# planned_row_count, initialization_id, ttl), replacing a staging session of the same tuple.
# The INSERT reads the DELETE's result, so the delete has run (and freed the tuple's unique key)
# before it.
_REPLACE_AND_INSERT_TARGET = """replaced AS (
    DELETE FROM sync.push_sessions ps USING target t
    WHERE ps.user_pk = t.user_pk AND ps.source_id = t.source_id
      AND ps.source_bundle_id = t.source_bundle_id
    RETURNING 1
), created AS (
    INSERT INTO sync.push_sessions (push_id, user_pk, source_id, source_bundle_id,
                                    planned_row_count, next_expected_row_ordinal,
                                    initialization_id, expires_at)
    SELECT t.push_id, t.user_pk, t.source_id, t.source_bundle_id, t.planned_row_count, 0,
           t.initialization_id, now() + make_interval(secs => t.ttl)
    FROM target t, (SELECT count(*) FROM replaced) AS done
    RETURNING 1
)"""

_REPLACE_AND_INSERT = f"""
WITH target AS (
    SELECT $1::uuid AS push_id, $2::bigint AS user_pk, $3::text AS source_id,
           $4::bigint AS source_bundle_id, $5::bigint AS planned_row_count,
           $6::uuid AS initialization_id, $7::float8 AS ttl
), {_REPLACE_AND_INSERT_TARGET}
SELECT count(*) FROM created
"""

_READ_CONTEXT = lock_scope_sql(
    "c.bundle_seq AS committed_bundle_seq, c.row_count AS committed_row_count,"
    " c.bundle_hash AS committed_bundle_hash, src.state AS source_state,"
    " src.max_committed_source_bundle_id, src.replaced_by_source_id",
    """LEFT JOIN sync.bundle_log c ON c.user_pk = u.user_pk AND c.source_id = $2
    AND c.source_bundle_id = $3 AND c.bundle_seq > u.retained_bundle_floor
LEFT JOIN sync.source_state src ON src.user_pk = u.user_pk AND src.source_id = $2""",
)

# The reads of a push create and, in the same round trip, the usual create itself ($4 the new
# push_id, $5 the planned row count, $6 the TTL, $7 whether the request may be created here: it
# carries no initialization_id). The session is created only when the create's checks are sure
# to pass: the scope is INITIALIZED, the tuple has no committed bundle and the source expects
# exactly this source_bundle_id. The caller still makes every check on the row read
# (`admit_push_create`, `check_next`, raising in their order; a refusal rolls the session back),
# and a create this statement did not make (seeding, a first contact) is `create_session`'s.
_CREATE_CONTEXT = f"""
WITH ctx AS MATERIALIZED ({_READ_CONTEXT}), target AS (
    SELECT $4::uuid AS push_id, ctx.user_pk, $2::text AS source_id,
           $3::bigint AS source_bundle_id, $5::bigint AS planned_row_count,
           NULL::uuid AS initialization_id, $6::float8 AS ttl
    FROM ctx
    WHERE $7 AND ctx.state_code = 2 AND ctx.committed_bundle_seq IS NULL
      AND COALESCE(ctx.source_state, '') <> 'retired'
      AND COALESCE(ctx.max_committed_source_bundle_id, 0) + 1 = $3
), {_REPLACE_AND_INSERT_TARGET}
SELECT ctx.*, EXISTS (SELECT 1 FROM created) AS created FROM ctx
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
    conn: Connection,
    *,
    user_id: str,
    source_id: str,
    source_bundle_id: int,
    planned: PlannedSession,
) -> CreateContext:
    """Lock the user's scope (`engine.scope.lock_scope`) and read the tuple's committed bundle
    and the source's state with it: one round trip instead of three; in the same round trip,
    create the `planned` session when its checks are sure to pass (`CreateContext.created`)."""
    push_id = uuid.uuid4()
    scope, row = await lock_scope_with(
        conn,
        _CREATE_CONTEXT,
        user_id,
        source_id,
        source_bundle_id,
        push_id,
        planned.planned_row_count,
        float(planned.ttl_seconds),
        planned.initialization_id is None,
    )
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
    return CreateContext(scope, committed, source, push_id if row["created"] else None)


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


# Chunks of up to this many rows are staged by one statement (`_STAGE_SMALL`) that also locks
# the session, advances it and checks the values of their payloads; bigger ones by a COPY and
# the advance-and-check statement, after `lock_session`.
SMALL_CHUNK_ROWS = 100

# $1 push_id, $2 the new next_expected_row_ordinal (the chunk's end), $3 the TTL, $4 the chunk's
# start_row_ordinal, $5-$9 the rows, $10 the caller's user id, $11 whether the caller has checked
# the session already. The `session` CTE is `lock_session`'s read; the rows are staged only when
# the chunk is sure to be accepted (the caller's session, live, not seeding, in order, within
# the planned row count), or when the caller has checked the session ($11): otherwise the
# statement only reads the session, and the caller's checks decide (`lock_and_stage`).
_STAGE_SMALL = f"""
WITH session AS MATERIALIZED ({_LOCK}), accepted AS MATERIALIZED (
    SELECT 1 FROM session
    WHERE $11 OR (user_id = $10 AND NOT expired AND initialization_id IS NULL
                  AND next_expected_row_ordinal = $4 AND $2 <= planned_row_count)
), p AS (
    SELECT $4 + r.ordinal - 1 AS row_ordinal, r.table_id, r.key_bytes, r.op_code,
           r.base_bundle_seq, r.payload_apply::json AS payload_apply
    FROM unnest($5::int4[], $6::bytea[], $7::int2[], $8::int8[], $9::text[])
         WITH ORDINALITY AS r(table_id, key_bytes, op_code, base_bundle_seq, payload_apply, ordinal)
    WHERE EXISTS (SELECT 1 FROM accepted)
), staged AS (
    INSERT INTO sync.push_session_rows (push_id, row_ordinal, table_id, key_bytes, op_code,
                                        base_bundle_seq, payload_apply)
    SELECT $1, row_ordinal, table_id, key_bytes, op_code, base_bundle_seq, payload_apply FROM p
), advanced AS (
    UPDATE sync.push_sessions
    SET next_expected_row_ordinal = $2, expires_at = now() + make_interval(secs => $3)
    WHERE push_id = $1 AND EXISTS (SELECT 1 FROM accepted)
)
SELECT session.*, EXISTS (SELECT 1 FROM accepted) AS staged, {{checks}} AS checked FROM session
"""


def _payload_tables(rows: list[PreparedRow]) -> list[TableInfo]:
    """The tables whose payloads the chunk's value check casts, in table_id order (the check's
    text depends on them alone)."""
    return sorted(
        {row.table.table_id: row.table for row in rows if row.payload_apply}.values(),
        key=lambda table: table.table_id,
    )


async def _stage_small(
    conn: Connection,
    push_id: uuid.UUID,
    user_id: str,
    *,
    start_row_ordinal: int,
    rows: list[PreparedRow],
    ttl_seconds: float,
    checked: bool,
) -> asyncpg.Record | None:
    """Run `_STAGE_SMALL`: the session's row (None when there is none) and whether the rows
    were staged."""
    tables = _payload_tables(rows)
    return await conn.fetchrow(
        _STAGE_SMALL.format(checks=_value_checks(tables, "p") if tables else "0"),
        push_id,
        start_row_ordinal + len(rows),
        float(ttl_seconds),
        start_row_ordinal,
        [row.table.table_id for row in rows],
        [row.key_bytes for row in rows],
        [row.op_code for row in rows],
        [row.base_row_version for row in rows],
        [row.payload_apply for row in rows],
        user_id,
        checked,
    )


async def lock_and_stage(
    conn: Connection,
    push_id: str,
    user_id: str,
    *,
    start_row_ordinal: int,
    rows: list[PreparedRow],
    ttl_seconds: float,
) -> tuple[PushSession, int | None]:
    """`lock_session`, and for a small chunk that is sure to be accepted its staging in the
    same round trip: the session and the new `next_expected_row_ordinal` (None when the chunk
    was not staged: the caller checks the session, then calls `stage_chunk`)."""
    if len(rows) > SMALL_CHUNK_ROWS:
        return await lock_session(conn, push_id, user_id), None
    row = await _stage_small(
        conn,
        parse_push_id(push_id),
        user_id,
        start_row_ordinal=start_row_ordinal,
        rows=rows,
        ttl_seconds=ttl_seconds,
        checked=False,
    )
    session = checked_session(push_id, user_id, row)
    assert row is not None
    return session, start_row_ordinal + len(rows) if row["staged"] else None


async def stage_chunk(
    conn: Connection,
    session: PushSession,
    *,
    start_row_ordinal: int,
    rows: list[PreparedRow],
    ttl_seconds: float,
) -> int:
    """Stage one chunk of a session the caller has locked and checked, check its values
    against the column types, advance the session.

    Returns the new `next_expected_row_ordinal`.
    """
    end = start_row_ordinal + len(rows)
    if len(rows) <= SMALL_CHUNK_ROWS:
        await _stage_small(
            conn,
            session.push_id,
            session.user_id,
            start_row_ordinal=start_row_ordinal,
            rows=rows,
            ttl_seconds=ttl_seconds,
            checked=True,
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
    tables = _payload_tables(rows)
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
