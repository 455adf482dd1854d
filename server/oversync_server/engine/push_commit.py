"""Push commit: apply a staged session all-or-nothing as one bundle (protocol.md §6.4, server.md §4.3).

`commit_push` runs one transaction (READ COMMITTED) on a connection of `scope.user_lock`; its
BEGIN round trip takes the user lock, defers all constraints (FK order inside the bundle does
not matter) and plans joins as index probes. One statement (`_LOCK_FOR_COMMIT`) then locks the
session row and the source row, reads everything the checks below decide on, which raise in
the reference's order, and sets the session's bundle context:

1. the session: 404 unknown, 403 another user's, 410 expired;
2. the staged rows are complete, contiguous, and name each (table, key) once;
3. a seeding session re-validates and refreshes its initialization lease;
4. the source: retired -> 409 `source_retired`, moved on -> 409 `source_sequence_changed`;
5. every staged row's `base_row_version` agrees with `sync.row_state`; the first conflicting
   row in upload order aborts with 409 `push_conflict` (the body carries the live server row
   when there is one);
6. the rows are applied straight from `sync.push_session_rows` inside PostgreSQL (payloads never
   travel back to Python): one INSERT per (table, column set), one UPDATE per table (columns a
   row did not send keep their value), one DELETE per table, in order of each group's first row.
   Every (table, key) occurs once per session and FKs are deferred, so this equals applying the
   rows one by one in upload order, except that rows of one group are applied together (visible
   only to non-deferrable secondary unique constraints that rows of one push swap between them).
   The INSERT and UPDATE statements stage their rows' after-images themselves, set-based, in
   the same statement (`Staging`: in sync.bundle_capture_stage; for pushes of
   `DIRECT_STAGE_MIN_ROWS` rows or more in the temporary `ddl.DIRECT_STAGE`, ordinals from the
   stage's sequence; and for such pushes of at most `RETURNED_MAX_ROWS` rows without deletes as
   the statements' results, ordinals from the same sequence); the row triggers' WHEN condition
   skips exactly those rows (`schema.direct_apply_condition`), so they are not staged twice.
   DELETEs, the cascades they set off and rows written by other triggers go through the
   reference's capture trigger, in the order it stages them;
7. `capture.bundle_transaction` turns the captured effects (both stages: cascades and trigger
   writes included) into the bundle; no effects -> 400 `push_commit_invalid`. Returned rows
   need no coalescing when the trigger stage holds nothing of this transaction and each
   (table, key) occurs once (the usual case): they are handed to the finalizer as they are;
   otherwise they are copied into the temporary stage and coalesced with the trigger's rows;
8. the session is deleted (by the last apply statement); a seeding commit marks the scope
   INITIALIZED.

Statement budget, whatever the row count: BEGIN (user lock and settings) 1, the locked read
(and bundle context) 1, direct stage setup 1 (pushes staged in the temporary stage), lease 2
(seeding only), the server row 1 (on a conflict only), G apply statements, finalize 2 (up to
`capture.FINALIZE_BATCH_ROWS` rows), scope transition 1 (seeding only), COMMIT 1: 5 + G in all
(8 + G when seeding), where G <= 3 x tables touched (plus one per extra INSERT column set of a
table). Returned rows cost one more (the trigger stage check; +2 when they go to the temporary
stage after all).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from typing import Any

import asyncpg

from oversync_server.config import ServiceConfig
from oversync_server.engine import push_sessions, sources
from oversync_server.engine import scope as scopes
from oversync_server.engine.capture import (
    OP_DELETE,
    OP_INSERT,
    OP_NAMES,
    OP_UPDATE,
    CoalescedRow,
    CommittedBundle,
    bundle_transaction,
    context_columns,
)
from oversync_server.engine.catalog import (
    SCOPE_COLUMN,
    Catalog,
    KeyKind,
    PerTable,
    TableInfo,
    quote_ident,
    quote_literal,
)
from oversync_server.engine.connection import transaction_with
from oversync_server.engine.db import Connection
from oversync_server.engine.ddl import (
    CAPTURE_DIRECT_GUC,
    DIRECT_STAGE,
    DIRECT_STAGE_DDL,
    STAGE_ORDINAL_SQL,
)
from oversync_server.engine.errors import SyncError
from oversync_server.engine.push_sessions import PushSession
from oversync_server.engine.values import key_from_bytes, wire_key, wire_payload_from_db_text

_FIRST_GAP = """
SELECT min(o) FROM generate_series(0, $2::bigint - 1) AS o
WHERE NOT EXISTS (SELECT 1 FROM sync.push_session_rows WHERE push_id = $1 AND row_ordinal = o)
"""

# The staged rows' apply groups: (table, op, column set) in order of each group's first row.
# A row's column set is its payload's keys in document order (canonical payloads sort them, so
# one set is one array; were a session staged with keys in another order, its rows would only
# form more groups): not sorting them spares a sort per row. `_staged_filter` uses the same.
_GROUPS = """
SELECT table_id, op_code, columns, min(row_ordinal) AS first_ordinal
FROM (
    SELECT table_id, op_code, row_ordinal,
           CASE WHEN op_code = 3 THEN NULL::text[]
                ELSE ARRAY(SELECT json_object_keys(payload_apply)) END AS columns
    FROM sync.push_session_rows WHERE push_id = ps.push_id
) staged
GROUP BY table_id, op_code, columns
"""

# The first staged row whose base_row_version disagrees with row_state (server.md §4.3 table).
# The row_state look-up is a LATERAL probe of its primary key per staged row, so the plan stays
# O(rows log n) even before the planner has statistics for a freshly filled row_state.
_FIRST_CONFLICT = """
SELECT p.row_ordinal, p.table_id, p.key_bytes, p.op_code, p.base_bundle_seq,
       rs.bundle_seq AS state_seq, rs.deleted AS state_deleted
