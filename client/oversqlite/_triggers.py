"""Capture and guard triggers on the managed tables.

Capture (AFTER, muted while ``apply_mode = 1``) records only *which* keys changed, as cheaply
as it can: one append to ``_sync_capture_log`` per key written (a touch, or a delete intent for
a deleted key or the old key of a key change), with no lookups. Every SDK write transaction
first folds the log into ``_sync_dirty_rows`` (``oversqlite._capture``): one row per key,
keeping the base version at first touch and the first-touch order. The payload is read from
the live row when the push freezes, so it is always the latest state and uses one encoder.
Coalescing falls out of that:

* insert then updates: one row; pushed as INSERT (no live row state);
* insert then delete of a key the server never had (nor frozen in the outbox): no dirty row;
* delete then re-insert of a synced key: one row; pushed as UPDATE;
* a key change: a delete intent for the old key and a touch of the new one.

Guards (BEFORE) refuse writes while a remote replace is staging (they would be wiped) and
refuse keys or UUID BLOBs that could never be sent, so bad rows fail at write time rather than
blocking a push later.

While a table awaits re-hydration after a local schema change (``oversqlite._marks``), its
AFTER triggers also record the first-touch baseline of the columns the change added.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping

from oversqlite._config import KeyKind
from oversqlite._errors import ConfigError
from oversqlite._schema import ColumnInfo, TableInfo, quote_ident, quote_literal

__all__ = ["capture_existing_rows", "drop_all", "install_triggers"]

_UUID_GLOB = "-".join("[0-9a-f]" * n for n in (8, 4, 4, 4, 12))
_APPLY_OFF = "(SELECT apply_mode FROM _sync_state) = 0"


def _raise(message: str, condition: str) -> str:
    return f"SELECT RAISE(ABORT, {quote_literal('oversqlite: ' + message)}) WHERE {condition};"


def _checks(table: TableInfo) -> list[str]:
    """Value checks for NEW in BEFORE INSERT/UPDATE triggers."""
    key = f"NEW.{quote_ident(table.key.name)}"
    where = f"{table.name}.{table.key.name}"
    if table.key_kind is KeyKind.BLOB_UUID:
        checks = [
            _raise(
                f"{where} must be a 16-byte UUID BLOB",
                f"typeof({key}) != 'blob' OR length({key}) != 16",
            )
        ]
    elif table.key_kind is KeyKind.UUID:
        checks = [
            _raise(
                f"{where} must be a lowercase dashed UUID",
                f"typeof({key}) != 'text' OR {key} NOT GLOB '{_UUID_GLOB}'",
            )
        ]
    else:
        checks = [
            _raise(f"{where} must be non-empty text", f"typeof({key}) != 'text' OR {key} = ''")
        ]
    for column in table.columns:
        if column is table.key or not column.is_blob:
            continue
        value = f"NEW.{quote_ident(column.name)}"
        if column.uuid_blob:
            condition = (
                f"{value} IS NOT NULL AND (typeof({value}) != 'blob' OR length({value}) != 16)"
            )
            checks.append(
                _raise(f"{table.name}.{column.name} must be a 16-byte UUID BLOB", condition)
            )
        else:
            checks.append(
                _raise(
                    f"{table.name}.{column.name} is a BLOB column; store bytes or NULL",
                    f"typeof({value}) NOT IN ('blob', 'null')",
                )
            )
    return checks


def _guard() -> str:
    return _raise(
        "a remote replace is in progress; writes to managed tables resume when attach() ends",
        f"(SELECT operation FROM _sync_state) = 'remote_replace' AND {_APPLY_OFF}",
    )


def _log(table: TableInfo, key: str, intent: int, condition: str = "") -> str:
    """Append one capture log row (``intent`` 0: touched; 1: delete intent)."""
    values = f"{quote_literal(table.name)}, {key}, {intent}"
    source = f"SELECT {values} WHERE {condition}" if condition else f"VALUES ({values})"
    return f"INSERT INTO _sync_capture_log (table_name, pk, intent) {source};"


def _baseline(table: TableInfo, key: str, columns: tuple[ColumnInfo, ...] | None) -> str:
    """Record the first-touch baseline of ``key`` (``None`` columns: inserted, NULL baseline)."""
    if columns is None:
        value = "NULL"
    else:
        pairs = ", ".join(
            f"{quote_literal(c.wire_name)}, quote(OLD.{quote_ident(c.name)})" for c in columns
        )
        value = f"json_object({pairs})"
    return (
        "INSERT INTO _sync_rehydrate_rows (table_name, pk, baseline) "
        f"VALUES ({quote_literal(table.name)}, {key}, {value}) "
        "ON CONFLICT (table_name, pk) DO NOTHING;"
    )


def trigger_sql(table: TableInfo, baseline: tuple[ColumnInfo, ...] = ()) -> dict[str, str]:
    """The six triggers of ``table``, by name (``baseline``: columns awaiting re-hydration)."""
    target = table.sql_name
    new_key, old_key = table.key_sql("NEW"), table.key_sql("OLD")
    key_changed = f"OLD.{quote_ident(table.key.name)} IS NOT NEW.{quote_ident(table.key.name)}"
    inserted: list[str] = []
    updated: list[str] = []
    deleted: list[str] = []
    if baseline:
        inserted = [_baseline(table, new_key, None)]
        deleted = [_baseline(table, old_key, baseline)]
        updated = [*deleted, inserted[0]]  # a key change: the new key counts as inserted

    def body(statements: Iterable[str]) -> str:
        return "BEGIN\n  " + "\n  ".join(statements) + "\nEND"

    def create(name: str, timing: str, when: str, statements: Iterable[str]) -> tuple[str, str]:
        full = f"_sync_{name}_{table.name}"
        clause = f" WHEN {when}" if when else ""
        return (
            full,
            f"CREATE TRIGGER {quote_ident(full)} {timing} ON {target}{clause}\n{body(statements)}",
        )

    checks = _checks(table)
    return dict(
        (
            create("bi", "BEFORE INSERT", "", [_guard(), *checks]),
            create("bu", "BEFORE UPDATE", "", [_guard(), *checks]),
            create("bd", "BEFORE DELETE", "", [_guard()]),
            create("ai", "AFTER INSERT", _APPLY_OFF, [*inserted, _log(table, new_key, 0)]),
            create(
                "au",
                "AFTER UPDATE",
                _APPLY_OFF,
                [*updated, _log(table, old_key, 1, key_changed), _log(table, new_key, 0)],
            ),
            create("ad", "AFTER DELETE", _APPLY_OFF, [*deleted, _log(table, old_key, 1)]),
        )
    )


def _existing(conn: sqlite3.Connection) -> dict[str, str]:
    rows = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND name LIKE '\\_sync\\_%' "
        "ESCAPE '\\'"
    )
    return {name: sql for name, sql in rows}


def install_triggers(
    conn: sqlite3.Connection,
    tables: Iterable[TableInfo],
    baselines: Mapping[str, tuple[ColumnInfo, ...]] | None = None,
) -> None:
    """(Re)create the triggers whose SQL changed and drop ``_sync_*`` triggers no longer wanted."""
    wanted: dict[str, str] = {}
    for table in tables:
        wanted.update(trigger_sql(table, (baselines or {}).get(table.name, ())))
    existing = _existing(conn)
    for name, sql in existing.items():
        if wanted.get(name) != sql:
            conn.execute(f"DROP TRIGGER {quote_ident(name)}")
    for name, sql in wanted.items():
        if existing.get(name) != sql:
            conn.execute(sql)


def drop_all(conn: sqlite3.Connection) -> None:
    for name in _existing(conn):
        conn.execute(f"DROP TRIGGER {quote_ident(name)}")


def capture_existing_rows(conn: sqlite3.Connection, table: TableInfo) -> int:
    """Record every row of a newly managed table as a pending local insert; return the count.

    Rows whose key could never be sent are refused (the table must be fixed first).
    """
    key = quote_ident(table.key.name)
    if table.key_kind is KeyKind.BLOB_UUID:
        bad = f"typeof({key}) != 'blob' OR length({key}) != 16"
    elif table.key_kind is KeyKind.UUID:
        bad = f"typeof({key}) != 'text' OR {key} NOT GLOB '{_UUID_GLOB}'"
    else:
        bad = f"typeof({key}) != 'text' OR {key} = ''"
    invalid = conn.execute(f"SELECT COUNT(*) FROM {table.sql_name} WHERE {bad}").fetchone()[0]
    if invalid:
        raise ConfigError(
            f"managed table {table.name!r}: {invalid} existing row(s) have a key that cannot be "
            f"synced ({table.key_kind.value} key expected); fix them before managing the table"
        )
    start = conn.execute("SELECT COALESCE(MAX(dirty_ordinal), 0) FROM _sync_dirty_rows").fetchone()[
        0
    ]
    cursor = conn.execute(
        "INSERT INTO _sync_dirty_rows (table_name, pk, base_row_version, dirty_ordinal) "
        f"SELECT ?, {table.key_sql('t')}, 0, ? + ROW_NUMBER() OVER () FROM {table.sql_name} AS t "
        "WHERE true ON CONFLICT (table_name, pk) DO NOTHING",
        (table.name, start),
    )
    return cursor.rowcount
