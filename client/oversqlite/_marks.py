"""Re-hydration marks: managed tables whose local shape changed, to be refreshed from the server.

``open()`` records each managed table's column shape. When a shape changes (a migration, or
the app's own DDL) or a table becomes managed on a database that already syncs, the table is
marked in ``_sync_rehydrate`` with the columns it had before (``keep_columns``). The next
sync replaces the local data by a snapshot (:func:`oversqlite._snapshot.apply_staged`), keeping
pending rows; for a marked table a pending row keeps only what the app actually wrote:

* columns in ``keep_columns`` (they existed when the app made the change);
* new columns the app changed after the schema change: while a mark exists, the capture
  triggers record in ``_sync_rehydrate_rows`` the values the new columns had when the app first
  touched each key (``baseline``; NULL for a key it inserted), and a column that still holds
  its baseline value takes the server's value instead of pushing the migration's default.

A pending row the server does not have keeps everything.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping

from oversqlite._schema import ColumnInfo, TableInfo, quote_ident, table_shape
from oversqlite._triggers import install_triggers

__all__ = [
    "baseline_columns",
    "changed_since_baseline",
    "clear_marks",
    "load_marks",
    "mark",
    "note_reshaped",
    "reinstall_triggers",
    "shape_json",
]


def shape_json(shape: list[tuple[str, str]]) -> str:
    return json.dumps([list(column) for column in shape])


def load_marks(conn: sqlite3.Connection) -> dict[str, frozenset[str]]:
    """Marked tables with the columns their pending rows keep."""
    return {
        name: frozenset(json.loads(keep))
        for name, keep in conn.execute("SELECT table_name, keep_columns FROM _sync_rehydrate")
    }


def mark(conn: sqlite3.Connection, table: str, keep: Iterable[str]) -> None:
    """Mark ``table``; an existing mark keeps the columns both marks keep."""
    previous = load_marks(conn).get(table)
    columns = set(keep) if previous is None else set(keep) & previous
    conn.execute(
        "INSERT INTO _sync_rehydrate (table_name, keep_columns) VALUES (?, ?) "
        "ON CONFLICT (table_name) DO UPDATE SET keep_columns = excluded.keep_columns",
        (table, json.dumps(sorted(columns))),
    )


def clear_marks(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM _sync_rehydrate")
    conn.execute("DELETE FROM _sync_rehydrate_rows")


def note_reshaped(conn: sqlite3.Connection) -> list[str]:
    """Compare each managed table with its recorded shape; mark and re-record changed ones."""
    changed: list[str] = []
    rows = conn.execute("SELECT table_name, columns FROM _sync_managed_tables").fetchall()
    for name, stored in rows:
        shape = table_shape(conn, name)
        if shape is None:
            continue  # dropped: open() refuses or forgets it
        if stored:
            before = [tuple(column) for column in json.loads(stored)]
            if before == shape:
                continue
            mark(conn, name, {c for c, _ in before} & {c for c, _ in shape})
            changed.append(name)
        conn.execute(
            "UPDATE _sync_managed_tables SET columns = ? WHERE table_name = ?",
            (shape_json(shape), name),
        )
    return changed


def baseline_columns(
    tables: Iterable[TableInfo], marks: Mapping[str, frozenset[str]]
) -> dict[str, tuple[ColumnInfo, ...]]:
    """For each marked table, the columns added since its mark (the ones to baseline)."""
    out: dict[str, tuple[ColumnInfo, ...]] = {}
    for table in tables:
        keep = marks.get(table.name)
        if keep is None:
            continue
        added = tuple(c for c in table.columns if c.wire_name not in keep and c is not table.key)
        if added:
            out[table.name] = added
    return out


def reinstall_triggers(conn: sqlite3.Connection, tables: Iterable[TableInfo]) -> None:
    """(Re)install the capture triggers, with baseline capture for marked tables."""
    tables = list(tables)
    install_triggers(conn, tables, baseline_columns(tables, load_marks(conn)))


def changed_since_baseline(
    conn: sqlite3.Connection, table: TableInfo, pk: str, columns: tuple[ColumnInfo, ...]
) -> set[str] | None:
    """Which of ``columns`` the app changed after the schema change; None: all of them count.

    Without a baseline row the key was not touched since the change (nothing changed); a NULL
    baseline means the app inserted it afterwards (everything is the app's).
    """
    found = conn.execute(
        "SELECT baseline FROM _sync_rehydrate_rows WHERE table_name = ? AND pk = ?",
        (table.name, pk),
    ).fetchone()
    if found is None:
        return set()
    if found[0] is None:
        return None
    baseline: dict[str, str] = json.loads(found[0])
    if not columns:
        return set()
    select = ", ".join(f"quote({quote_ident(c.name)})" for c in columns)
    key = quote_ident(table.key.name)
    live = conn.execute(
        f"SELECT {select} FROM {table.sql_name} WHERE {key} = ?", (table.key_param(pk),)
    ).fetchone()
    if live is None:
        return set()
    # A column missing from the baseline was added by a later change after the first touch:
    # counted as unchanged (the server's value wins).
    return {
        c.wire_name
        for c, value in zip(columns, live, strict=True)
        if c.wire_name in baseline and baseline[c.wire_name] != value
    }