FROM sync.push_session_rows p
LEFT JOIN LATERAL (
    SELECT s.bundle_seq, s.deleted FROM sync.row_state s
    WHERE s.user_pk = ps.user_pk AND s.table_id = p.table_id AND s.key_bytes = p.key_bytes
    LIMIT 1  -- keeps the subquery from being flattened into a join
) rs ON TRUE
WHERE p.push_id = ps.push_id AND NOT COALESCE(
    CASE WHEN p.op_code = 1 THEN
             (rs.bundle_seq IS NULL AND p.base_bundle_seq = 0)
             OR (rs.bundle_seq IS NOT NULL AND rs.deleted AND p.base_bundle_seq = rs.bundle_seq)
         ELSE rs.bundle_seq IS NOT NULL AND NOT rs.deleted AND p.base_bundle_seq = rs.bundle_seq
    END, FALSE)
ORDER BY p.row_ordinal
LIMIT 1
"""

# The session's bundle context, set by `_LOCK_FOR_COMMIT` when it is the caller's session (any
# check failing later rolls it back with the transaction).
_CONTEXT = context_columns(
    (
        "us.user_id",
        "ps.user_pk::text",
        "ps.source_id",
        "ps.source_bundle_id::text",
        "COALESCE(ps.initialization_id::text, '')",
    ),
    "us.user_id = $2",
)

# Everything the commit decides on, in one round trip ($1 push_id, $2 the caller's user id):
# the session row (locked), the staged rows' count, last ordinal, first duplicate target and
# apply groups, the source row (locked), and the first conflicting row. Only the caller's own
# session gets its source locked and its rows checked; the caller raises in the reference's
# order (session, staged rows, lease, source, conflict).
_LOCK_FOR_COMMIT = f"""
SELECT ps.push_id, ps.user_pk, us.user_id, ps.source_id, ps.source_bundle_id,
       ps.planned_row_count, ps.next_expected_row_ordinal, ps.initialization_id,
       ps.expires_at < clock_timestamp() AS expired,
       st.staged, st.last_ordinal,
       (SELECT ARRAY[d.table_id::text, encode(d.key_bytes, 'hex')]
        FROM sync.push_session_rows d WHERE d.push_id = ps.push_id AND us.user_id = $2
        GROUP BY d.table_id, d.key_bytes HAVING count(*) > 1
        ORDER BY min(d.row_ordinal) LIMIT 1) AS duplicate,
       (SELECT json_agg(json_build_array(g.table_id, g.op_code, g.columns, g.first_ordinal)
                        ORDER BY g.first_ordinal)::text
        FROM ({_GROUPS}) AS g WHERE us.user_id = $2) AS groups,
       src.state AS source_state, src.max_committed_source_bundle_id,
       src.replaced_by_source_id,
       c.row_ordinal AS conflict_ordinal, c.table_id AS conflict_table_id,
       c.key_bytes AS conflict_key, c.op_code AS conflict_op,
       c.base_bundle_seq AS conflict_base, c.state_seq AS conflict_state_seq,
       c.state_deleted AS conflict_state_deleted,
       {_CONTEXT}
