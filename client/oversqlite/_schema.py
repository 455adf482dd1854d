"""Local schema discovery and validation of the managed tables (fails closed).

Rules: a managed table exists, is not named ``_sync_*``, has a single-column PRIMARY KEY that
is its configured key column, declared NOT NULL and typed TEXT/UUID (text key) or BLOB (16-byte
UUID); column names are valid wire names; every foreign key is single-column and points at a
managed table (the managed set is FK-closed). The result carries the SQL each table needs and
the table order used to push parents before children.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from oversqlite._config import KeyKind, SyncTable
from oversqlite._errors import ConfigError

__all__ = [
    "ColumnInfo",
    "TableInfo",
    "check_foreign_keys",
    "load_tables",
    "quote_ident",
    "quote_literal",
    "table_shape",
    "upsert_sql",
]

logger = logging.getLogger("oversqlite")

RESERVED_PREFIX = "_sync_"
HIDDEN_SCOPE_COLUMN = "_sync_scope_id"
_WIRE_NAME = re.compile(r"^[a-z0-9_]+$")


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (names are never spliced in unquoted)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    """As declared in SQLite (used in SQL)."""
    wire_name: str
    """Lowercased: the payload key on the wire."""
    declared_type: str
    is_blob: bool
    uuid_blob: bool
    """A 16-byte BLOB that travels as dashed UUID text."""


@dataclass(frozen=True)
class TableInfo:
    """One validated managed table and the SQL the SDK runs against it."""

    name: str
    """Lowercased table name: used on the wire and in the ``_sync_*`` tables."""
    sql_name: str
    key: ColumnInfo
    key_kind: KeyKind
    columns: tuple[ColumnInfo, ...]
    parents: tuple[str, ...]
    order: int
    select_sql: str
    upsert_sql: str
    delete_sql: str

    @property
    def wire_columns(self) -> frozenset[str]:
        return frozenset(c.wire_name for c in self.columns)

    def key_sql(self, row: str) -> str:
        """The local key string of ``row`` (``NEW``/``OLD``/an alias) as an SQL expression."""
        column = f"{row}.{quote_ident(self.key.name)}"
        return f"lower(hex({column}))" if self.key_kind is KeyKind.BLOB_UUID else column

    def key_param(self, pk: str) -> str | bytes:
        """The SQL parameter for a local key string (BLOB keys are stored as hex)."""
        return bytes.fromhex(pk) if self.key_kind is KeyKind.BLOB_UUID else pk

    def upsert_sql_for(self, columns: tuple[ColumnInfo, ...]) -> str:
        """The upsert writing only ``columns`` (the key among them); others keep their value."""
        if len(columns) == len(self.columns):
            return self.upsert_sql
        return upsert_sql(self.sql_name, self.key.name, tuple(c.name for c in columns))


@lru_cache(maxsize=256)
def upsert_sql(table: str, key_column: str, columns: tuple[str, ...]) -> str:
    """``INSERT ... ON CONFLICT(key) DO UPDATE`` of ``columns`` (``table`` already quoted)."""
    names = ", ".join(quote_ident(c) for c in columns)
    placeholders = ", ".join("?" for _ in columns)
    others = [c for c in columns if c != key_column]
    if others:
        updates = ", ".join(f"{quote_ident(c)} = excluded.{quote_ident(c)}" for c in others)
        conflict = f"DO UPDATE SET {updates}"
    else:
        conflict = "DO NOTHING"
    return (
        f"INSERT INTO {table} ({names}) VALUES ({placeholders}) "
        f"ON CONFLICT({quote_ident(key_column)}) {conflict}"
    )


def table_shape(conn: sqlite3.Connection, table: str) -> list[tuple[str, str]] | None:
    """The (lowercase name, declared type) of each column of ``table``; None if it is missing."""
    rows = conn.execute(f"PRAGMA table_info({quote_ident(table)})").fetchall()
    return [(r[1].lower(), (r[2] or "").upper()) for r in rows] if rows else None


@dataclass(frozen=True)
class _ForeignKey:
    column: str
    parent: str
    parent_column: str | None


def _fail(table: str, message: str) -> ConfigError:
    return ConfigError(f"managed table {table!r}: {message}")


def _key_kind(table: str, column: str, declared: str, override: KeyKind | None) -> KeyKind:
    upper = declared.upper()
    if "BLOB" in upper:
        inferred = KeyKind.BLOB_UUID
    elif "UUID" in upper:
        inferred = KeyKind.UUID
    elif any(word in upper for word in ("TEXT", "CHAR", "CLOB")):
        inferred = KeyKind.TEXT
    else:
        raise _fail(
            table,
            f"key column {column!r} is declared {declared or 'without a type'!r}; sync keys "
            "must be TEXT, UUID (text) or BLOB (16-byte UUID)",
        )
    if override is None or override is inferred:
        return inferred
    if inferred is KeyKind.TEXT and override is KeyKind.UUID:
        return override
    raise _fail(table, f"key_kind {override.value} does not fit key column declared {declared!r}")


def _table_row(conn: sqlite3.Connection, spec: SyncTable) -> str:
    if spec.name.lower().startswith((RESERVED_PREFIX, "sqlite_")):
        raise _fail(spec.name, f"names starting with {RESERVED_PREFIX!r} are reserved for sync")
    found = conn.execute(
        "SELECT name, type FROM sqlite_master WHERE lower(name) = lower(?) AND type IN "
        "('table', 'view')",
        (spec.name,),
    ).fetchone()
    if found is None:
        raise _fail(spec.name, "no such table in the database")
    if found[1] != "table":
        raise _fail(spec.name, "is a view; only tables can be synced")
    name: str = found[0]
    if not _WIRE_NAME.match(name.lower()):
        raise _fail(spec.name, "table names must be letters, digits and underscores")
    return name


def _foreign_keys(conn: sqlite3.Connection, table: str) -> list[_ForeignKey]:
    groups: dict[int, list[tuple[str, str, str | None]]] = {}
    for row in conn.execute(f"PRAGMA foreign_key_list({quote_ident(table)})"):
        groups.setdefault(row[0], []).append((row[2], row[3], row[4]))
    out: list[_ForeignKey] = []
    for columns in groups.values():
        if len(columns) != 1:
            raise _fail(table, "composite foreign keys are not supported")
        parent, column, parent_column = columns[0]
        out.append(_ForeignKey(column.lower(), parent.lower(), parent_column))
    return out


@dataclass
class _Draft:
    spec: SyncTable
    name: str
    columns: list[tuple[str, str, bool]]  # (name, declared type, blob)
    key: str
    key_kind: KeyKind
    fks: list[_ForeignKey]


def _draft(conn: sqlite3.Connection, spec: SyncTable) -> _Draft:
    name = _table_row(conn, spec)
    info = conn.execute(f"PRAGMA table_info({quote_ident(name)})").fetchall()
    columns = [(r[1], r[2] or "", "BLOB" in (r[2] or "").upper()) for r in info]
    for column, _, _ in columns:
        lowered = column.lower()
        if lowered == HIDDEN_SCOPE_COLUMN:
            raise _fail(name, f"column {column!r} is the server's hidden scope column")
        if not _WIRE_NAME.match(lowered):
            raise _fail(name, f"column {column!r}: names must be letters, digits, underscores")
    pk_columns = [r for r in info if r[5] > 0]
    key = next((r for r in info if r[1].lower() == spec.key_column.lower()), None)
    if key is None:
        raise _fail(name, f"has no key column {spec.key_column!r}")
    if len(pk_columns) != 1 or pk_columns[0][1] != key[1]:
        raise _fail(name, f"key column {key[1]!r} must be the table's single-column PRIMARY KEY")
    kind = _key_kind(name, key[1], key[2] or "", spec.key_kind)
    if not key[3]:
        raise _fail(name, f"key column {key[1]!r} must be declared NOT NULL")
    return _Draft(spec, name, columns, key[1], kind, _foreign_keys(conn, name))


def _order(drafts: Sequence[_Draft]) -> list[str]:
    """Kahn's topological order, parents first; ties and cycles keep config order."""
    names = [d.name.lower() for d in drafts]
    parents = {
        d.name.lower(): {fk.parent for fk in d.fks if fk.parent != d.name.lower()} for d in drafts
    }
    done: list[str] = []
    remaining = list(names)
    while remaining:
        ready = next((n for n in remaining if parents[n] <= set(done)), None)
        if ready is None:  # a cycle: take the rest in config order
            done.extend(remaining)
            break
        done.append(ready)
        remaining.remove(ready)
    return done


