"""The table catalog: what the server knows about each registered business table.

Built once at bootstrap (`oversync_server.engine.schema.bootstrap`) from `pg_catalog` and kept
for the life of the process (topology is restart-only, as in the reference). Every other module
takes a `Catalog` and never reads the system catalogs itself:

    table = catalog.by_name("business", "users")      # or catalog.by_id(table_id)
    table.key_column, table.key_kind                   # "id", KeyKind.UUID
    table.column("data").kind is ValueKind.BYTEA       # column types for value mapping

`table_id`s are the ones `sync.table_catalog` stores: for a fresh sync schema the reference's
1-based positions in the bytewise-sorted `schema.table` list (server.md §1.2); a table
registered later gets the next free id (`engine.schema_changes.plan_table_ids`), so stored
bundle rows keep meaning the same table. Never recompute them from the configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import IntEnum, StrEnum
from typing import Generic, TypeVar

SCOPE_COLUMN = "_sync_scope_id"


class KeyKind(IntEnum):
    """`sync.table_catalog.sync_key_kind`: how a sync key is stored in `key_bytes`."""

    UUID = 1
    TEXT = 2


class ValueKind(StrEnum):
    """The wire mapping family of a column type (protocol.md §3.2)."""

    UUID = "uuid"
    TEXT = "text"
    INTEGER = "integer"
    NUMERIC = "numeric"
    FLOAT = "float"
    BOOLEAN = "boolean"
    DATE = "date"
    TIME = "time"
    TIMESTAMP = "timestamp"
    TIMESTAMPTZ = "timestamptz"
    BYTEA = "bytea"
    JSON = "json"


# PostgreSQL base type name (pg_type.typname, domains resolved) -> wire mapping. Anything else is
# refused at bootstrap: the wire mapping of other types is not specified by the protocol.
SUPPORTED_TYPES: Mapping[str, ValueKind] = {
    "uuid": ValueKind.UUID,
    "text": ValueKind.TEXT,
    "varchar": ValueKind.TEXT,
    "bpchar": ValueKind.TEXT,
    "int2": ValueKind.INTEGER,
    "int4": ValueKind.INTEGER,
    "int8": ValueKind.INTEGER,
    "numeric": ValueKind.NUMERIC,
    "float4": ValueKind.FLOAT,
    "float8": ValueKind.FLOAT,
    "bool": ValueKind.BOOLEAN,
    "date": ValueKind.DATE,
    "time": ValueKind.TIME,
    "timestamp": ValueKind.TIMESTAMP,
    "timestamptz": ValueKind.TIMESTAMPTZ,
    "bytea": ValueKind.BYTEA,
    "json": ValueKind.JSON,
    "jsonb": ValueKind.JSON,
}

KEY_KINDS: Mapping[str, KeyKind] = {"uuid": KeyKind.UUID, "text": KeyKind.TEXT}


@dataclass(frozen=True, slots=True)
class ColumnInfo:
    """One column of a registered table."""

    name: str
    type_name: str  # base type name, e.g. "int8", "varchar"
    sql_type: str  # format_type() text with modifiers, e.g. "character varying(20)"
    not_null: bool = False
    has_default: bool = False
    generated: bool = False  # GENERATED ... STORED or GENERATED ALWAYS AS IDENTITY

    @property
    def kind(self) -> ValueKind:
        return SUPPORTED_TYPES[self.type_name]


def quote_ident(name: str) -> str:
    """A PostgreSQL identifier, always quoted (names come from configuration and catalogs)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A registered table: its compact id, sync key and columns (in table order)."""

    table_id: int
    schema: str
    table: str
    key_column: str
    key_kind: KeyKind
    columns: tuple[ColumnInfo, ...]
    _by_name: dict[str, ColumnInfo] = field(init=False, repr=False, compare=False)
    _bytea: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {column.name: column for column in self.columns})
        bytea = frozenset(c.name for c in self.columns if c.type_name == "bytea")
        object.__setattr__(self, "_bytea", bytea)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def sql_name(self) -> str:
        """The quoted `"schema"."table"` for SQL text."""
        return f"{quote_ident(self.schema)}.{quote_ident(self.table)}"

    @property
    def key_sql_type(self) -> str:
        return "uuid" if self.key_kind is KeyKind.UUID else "text"

    def column(self, name: str) -> ColumnInfo | None:
        return self._by_name.get(name)

    @property
    def payload_columns(self) -> tuple[ColumnInfo, ...]:
        """The columns that travel on the wire (every column but `_sync_scope_id`)."""
        return tuple(column for column in self.columns if column.name != SCOPE_COLUMN)

    @property
    def bytea_columns(self) -> frozenset[str]:
        return self._bytea


_Derived = TypeVar("_Derived")


class PerTable(Generic[_Derived]):
    """Values derived from a catalog table (and a shape of the caller's), built once per
    `TableInfo` object: a reloaded catalog has new objects, so nothing stale is served. Entries
    hold their table, so an object's id is not reused while it is cached; the whole cache is
    dropped when it reaches `limit` entries (catalogs are small, reloads rare)."""

    __slots__ = ("_entries", "_limit")

    def __init__(self, limit: int) -> None:
        self._entries: dict[tuple[int, Hashable], tuple[TableInfo, _Derived]] = {}
        self._limit = limit

    def get(self, table: TableInfo, shape: Hashable, build: Callable[[], _Derived]) -> _Derived:
        key = (id(table), shape)
        entry = self._entries.get(key)
        if entry is not None and entry[0] is table:
            return entry[1]
        value = build()
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (table, value)
        return value


class Catalog:
    """The registered tables by id and by `schema.table`."""

    def __init__(self, tables: Iterable[TableInfo]) -> None:
        self.tables: tuple[TableInfo, ...] = tuple(sorted(tables, key=lambda t: t.table_id))
        self._by_id = {table.table_id: table for table in self.tables}
        self._by_name = {table.qualified_name: table for table in self.tables}

    def by_id(self, table_id: int) -> TableInfo:
        """The table with this id; `KeyError` for an id this server did not register."""
        return self._by_id[table_id]

    def by_name(self, schema: str, table: str) -> TableInfo | None:
        return self._by_name.get(f"{schema}.{table}")

    def with_table_ids(self, ids: Mapping[str, int]) -> Catalog:
        """The same tables under the ids `sync.table_catalog` holds (by `schema.table`)."""
        return Catalog(replace(t, table_id=ids[t.qualified_name]) for t in self.tables)

    def catalog_rows(self) -> Sequence[tuple[int, str, str, str, int]]:
        """The expected `sync.table_catalog` rows, ordered by table_id."""
        return [(t.table_id, t.schema, t.table, t.key_column, int(t.key_kind)) for t in self.tables]

    def __len__(self) -> int:
        return len(self.tables)

    def __repr__(self) -> str:
        return f"Catalog({', '.join(t.qualified_name for t in self.tables)})"