FROM sync.push_sessions ps
JOIN sync.user_state us ON us.user_pk = ps.user_pk
CROSS JOIN LATERAL (
    SELECT count(*) AS staged, COALESCE(max(row_ordinal), -1) AS last_ordinal
    FROM sync.push_session_rows WHERE push_id = ps.push_id AND us.user_id = $2
) st
LEFT JOIN LATERAL (
    SELECT s.state, s.max_committed_source_bundle_id, s.replaced_by_source_id
    FROM sync.source_state s
    WHERE s.user_pk = ps.user_pk AND s.source_id = ps.source_id AND us.user_id = $2
    FOR UPDATE
) src ON TRUE
LEFT JOIN LATERAL ({_FIRST_CONFLICT}) c ON us.user_id = $2
WHERE ps.push_id = $1
FOR UPDATE OF ps
"""

# Deferred constraints (FK order inside a bundle does not matter), and a planner restricted to
# nested loops: UPDATE and DELETE join the staged rows with the business table, and without
# statistics (a fresh table) the planner may otherwise scan all of the user's rows once per
# staged row; nested loops over index probes are O(rows log n) whatever the statistics. Both are
# transaction-local; the statements that follow in this transaction are index look-ups or
# set-based inserts that these settings do not slow down.
_TRANSACTION_SETTINGS = (
    "SET CONSTRAINTS ALL DEFERRED; SET LOCAL enable_hashjoin = off;"
    " SET LOCAL enable_mergejoin = off; SET LOCAL enable_material = off;"
)
# ... and for a push that stages its rows in the temporary direct stage (no notice when it
# exists already).
_DIRECT_STAGE_SETUP = "SET LOCAL client_min_messages = warning;" + DIRECT_STAGE_DDL

# Pushes of at least this many rows stage their applied rows in the temporary direct stage
# (`ddl.DIRECT_STAGE`: no WAL, foreign keys or indexes, a fraction of the cost per row); smaller
# ones in sync.bundle_capture_stage itself, which spares them the temporary table's truncation
# at commit (a fixed cost of a few hundred microseconds).
DIRECT_STAGE_MIN_ROWS = 100
# ... and pushes of up to this many rows without deletes have them returned instead
# (`Staging.RETURNED`): the rows go from the apply statements to the finalizer in this process's
# memory (the push's size bounds it), sparing the stage writes and the coalescing query.
RETURNED_MAX_ROWS = 10_000
_DIRECT_STAGE_COLUMNS = ("capture_ordinal", "table_id", "op_code", "key_bytes", "payload_db")


def commit_invalid(message: str) -> SyncError:
    return SyncError("push_commit_invalid", message)


@dataclass(slots=True)
class _Group:
    table: TableInfo
    op_code: int
    column_sets: list[tuple[str, ...]]
    first_ordinal: int
    # INSERT: the table has other INSERT groups (other column sets) in this session, so this
    # group's statement must select only the staged rows that sent exactly its columns.
    shares_table: bool = False


def _key_sql(table: TableInfo, source: str) -> str:
    """SQL of the sync key value of a staged row's `key_bytes` (for joins with the table)."""
    if table.key_kind is KeyKind.UUID:
        return f"encode({source}, 'hex')::uuid"
    return f"convert_from({source}, 'UTF8')"


def _staged_filter(group: _Group) -> str:
    where = (
        f"p.push_id = $1 AND p.table_id = {group.table.table_id} AND p.op_code = {group.op_code}"
    )
    if group.shares_table:
        keys = "ARRAY[" + ", ".join(quote_literal(c) for c in group.column_sets[0]) + "]::text[]"
        where += f" AND ARRAY(SELECT json_object_keys(p.payload_apply)) = {keys}"
    return where


SCOPE_SQL = quote_ident(SCOPE_COLUMN)