def _build(draft: _Draft, drafts: dict[str, _Draft], order: int) -> TableInfo:
    name = draft.name
    uuid_config = {c.lower() for c in draft.spec.uuid_columns}
    uuid_fk: set[str] = set()
    for fk in draft.fks:
        parent = drafts[fk.parent]
        targets_key = fk.parent_column is None or fk.parent_column.lower() == parent.key.lower()
        if parent.key_kind is KeyKind.BLOB_UUID and targets_key:
            uuid_fk.add(fk.column)
    blob_columns = {c[0].lower() for c in draft.columns if c[2]}
    for column in uuid_config:
        if column not in blob_columns:
            raise _fail(name, f"uuid_columns entry {column!r} is not a BLOB column of the table")
    columns: list[ColumnInfo] = []
    key_info: ColumnInfo | None = None
    for column, declared, blob in draft.columns:
        lowered = column.lower()
        is_key = lowered == draft.key.lower()
        uuid_blob = blob and (
            (is_key and draft.key_kind is KeyKind.BLOB_UUID)
            or lowered in uuid_fk
            or lowered in uuid_config
        )
        info = ColumnInfo(column, lowered, declared, blob, uuid_blob)
        columns.append(info)
        if is_key:
            key_info = info
    assert key_info is not None
    table = quote_ident(name)
    names = ", ".join(quote_ident(c.name) for c in columns)
    key = quote_ident(key_info.name)
    return TableInfo(
        name=name.lower(),
        sql_name=table,
        key=key_info,
        key_kind=draft.key_kind,
        columns=tuple(columns),
        parents=tuple(sorted({fk.parent for fk in draft.fks})),
        order=order,
        select_sql=f"SELECT {names} FROM {table} WHERE {key} = ?",
        upsert_sql=upsert_sql(table, key_info.name, tuple(c.name for c in columns)),
        delete_sql=f"DELETE FROM {table} WHERE {key} = ?",
    )


