"""Authoritative writes into business tables and the row-state bookkeeping that goes with them.

Every caller runs inside :func:`oversqlite._store.apply_transaction` (FKs deferred, capture
muted). Rows are upserted (``INSERT ... ON CONFLICT DO UPDATE``), never REPLACEd, so children
are not cascaded away when a parent is rewritten.

Server payloads are fitted to the local table first (:func:`fit_payload`): columns the local
table lacks are dropped (the server added them; this app does not know them yet) and local
columns the server did not send are left alone (an existing row keeps its value, a new row
takes the column default). Verification (row counts, ``bundle_hash``) always happens before.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oversqlite._codec import columns_from_wire, key_from_wire, row_to_wire
from oversqlite._drift import SchemaDrift
from oversqlite._errors import LocalStoreError, ProtocolError
from oversqlite._schema import TableInfo

__all__ = [
    "ServerRow",
    "apply_server_row",
    "delete_local",
    "fit_payload",
    "forget_row_state",
    "live_payload",
    "parse_server_row",
    "row_state",
    "set_row_state",
    "write_local",
]

_OPS = frozenset({"INSERT", "UPDATE", "DELETE"})


@dataclass(frozen=True)
class ServerRow:
    """A validated row from the server (bundle, committed bundle or snapshot)."""

    table: TableInfo
    pk: str
    op: str
    row_version: int
    payload: Mapping[str, Any] | None


def fit_payload(
    table: TableInfo, payload: Mapping[str, Any], drift: SchemaDrift | None = None
) -> dict[str, Any]:
    """``payload`` restricted to the local table's columns (reported to ``drift`` once)."""
    local = table.wire_columns
    fitted = {name: value for name, value in payload.items() if name in local}
    if drift is not None:
        if len(fitted) != len(payload):
            drift.server_only_columns(table.name, set(payload) - local)
        if len(fitted) != len(local):
            drift.local_only_columns(table.name, local - set(fitted))
    return fitted


def parse_server_row(
    tables: Mapping[str, TableInfo],
    schema: str,
    *,
    row_schema: object,
    table: object,
    key: object,
    op: object,
    row_version: object,
    payload: object,
    drift: SchemaDrift | None = None,
) -> ServerRow | None:
    """Validate one server row; ``None`` for a table this client does not manage.

    The payload is fitted to the local table (:func:`fit_payload`). Raises
    :class:`ProtocolError` for anything malformed.
    """
    if row_schema != schema:
        raise ProtocolError(f"server row has schema {row_schema!r}, expected {schema!r}")
    if not isinstance(table, str) or not table:
        raise ProtocolError(f"server row has no table name: {table!r}")
    info = tables.get(table)
    if info is None:
        if drift is not None:
            drift.unmanaged_table(schema, table)
        return None
    if op not in _OPS:
        raise ProtocolError(f"server row for {table} has invalid op {op!r}")
    if not isinstance(row_version, int) or isinstance(row_version, bool) or row_version <= 0:
        raise ProtocolError(f"server row for {table} has invalid row_version {row_version!r}")
    if not isinstance(key, Mapping):
        raise ProtocolError(f"server row for {table} has no key object")
    try:
        pk = key_from_wire(info, key)
    except ValueError as exc:
        raise ProtocolError(f"server row key: {exc}") from None
    if op == "DELETE":
        payload = None
    elif not isinstance(payload, Mapping):
        raise ProtocolError(f"server {op} row for {table} carries no payload object")
    else:
        payload = fit_payload(info, payload, drift)
    return ServerRow(info, pk, str(op), row_version, payload)


def row_state(conn: sqlite3.Connection, table: str, pk: str) -> tuple[int, bool] | None:
    row = conn.execute(
        "SELECT row_version, deleted FROM _sync_row_state WHERE table_name = ? AND pk = ?",
        (table, pk),
    ).fetchone()
    return None if row is None else (int(row[0]), bool(row[1]))


def set_row_state(
    conn: sqlite3.Connection, table: str, pk: str, version: int, deleted: bool
) -> None:
    conn.execute(
        "INSERT INTO _sync_row_state (table_name, pk, row_version, deleted) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (table_name, pk) DO UPDATE SET row_version = excluded.row_version, "
        "deleted = excluded.deleted",
        (table, pk, version, int(deleted)),
    )


def forget_row_state(conn: sqlite3.Connection, table: str, pk: str) -> None:
    conn.execute("DELETE FROM _sync_row_state WHERE table_name = ? AND pk = ?", (table, pk))


def live_payload(conn: sqlite3.Connection, table: TableInfo, pk: str) -> dict[str, Any] | None:
    """The current local row as a wire payload, or ``None`` when there is no such row."""
    row = conn.execute(table.select_sql, (table.key_param(pk),)).fetchone()
    return None if row is None else row_to_wire(table, tuple(row), pk)


def write_local(
    conn: sqlite3.Connection, table: TableInfo, pk: str, payload: Mapping[str, Any]
) -> None:
    """Upsert a wire payload (the key and any of the local columns; the others are left alone).

    Raises ValueError when it does not fit the local table (unknown columns, bad values).
    """
    columns, params = columns_from_wire(table, payload, pk)
    conn.execute(table.upsert_sql_for(columns), params)


def delete_local(conn: sqlite3.Connection, table: TableInfo, pk: str) -> None:
    conn.execute(table.delete_sql, (table.key_param(pk),))


def apply_server_row(conn: sqlite3.Connection, row: ServerRow) -> None:
    """Write a server row into the business table and record its row state."""
    if row.payload is None:
        delete_local(conn, row.table, row.pk)
    else:
        try:
            write_local(conn, row.table, row.pk, row.payload)
        except ValueError as exc:
            raise ProtocolError(f"server row does not fit the local schema: {exc}") from None
        except sqlite3.IntegrityError as exc:
            unset = sorted(row.table.wire_columns - set(row.payload))
            if not unset or "NOT NULL" not in str(exc):
                raise
            raise LocalStoreError(
                f"a server row of {row.table.name} leaves local-only column(s) {unset} unset "
                f"({exc}); give them a DEFAULT locally, or add them on the server"
            ) from exc
    set_row_state(conn, row.table.name, row.pk, row.row_version, row.payload is None)


def dumps(payload: Mapping[str, Any] | None) -> str | None:
    """Store a wire payload as JSON text (exact for ints and floats)."""
    if payload is None:
        return None
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