def _key_bytes_sql(table: TableInfo, row: str) -> str:
    """SQL of the `key_bytes` of a business row's sync key (what the capture trigger stages)."""
    key = f"{row}.{quote_ident(table.key_column)}"
    if table.key_kind is KeyKind.UUID:
        return f"uuid_send({key})"
    return f"convert_to({key}, 'UTF8')"


class Staging(Enum):
    """Where the push commit's INSERT and UPDATE statements put their rows' after-images."""

    SHARED = "shared"  # sync.bundle_capture_stage ($3 the user_pk): small pushes
    TEMPORARY = "temporary"  # the temporary direct stage (`ddl.DIRECT_STAGE`)
    RETURNED = "returned"  # returned to the caller, in the direct stage's row layout


def _stage_insert(staging: Staging) -> str:
    """The head of a statement staging applied rows; its SELECT list continues with table_id,
    op_code, key_bytes, payload_db. In sync.bundle_capture_stage ($3 the user_pk), in the
    temporary direct stage or as the statement's result (ordinals from the stage's sequence)."""
    if staging is Staging.TEMPORARY:
        return (
            f"INSERT INTO {DIRECT_STAGE} (capture_ordinal, table_id, op_code, key_bytes,"
            f" payload_db) SELECT {STAGE_ORDINAL_SQL},"
        )
    if staging is Staging.RETURNED:
        return f"SELECT {STAGE_ORDINAL_SQL},"
    return (
        "INSERT INTO sync.bundle_capture_stage"
        " (txid, user_pk, table_id, op_code, key_bytes, payload_db)"
        " SELECT txid_current(), $3::bigint,"
    )


# Parameters of every apply statement: $1 push_id, $2 user_id (and $3 user_pk when INSERT and
# UPDATE stage in sync.bundle_capture_stage).


def _direct(value: str) -> str:
    """A condition evaluated once, before the statement writes its first row (an InitPlan),
    setting `CAPTURE_DIRECT_GUC` (the row triggers' WHEN condition, `schema.trigger_ddl`) to
    `value`: a table id while an INSERT or UPDATE stages its own rows, '' for a DELETE."""
    return f"(SELECT set_config('{CAPTURE_DIRECT_GUC}', '{value}', true)) IS NOT NULL"


def _insert_sql(group: _Group, staging: Staging) -> str:
    """One INSERT of the staged rows that sent exactly this group's columns (the others take
    their column defaults), staging each inserted row's after-image in insertion order."""
    table = group.table
    columns = group.column_sets[0]
    names = ", ".join(quote_ident(c) for c in columns)
    values = ", ".join(f"r.{quote_ident(c)}" for c in columns)
    return (
        f"WITH applied AS (INSERT INTO {table.sql_name} ({SCOPE_SQL}, {names})"
        f" SELECT $2, {values}"
        f" FROM sync.push_session_rows p,"
        f" jsonb_populate_record(NULL::{table.sql_name}, p.payload_apply::jsonb) AS r"
        f" WHERE {_staged_filter(group)} AND {_direct(str(table.table_id))}"
        f" ORDER BY p.row_ordinal RETURNING {table.sql_name}.*)"
        f" {_stage_insert(staging)} {table.table_id}, 1,"
        f" {_key_bytes_sql(table, 'a')}, to_jsonb(a) - '{SCOPE_COLUMN}' FROM applied AS a"
    )