def load_tables(conn: sqlite3.Connection, specs: Sequence[SyncTable]) -> dict[str, TableInfo]:
    """Validate ``specs`` against the database; return tables by lowercase name, in push order.

    Raises :class:`ConfigError` naming the table and the rule it breaks.
    """
    drafts = [_draft(conn, spec) for spec in specs]
    by_name = {d.name.lower(): d for d in drafts}
    for draft in drafts:
        for fk in draft.fks:
            if fk.parent not in by_name:
                raise _fail(
                    draft.name,
                    f"foreign key {fk.column} -> {fk.parent} points outside the managed tables; "
                    f"the managed set must be FK-closed (add {fk.parent!r} to the config)",
                )
    return {
        name: _build(by_name[name], by_name, position)
        for position, name in enumerate(_order(drafts))
    }


_warned_fk_defaults: set[str] = set()


def check_foreign_keys(
    conn: sqlite3.Connection, tables: Mapping[str, TableInfo], policy: str, where: str
) -> None:
    """Warn (or, with ``policy`` ``refuse``, raise) when foreign keys are not enforced.

    SQLite enforces foreign keys only on connections that ran ``PRAGMA foreign_keys = ON``
    (off by default). Rows that violate them (written with them off) are counted with
    ``PRAGMA foreign_key_check``; the server would refuse them. ``where`` names the database.
    """
    if policy == "ignore":
        return
    with_fks = sorted(name for name, table in tables.items() if table.parents)
    if not with_fks:
        return
    broken: dict[str, int] = {}
    for name in with_fks:
        count = 0
        for _ in conn.execute(f"PRAGMA foreign_key_check({tables[name].sql_name})"):
            count += 1
        if count:
            broken[name] = count
    fix = (
        "run PRAGMA foreign_keys = ON on every connection that writes the managed tables "
        f"({', '.join(with_fks)})"
    )
    if broken:
        listing = ", ".join(f"{name}: {count}" for name, count in broken.items())
        message = (
            f"managed rows violate their foreign keys ({listing}), written by a connection "
            f"with foreign keys off; the server refuses such changes (they end up in "
            f"rejected_changes()). Fix the rows and {fix}"
        )
        if policy == "refuse":
            raise ConfigError(message)
        logger.warning("%s", message)
        return
    default_on = sqlite3.connect(":memory:").execute("PRAGMA foreign_keys").fetchone()[0]
    if not default_on and where not in _warned_fk_defaults:
        _warned_fk_defaults.add(where)
        logger.info(  # advice only: the app's own connections cannot be inspected
            "SQLite does not enforce foreign keys unless a connection asks for it: %s, or a "
            "delete of a referenced row is refused by the server (ClientConfig.foreign_keys "
            "controls this check)",
            fix,
        )
