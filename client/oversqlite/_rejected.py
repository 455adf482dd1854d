"""Rejected changes: rows the server refused for good, moved out of the way of later changes.

A push the server refuses because of a row it cannot store (``push_commit_invalid``: a foreign
key, NOT NULL, CHECK or type error; ``push_chunk_invalid``: an invalid value) names no row, so
the push isolates it (``_push``): the frozen bundle is split in halves until the failing bundle
has one row; that row is moved from the outbox into ``_sync_rejected_changes`` with the server's
error, and the rest is pushed as usual. The row itself stays in the local table as the app wrote
it. The app then either

* fixes the data and calls :func:`retry` (the key is pending again, with its old base, so a
  concurrent server change still raises a conflict), or
* calls :func:`discard`: the local row goes back to the server's state (a key the server never
  had is deleted locally; a key it has is re-hydrated from a snapshot at the next sync).

A later local edit of a rejected key is an ordinary pending change (the entry stays listed until
it is retried or discarded); a pull or snapshot that changes a rejected key overwrites the
local row with the server's, while the entry keeps the payload that was refused.
"""

from __future__ import annotations

import json
import sqlite3
import time
from typing import Any

from oversqlite import _marks
from oversqlite._apply import delete_local, row_state
from oversqlite._codec import key_to_wire
from oversqlite._errors import ServerRejectedError, UsageError
from oversqlite._outbox import OutboxRow
from oversqlite._results import RejectedChange
from oversqlite._schema import TableInfo
from oversqlite._store import apply_transaction, atomic

__all__ = [
    "ROW_REJECTION_CODES",
    "RejectedChange",
    "discard",
    "list_rejected",
    "reject",
    "rejected_count",
    "retry",
]

# Error codes of a push the server refuses because of the rows' contents.
ROW_REJECTION_CODES = frozenset({"push_commit_invalid", "push_chunk_invalid"})


def reject(
    conn: sqlite3.Connection, table: TableInfo, row: OutboxRow, exc: ServerRejectedError
) -> RejectedChange:
    """Record ``row`` (the one row of a refused bundle) as rejected; the caller clears the outbox.

    A key rejected again (a retry the server still refuses) keeps one entry, updated.
    """
    now = time.time()
    key = key_to_wire(table, row.pk)
    payload = None if row.payload is None else json.dumps(row.payload, sort_keys=True)
    conn.execute(
        "INSERT INTO _sync_rejected_changes (table_name, pk, wire_key, op, base_row_version, "
        "payload, code, message, rejected_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (table_name, pk) DO UPDATE SET op = excluded.op, "
        "base_row_version = excluded.base_row_version, payload = excluded.payload, "
        "code = excluded.code, message = excluded.message, rejected_at = excluded.rejected_at",
        (
            row.table,
            row.pk,
            key,
            row.op,
            row.base_row_version,
            payload,
            exc.code,
            exc.server_message,
            now,
        ),
    )
    found = _load(conn, "table_name = ? AND pk = ?", (row.table, row.pk))
    assert found
    return found[0]


_COLUMNS = "id, table_name, wire_key, op, payload, code, message, rejected_at"


def _load(conn: sqlite3.Connection, where: str, params: tuple[Any, ...]) -> list[RejectedChange]:
    return [
        RejectedChange(id_, table, key, op, None if p is None else json.loads(p), code, msg, at)
        for id_, table, key, op, p, code, msg, at in conn.execute(
            f"SELECT {_COLUMNS} FROM _sync_rejected_changes WHERE {where} ORDER BY id", params
        )
    ]


def list_rejected(conn: sqlite3.Connection) -> list[RejectedChange]:
    return _load(conn, "1", ())


def rejected_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM _sync_rejected_changes").fetchone()[0])


def _take(conn: sqlite3.Connection, change_id: int, operation: str) -> tuple[str, str, int]:
    found = conn.execute(
        "SELECT table_name, pk, base_row_version FROM _sync_rejected_changes WHERE id = ?",
        (change_id,),
    ).fetchone()
    if found is None:
        raise UsageError(
            f"{operation}({change_id}): no rejected change has this id (see rejected_changes())"
        )
    conn.execute("DELETE FROM _sync_rejected_changes WHERE id = ?", (change_id,))
    return str(found[0]), str(found[1]), int(found[2])


def retry(conn: sqlite3.Connection, change_id: int) -> None:
    """Make the rejected key pending again; its live row is pushed at the next push."""
    with atomic(conn):
        table, pk, base = _take(conn, change_id, "retry_rejected")
        conn.execute(
            "INSERT INTO _sync_dirty_rows (table_name, pk, base_row_version, dirty_ordinal) "
            "VALUES (?, ?, ?, (SELECT COALESCE(MAX(dirty_ordinal), 0) + 1 FROM _sync_dirty_rows)) "
            "ON CONFLICT (table_name, pk) DO NOTHING",
            (table, pk, base),
        )


def discard(conn: sqlite3.Connection, tables: dict[str, TableInfo], change_id: int) -> bool:
    """Drop the rejected change and put the local row back to the server's state.

    Returns True when the restore needs the server (a snapshot at the next sync: the table is
    marked for re-hydration), False when it was done locally. A key edited again since the
    rejection is pending and keeps that newer edit.
    """
    with apply_transaction(conn):
        table_name, pk, _ = _take(conn, change_id, "discard_rejected")
        pending = conn.execute(
            "SELECT 1 FROM _sync_dirty_rows WHERE table_name = ? AND pk = ? UNION ALL "
            "SELECT 1 FROM _sync_outbox_rows WHERE table_name = ? AND pk = ?",
            (table_name, pk, table_name, pk),
        ).fetchone()
        table = tables.get(table_name)
        if pending or table is None:
            return False
        state = row_state(conn, table_name, pk)
        if state is None or state[1]:  # the server never had it, or deleted it
            delete_local(conn, table, pk)
            return False
        _marks.mark(conn, table_name, table.wire_columns)
        return True