def _update_sql(group: _Group, staging: Staging) -> str:
    """One UPDATE of the group's rows (columns a row did not send keep their value), staging
    each updated row's after-image in update order; a row whose key a trigger changed is
    staged as the delete of the old key and the insert of the new one, as the capture trigger
    does."""
    table = group.table
    every = set(group.column_sets[0]).intersection(*group.column_sets[1:])
    assignments = []
    for column in sorted(set().union(*group.column_sets) - {table.key_column}):
        name = quote_ident(column)
        if column in every:
            assignments.append(f"{name} = src.{name}")
        else:  # partial update: a row that did not send the column keeps its value
            assignments.append(
                f"{name} = CASE WHEN src.__oversync_doc ? {quote_literal(column)}"
                f" THEN src.{name} ELSE dst.{name} END"
            )
    if not assignments:  # a payload with only the key: touch the row so it is captured
        key = quote_ident(table.key_column)
        assignments.append(f"{key} = dst.{key}")
    key = quote_ident(table.key_column)
    new_key = _key_bytes_sql(table, "a")
    return (
        f"WITH applied AS (UPDATE {table.sql_name} AS dst SET {', '.join(assignments)}"
        f" FROM (SELECT p.row_ordinal, p.key_bytes AS __oversync_key,"
        f" p.payload_apply::jsonb AS __oversync_doc, r.*"
        f" FROM sync.push_session_rows p,"
        f" jsonb_populate_record(NULL::{table.sql_name}, p.payload_apply::jsonb) AS r"
        f" WHERE {_staged_filter(group)} AND {_direct(str(table.table_id))} OFFSET 0) AS src"
        f" WHERE dst._sync_scope_id = $2 AND dst.{key} = src.{key}"
        f" RETURNING dst.*, src.__oversync_key)"
        f" {_stage_insert(staging)} {table.table_id},"
        f" CASE WHEN s.part = 1 THEN 3 WHEN a.__oversync_key = {new_key} THEN 2 ELSE 1 END,"
        f" CASE WHEN s.part = 1 THEN a.__oversync_key ELSE {new_key} END,"
        f" CASE WHEN s.part = 1 THEN NULL"
        f" ELSE to_jsonb(a) - '{SCOPE_COLUMN}' - '__oversync_key' END"
        f" FROM applied AS a CROSS JOIN LATERAL (VALUES (1), (2)) AS s(part)"
        f" WHERE s.part = 2 OR a.__oversync_key <> {new_key}"
    )


def _delete_sql(group: _Group, staging: Staging) -> str:
    """One DELETE of the group's rows ($1 push_id, $2 user_id), captured by the row trigger like
    the cascades it sets off, which keeps their order."""
    table = group.table
    return (
        f"DELETE FROM {table.sql_name} AS dst USING sync.push_session_rows p"
        f" WHERE {_staged_filter(group)} AND dst._sync_scope_id = $2"
        f" AND dst.{quote_ident(table.key_column)} = {_key_sql(table, 'p.key_bytes')}"
        f" AND {_direct('')}"
    )


_APPLY_SQL = {OP_INSERT: _insert_sql, OP_UPDATE: _update_sql, OP_DELETE: _delete_sql}

# The apply statements already built, by table and group shape (the text depends on them
# alone). Most pushes repeat a few shapes.
_APPLY_TEXTS: PerTable[str] = PerTable(limit=512)


def _apply_sql(group: _Group, staging: Staging, *, last: bool) -> str:
    """The apply statement of `group`; the `last` one also deletes the session."""

    def build() -> str:
        sql = _APPLY_SQL[group.op_code](group, staging)
        return _deleting_session(sql) if last else sql

    shape = (group.op_code, tuple(group.column_sets), group.shares_table, staging, last)
    return _APPLY_TEXTS.get(group.table, shape, build)


async def _check_staged(
    conn: Connection, catalog: Catalog, session: PushSession, row: asyncpg.Record
) -> None:
    planned = session.planned_row_count
    if session.next_expected_row_ordinal != planned or row["staged"] != planned:
        raise commit_invalid(
            f"staged row count {row['staged']} does not match planned_row_count {planned}"
        )
    if row["last_ordinal"] != planned - 1:
        gap = await conn.fetchval(_FIRST_GAP, session.push_id, planned)
        raise commit_invalid(f"staged rows are not contiguous at row_ordinal {gap}")
    if row["duplicate"] is not None:
        table_id, key_hex = row["duplicate"]
        table = catalog.by_id(int(table_id))
        key = key_from_bytes(table.key_kind, bytes.fromhex(key_hex))
        raise commit_invalid(
            f"duplicate target row in staged push session: {table.qualified_name} {key}"
        )


def _groups(catalog: Catalog, text: str | None) -> list[_Group]:
    """The apply statements' groups of `_LOCK_FOR_COMMIT`'s `groups` (in first-row order)."""
    groups: dict[tuple[int, int, tuple[str, ...] | None], _Group] = {}
    for table_id, op, names, first_ordinal in json.loads(text) if text else ():
        columns = tuple(names) if names is not None else ()
        # INSERT: one statement per column set (absent columns take their defaults);
        # UPDATE and DELETE: one statement per table.
        key = (table_id, op, columns if op == OP_INSERT else None)
        group = groups.get(key)
        if group is None:
            groups[key] = _Group(catalog.by_id(table_id), op, [columns], first_ordinal)
        else:
            group.column_sets.append(columns)
            group.first_ordinal = min(group.first_ordinal, first_ordinal)
    insert_groups_per_table: dict[int, int] = {}
    for group in groups.values():
        if group.op_code == OP_INSERT:
            table_id = group.table.table_id
            insert_groups_per_table[table_id] = insert_groups_per_table.get(table_id, 0) + 1
    for group in groups.values():
        group.shares_table = (
            group.op_code == OP_INSERT and insert_groups_per_table[group.table.table_id] > 1
        )
    return sorted(groups.values(), key=lambda g: g.first_ordinal)


def _source_state(session: PushSession, row: asyncpg.Record) -> sources.SourceState:
    if row["source_state"] is None:
        return sources.SourceState(session.source_id, None)
    return sources.SourceState(
        session.source_id,
        row["source_state"],
        row["max_committed_source_bundle_id"],
        row["replaced_by_source_id"],
    )


async def _raise_first_conflict(
    conn: Connection, catalog: Catalog, session: PushSession, row: asyncpg.Record
) -> None:
    if row["conflict_ordinal"] is None:
        return
    table = catalog.by_id(row["conflict_table_id"])
    key_bytes = bytes(row["conflict_key"])
    key_text = key_from_bytes(table.key_kind, key_bytes)
    op = OP_NAMES[row["conflict_op"]]
    base = row["conflict_base"]
    state_seq, deleted = row["conflict_state_seq"], row["conflict_state_deleted"]
    where = f"{op.lower()} conflict on {table.qualified_name} {key_text}"
    if op == "INSERT":
        if state_seq is None:
            detail = f"expected missing row at version 0, got {base}"
        elif base != state_seq:
            detail = f"expected base_row_version {state_seq}, got {base}"
        else:
            detail = f"row already exists at version {state_seq}"
    elif state_seq is None or deleted:
        detail = "row does not exist"
    else:
        detail = f"expected version {state_seq}, got {base}"
    server_row = None
    if state_seq is not None and not deleted:
        text = await conn.fetchval(
            f"SELECT (to_jsonb(src) - '_sync_scope_id')::text FROM {table.sql_name} AS src"
            f" WHERE src.{quote_ident(table.key_column)} = $1::{table.key_sql_type}"
            " AND src._sync_scope_id = $2",
            key_text,
            session.user_id,
        )
        server_row = None if text is None else wire_payload_from_db_text(table, text)
    raise SyncError(
        "push_conflict",
        f"{where}: {detail}",
        conflict={
            "schema": table.schema,
            "table": table.table,
            "key": wire_key(table, key_bytes),
            "op": op,
            "base_row_version": base,
            "server_row_version": state_seq or 0,
            "server_row_deleted": bool(deleted),
            "server_row": server_row,
        },
    )


def _staging(planned_rows: int, groups: list[_Group]) -> Staging:
    if planned_rows < DIRECT_STAGE_MIN_ROWS:
        return Staging.SHARED
    if planned_rows <= RETURNED_MAX_ROWS and all(g.op_code != OP_DELETE for g in groups):
        return Staging.RETURNED
    return Staging.TEMPORARY


_TRIGGER_STAGED = """
SELECT EXISTS (SELECT 1 FROM sync.bundle_capture_stage
               WHERE txid = txid_current() AND user_pk = $1)
"""


async def _coalesced(
    conn: Connection, user_pk: int, returned: list[Any]
) -> list[CoalescedRow] | None:
    """The bundle's rows from the apply statements' results (`Staging.RETURNED`), when they are
    all of them and each (table, key) occurs once: then coalescing changes nothing and the
    bundle order is the capture order. Otherwise (a host trigger or a cascade staged rows, or a
    trigger moved a key onto another staged row's) the rows go to the temporary direct stage and
    the finalizer coalesces both stages in SQL, as for a larger push; None."""
    returned.sort(key=lambda row: row[0])
    keys = {(row[1], row[3]) for row in returned}
    if len(keys) == len(returned) and not await conn.fetchval(_TRIGGER_STAGED, user_pk):
        total = len(returned)
        return [(row[1], row[3], row[2], row[4], total) for row in returned]
    await conn.execute("SET LOCAL client_min_messages = warning;" + DIRECT_STAGE_DDL)
    await conn.copy_records_to_table(
        DIRECT_STAGE.removeprefix("pg_temp."),
        schema_name="pg_temp",
        columns=_DIRECT_STAGE_COLUMNS,
        records=[tuple(row) for row in returned],
    )
    return None


# The last apply statement also deletes the session (its staged rows go with it, ON DELETE
# CASCADE, at the end of the statement, which has read them already): one round trip less.
_DELETE_SESSION_CTE = "gone AS (DELETE FROM sync.push_sessions WHERE push_id = $1)"


def _deleting_session(sql: str) -> str:
    if sql.startswith("WITH "):
        return f"WITH {_DELETE_SESSION_CTE}, {sql[5:]}"
    return f"WITH {_DELETE_SESSION_CTE} {sql}"


async def commit_push(
    conn: Connection, catalog: Catalog, config: ServiceConfig, *, push_id: str, user_id: str
) -> CommittedBundle:
    """Lock, check, apply and commit the caller's session in one transaction on `conn` (see
    the module docstring); the committed bundle, once the transaction has committed."""
    parsed = push_sessions.parse_push_id(push_id)
    async with transaction_with(conn, _TRANSACTION_SETTINGS):
        row = await conn.fetchrow(_LOCK_FOR_COMMIT, parsed, user_id)
        session = push_sessions.checked_session(push_id, user_id, row)
        assert row is not None
        bundle = await _commit_locked(conn, catalog, config, session, row)
    # the transaction committed here: deferred FK checks have passed
    return bundle


async def _commit_locked(
    conn: Connection,
    catalog: Catalog,
    config: ServiceConfig,
    session: PushSession,
    row: asyncpg.Record,
) -> CommittedBundle:
    await _check_staged(conn, catalog, session, row)
    groups = _groups(catalog, row["groups"])
    staging = _staging(session.planned_row_count, groups)
    temporary = staging is not Staging.SHARED
    if staging is Staging.TEMPORARY:
        await conn.execute(_DIRECT_STAGE_SETUP)
    if session.initialization_id is not None:
        await scopes.require_active_lease(
            conn,
            session.user_id,
            source_id=session.source_id,
            initialization_id=session.initialization_id,
            lease_ttl=timedelta(seconds=config.initialization_lease_ttl_seconds),
        )
    state = _source_state(session, row)
    if state.retired:
        raise sources.source_retired(
            user_id=session.user_id,
            source_id=session.source_id,
            replaced_by_source_id=state.replaced_by_source_id,
        )
    if state.expected_next != session.source_bundle_id:
        raise sources.source_sequence_changed(
            user_id=session.user_id,
            source_id=session.source_id,
            staged=session.source_bundle_id,
            expected=state.expected_next,
        )
    async with bundle_transaction(
        conn,
        catalog,
        config,
        user_id=session.user_id,
        user_pk=session.user_pk,
        source_id=session.source_id,
        source_bundle_id=session.source_bundle_id,
        initialization_id=str(session.initialization_id) if session.initialization_id else None,
        direct=temporary,
        context_set=True,  # by _LOCK_FOR_COMMIT
    ) as capture:
        await _raise_first_conflict(conn, catalog, session, row)
        returned: list[Any] = []
        for number, group in enumerate(groups, start=1):
            args = [session.push_id, session.user_id]
            if staging is Staging.SHARED and group.op_code != OP_DELETE:
                args.append(session.user_pk)
            sql = _apply_sql(group, staging, last=number == len(groups))
            if staging is Staging.RETURNED:
                returned += await conn.fetch(sql, *args)
            else:
                await conn.execute(sql, *args)
        if staging is Staging.RETURNED:
            capture.coalesced = await _coalesced(conn, session.user_pk, returned)
    bundle = capture.bundle
    if bundle is None:
        raise commit_invalid("push session produced no captured business-table effects")
    if session.initialization_id is not None:
        await scopes.mark_initialized(conn, session.user_pk, source_id=session.source_id)
    return bundle
