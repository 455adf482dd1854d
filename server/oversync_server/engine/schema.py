"""Bootstrap: validate the registered tables, create or verify the `sync` schema, install triggers.

    catalog = await bootstrap(pool, config)     # raises UnsupportedSchemaError, fail-closed

Steps (reference server.md §1.1), each refusing to start on anything it cannot serve safely:

1. Registered tables (§1.2): one `uuid` or `text` sync key, a `_sync_scope_id text` column, every
   unique index scope-first, a `(_sync_scope_id, key)` unique identity, and only column types the
   wire mapping covers (`catalog.SUPPORTED_TYPES`). The result is the `Catalog`.
2. The `sync` schema (§1.4/§1.5), under `pg_advisory_xact_lock(BOOTSTRAP_LOCK_KEY)`: created when
   the schema holds nothing, otherwise its layout marker and `table_catalog` must match exactly.
3. Foreign keys (§1.3): the registered set is FK-closed and every registered FK is
   `(_sync_scope_id, parent_key)`, DEFERRABLE, MATCH SIMPLE, with supported actions.
4. Triggers (§1.6): the owner guard and the capture trigger on every registered table.

Every error names the table, the rule and the fix. `install(runtime)` registers bootstrap as a
start hook of a `SyncRuntime` and keeps the catalog on it (`catalog_of(runtime)`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from oversync_server.config import ServiceConfig
from oversync_server.engine.catalog import (
    KEY_KINDS,
    SCOPE_COLUMN,
    SUPPORTED_TYPES,
    Catalog,
    ColumnInfo,
    TableInfo,
    quote_literal,
)
from oversync_server.engine.db import Connection, run_retrying
from oversync_server.engine.ddl import (
    BOOTSTRAP_LOCK_KEY,
    LAYOUT_NAME,
    PROTOCOL_LABEL,
    SCHEMA_DDL,
    TRIGGER_FUNCTIONS_DDL,
    UPGRADE_DDL,
    UPGRADE_NEEDED_SQL,
)
from oversync_server.runtime import SyncRuntime

log = logging.getLogger("oversync_server")


class UnsupportedSchemaError(RuntimeError):
    """The database cannot be served as configured; the message says what to change."""


# ------------------------------------------------------------------------------ catalog queries

_COLUMNS_SQL = """
SELECT n.nspname || '.' || c.relname AS qualified_name,
       a.attname AS column_name,
       COALESCE(bt.typname, t.typname) AS type_name,
       format_type(a.atttypid, a.atttypmod) AS sql_type,
       a.attnotnull AS not_null,
       a.atthasdef AS has_default,
       (a.attgenerated <> '' OR a.attidentity = 'a') AS generated
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
  AND n.nspname || '.' || c.relname = ANY($1::text[])
ORDER BY 1, a.attnum
"""

_UNIQUE_INDEXES_SQL = """
SELECT n.nspname || '.' || c.relname AS qualified_name,
       ic.relname AS index_name,
       i.indpred IS NOT NULL AS partial,
       i.indexprs IS NOT NULL AS expression,
       ARRAY(
           SELECT a.attname
           FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
           WHERE k.ord <= i.indnkeyatts
           ORDER BY k.ord
       )::text[] AS columns
FROM pg_index i
JOIN pg_class c ON c.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_class ic ON ic.oid = i.indexrelid
WHERE i.indisunique AND n.nspname || '.' || c.relname = ANY($1::text[])
ORDER BY 1, 2
"""

_FOREIGN_KEYS_SQL = """
SELECT con.conname AS name,
       cn.nspname || '.' || cc.relname AS child,
       pn.nspname || '.' || pc.relname AS parent,
       ARRAY(
           SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum
           ORDER BY k.ord
       )::text[] AS child_columns,
       ARRAY(
           SELECT a.attname FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
           JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum
           ORDER BY k.ord
       )::text[] AS parent_columns,
       con.confmatchtype::text AS match_type,
       con.confupdtype::text AS update_action,
       con.confdeltype::text AS delete_action,
       con.condeferrable AS deferrable
FROM pg_constraint con
JOIN pg_class cc ON cc.oid = con.conrelid
JOIN pg_namespace cn ON cn.oid = cc.relnamespace
JOIN pg_class pc ON pc.oid = con.confrelid
JOIN pg_namespace pn ON pn.oid = pc.relnamespace
WHERE con.contype = 'f' AND cn.nspname || '.' || cc.relname = ANY($1::text[])
ORDER BY 2, 1
"""

# pg_constraint action codes: a NO ACTION, r RESTRICT, c CASCADE, n SET NULL, d SET DEFAULT.
_FK_ACTIONS = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}
_FK_MATCH = {"s": "SIMPLE", "f": "FULL", "p": "PARTIAL"}


# ------------------------------------------------------------------------------ 1. tables


def _table_error(name: str, rule: str, fix: str) -> UnsupportedSchemaError:
    return UnsupportedSchemaError(f"registered table {name}: {rule}; fix: {fix}")


async def load_catalog(conn: Connection, config: ServiceConfig) -> Catalog:
    """Read and validate every registered table (§1.2); the catalog with table ids and columns."""
    names = [table.qualified_name for table in config.registered_tables]
    columns: dict[str, list[ColumnInfo]] = defaultdict(list)
    for row in await conn.fetch(_COLUMNS_SQL, names):
        columns[row["qualified_name"]].append(
            ColumnInfo(
                name=row["column_name"],
                type_name=row["type_name"],
                sql_type=row["sql_type"],
                not_null=row["not_null"],
                has_default=row["has_default"],
                generated=row["generated"],
            )
        )
    indexes: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for row in await conn.fetch(_UNIQUE_INDEXES_SQL, names):
        indexes[row["qualified_name"]].append(row)

    tables = []
    for table_id, registered in enumerate(config.registered_tables, 1):
        name = registered.qualified_name
        key = registered.sync_key_column
        table_columns = columns.get(name)
        if not table_columns:
            raise _table_error(
                name,
                "could not load column metadata (the table does not exist or has no columns)",
                f"create {name} before starting the server, or remove it from registered_tables",
            )
        by_name = {column.name: column for column in table_columns}
        scope = by_name.get(SCOPE_COLUMN)
        if scope is None or scope.type_name != "text":
            raise _table_error(
                name,
                f"must define {SCOPE_COLUMN} TEXT (the owner column every synced row carries)",
                f"ALTER TABLE {name} ADD COLUMN {SCOPE_COLUMN} TEXT NOT NULL",
            )
        key_column = by_name.get(key)
        if key_column is None:
            raise _table_error(
                name,
                f"sync key column {key!r} does not exist",
                "set sync_key_columns to an existing uuid or text column",
            )
        key_kind = KEY_KINDS.get(key_column.type_name)
        if key_kind is None:
            raise _table_error(
                name,
                f"uses unsupported sync key column type {key_column.sql_type} for {key!r};"
                " the runtime allows only uuid and text",
                f"make {key!r} a uuid or text column",
            )
        for column in table_columns:
            if column.name == SCOPE_COLUMN:
                continue
            if column.type_name not in SUPPORTED_TYPES:
                raise _table_error(
                    name,
                    f"column {column.name!r} has unsupported type {column.sql_type}"
                    f" (supported: {', '.join(sorted(set(SUPPORTED_TYPES)))})",
                    f"change the type of {column.name!r} to a supported one, or stop syncing"
                    " this table",
                )
            if column.name != column.name.lower() or not _is_identifier(column.name):
                raise _table_error(
                    name,
                    f"column {column.name!r} is not a lowercase [a-z0-9_] name, so payloads"
                    " cannot address it",
                    f"rename {column.name!r} to a lowercase name",
                )
        _validate_unique_indexes(name, key, indexes.get(name, []))
        tables.append(
            TableInfo(
                table_id=table_id,
                schema=registered.schema,
                table=registered.table,
                key_column=key,
                key_kind=key_kind,
                columns=tuple(table_columns),
            )
        )
    return Catalog(tables)


def _is_identifier(name: str) -> bool:
    return bool(name) and all(ch.isascii() and (ch.isalnum() or ch == "_") for ch in name)


def _validate_unique_indexes(name: str, key: str, indexes: list[asyncpg.Record]) -> None:
    if not indexes:
        raise _table_error(
            name,
            "must provide unique indexes or constraints for scope-aware identity",
            f"add PRIMARY KEY ({SCOPE_COLUMN}, {key})",
        )
    has_identity = False
    for index in indexes:
        index_name = index["index_name"]
        index_columns = list(index["columns"])
        if index["partial"] or index["expression"]:
            raise _table_error(
                name,
                f"unique index {index_name} is a partial or expression unique index",
                f"replace it with a plain unique index that begins with {SCOPE_COLUMN}",
            )
        if not index_columns:
            raise _table_error(
                name, f"unique index {index_name} has no columns", "drop or recreate it"
            )
        if index_columns[0] != SCOPE_COLUMN:
            raise _table_error(
                name,
                f"unique index {index_name} ({', '.join(index_columns)}) does not begin with"
                f" {SCOPE_COLUMN}, so one user's rows could collide with another's",
                f"recreate it as ({SCOPE_COLUMN}, {', '.join(index_columns)})",
            )
        has_identity = has_identity or index_columns == [SCOPE_COLUMN, key]
    if not has_identity:
        raise _table_error(
            name,
            f"must provide unique identity ({SCOPE_COLUMN}, {key})",
            f"add PRIMARY KEY ({SCOPE_COLUMN}, {key}) or UNIQUE ({SCOPE_COLUMN}, {key})",
        )


# ------------------------------------------------------------------------------ 2. sync schema


@dataclass(frozen=True, slots=True)
class _LayoutState:
    fresh: bool


async def _layout_state(conn: Connection, catalog: Catalog) -> _LayoutState:
    """Validate an existing layout (§1.5); whether the schema must be created."""
    try:
        marker = await conn.fetchrow(
            """
            SELECT to_regclass('sync.meta') IS NOT NULL,
                   to_regclass('sync.table_catalog') IS NOT NULL,
                   (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = 'sync')
                 + (SELECT count(*) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = 'sync')
            """
        )
        assert marker is not None
        has_meta, has_catalog, other_objects = marker
        if not has_meta and not has_catalog:
            if other_objects:
                raise UnsupportedSchemaError(
                    "existing sync schema uses unsupported layout (it has objects but no"
                    " sync.meta marker); drop and recreate the sync schema"
                    " (DROP SCHEMA sync CASCADE) before starting the server"
                )
            return _LayoutState(fresh=True)
        if has_meta != has_catalog:
            raise UnsupportedSchemaError(
                "existing sync schema is missing required marker tables (sync.meta and"
                " sync.table_catalog must both exist); drop and recreate the sync schema"
            )
        meta = await conn.fetch("SELECT singleton_key, protocol_label, layout_name FROM sync.meta")
        expected_meta = (True, PROTOCOL_LABEL, LAYOUT_NAME)
        if [tuple(row) for row in meta] != [expected_meta]:
            raise UnsupportedSchemaError(
                f"sync.meta holds {[tuple(row) for row in meta]}, expected one row"
                f" {expected_meta}; this database uses another sync layout: drop and recreate"
                " the sync schema"
            )
        stored = {
            row[0]: tuple(row)
            for row in await conn.fetch(
                "SELECT table_id, schema_name, table_name, sync_key_column, sync_key_kind"
                " FROM sync.table_catalog ORDER BY table_id"
            )
        }
        expected = {row[0]: row for row in catalog.catalog_rows()}
        for table_id in sorted(set(stored) | set(expected)):
            if stored.get(table_id) != expected.get(table_id):
                raise UnsupportedSchemaError(
                    f"sync.table_catalog row {table_id} = {stored.get(table_id)},"
                    f" expected {expected.get(table_id)}: the registered tables changed since"
                    " the sync schema was created; adding, removing or renaming registered"
                    " tables requires dropping and recreating the sync schema"
                )
        return _LayoutState(fresh=False)
    except UnsupportedSchemaError:
        raise
    except asyncpg.PostgresError as error:
        raise UnsupportedSchemaError(f"cannot validate the sync schema: {error}") from error


async def _lock_bootstrap(conn: Connection) -> None:
    """Serialise bootstraps of all server processes (transaction-scoped). The wait is not
    bounded by the pool's `lock_timeout`: another process may be installing a large schema."""
    await conn.execute("SET LOCAL lock_timeout = 0")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", BOOTSTRAP_LOCK_KEY)


async def ensure_sync_schema(conn: Connection, catalog: Catalog) -> bool:
    """Create the sync schema or validate the existing one; True when it was created."""
    async with conn.transaction():
        await _lock_bootstrap(conn)
        state = await _layout_state(conn, catalog)
        if not state.fresh:
            if await conn.fetchval(UPGRADE_NEEDED_SQL):
                await conn.execute(UPGRADE_DDL)
            return False
        await conn.execute(SCHEMA_DDL)
        await conn.execute(
            "INSERT INTO sync.meta (singleton_key, protocol_label, layout_name)"
            " VALUES (TRUE, $1, $2)",
            PROTOCOL_LABEL,
            LAYOUT_NAME,
        )
        await conn.executemany(
            "INSERT INTO sync.table_catalog"
            " (table_id, schema_name, table_name, sync_key_column, sync_key_kind)"
            " VALUES ($1, $2, $3, $4, $5)",
            catalog.catalog_rows(),
        )
        return True


# ------------------------------------------------------------------------------ 3. foreign keys


async def validate_foreign_keys(conn: Connection, catalog: Catalog) -> None:
    """FK closure, scope-inclusive shape, deferrability, actions and MATCH (§1.3)."""
    names = [table.qualified_name for table in catalog.tables]
    registered = {table.qualified_name: table for table in catalog.tables}
    not_closed: list[str] = []
    bad_shape: list[str] = []
    not_deferrable: list[str] = []
    bad_rules: list[str] = []
    for fk in await conn.fetch(_FOREIGN_KEYS_SQL, names):
        label = f"{fk['child']} -> {fk['parent']} ({fk['name']})"
        parent = registered.get(fk["parent"])
        if parent is None:
            not_closed.append(label)
            continue
        child_columns, parent_columns = list(fk["child_columns"]), list(fk["parent_columns"])
        if (
            len(child_columns) != 2
            or child_columns[0] != SCOPE_COLUMN
            or parent_columns[0] != SCOPE_COLUMN
            or parent_columns[1] != parent.key_column
        ):
            bad_shape.append(
                f"{label} ({', '.join(child_columns)}) -> ({', '.join(parent_columns)})"
            )
        if not fk["deferrable"]:
            not_deferrable.append(label)
        if fk["match_type"] != "s":
            bad_rules.append(f"{label} uses MATCH {_FK_MATCH.get(fk['match_type'], '?')}")
        for which in ("update_action", "delete_action"):
            if fk[which] not in _FK_ACTIONS:
                bad_rules.append(f"{label} has an unsupported {which.replace('_', ' ')}")
    if not_closed:
        raise UnsupportedSchemaError(
            "registered tables are not FK-closed: "
            + "; ".join(not_closed)
            + "; fix: register the parent tables too, or drop these foreign keys"
        )
    if bad_shape:
        raise UnsupportedSchemaError(
            "unsupported registered FK constraints; registered child FKs must be scope-inclusive"
            " and reference (_sync_scope_id, parent_sync_key): "
            + "; ".join(bad_shape)
            + f"; fix: FOREIGN KEY ({SCOPE_COLUMN}, <column>) REFERENCES <parent>"
            f" ({SCOPE_COLUMN}, <parent sync key>)"
        )
    if not_deferrable:
        raise UnsupportedSchemaError(
            "registered schema contains non-deferrable FK constraints: "
            + "; ".join(not_deferrable)
            + "; make these constraints DEFERRABLE before bootstrap"
            " (ALTER TABLE ... ALTER CONSTRAINT ... DEFERRABLE INITIALLY DEFERRED)"
        )
    if bad_rules:
        raise UnsupportedSchemaError(
            "unsupported registered FK options: "
            + "; ".join(bad_rules)
            + "; fix: use MATCH SIMPLE (the default)"
        )


# ------------------------------------------------------------------------------ 4. triggers


def trigger_ddl(table: TableInfo) -> str:
    """Drop and recreate the owner guard and the capture trigger of one registered table."""
    args = ", ".join(
        quote_literal(arg)
        for arg in (table.key_column, str(int(table.key_kind)), str(table.table_id))
    )
    return f"""
DROP TRIGGER IF EXISTS oversync_bundle_owner_guard ON {table.sql_name};
DROP TRIGGER IF EXISTS oversync_bundle_capture_row ON {table.sql_name};
CREATE TRIGGER oversync_bundle_owner_guard BEFORE INSERT OR UPDATE OR DELETE ON {table.sql_name}
    FOR EACH ROW EXECUTE FUNCTION sync.enforce_registered_row_owner();
CREATE TRIGGER oversync_bundle_capture_row AFTER INSERT OR UPDATE OR DELETE ON {table.sql_name}
    FOR EACH ROW EXECUTE FUNCTION sync.capture_registered_row_change({args});
"""


async def install_triggers(conn: Connection, catalog: Catalog) -> None:
    async with conn.transaction():
        await _lock_bootstrap(conn)
        await conn.execute(
            TRIGGER_FUNCTIONS_DDL + "".join(trigger_ddl(table) for table in catalog.tables)
        )


# ------------------------------------------------------------------------------ bootstrap


async def bootstrap(pool: asyncpg.Pool, config: ServiceConfig) -> Catalog:
    """Validate the registered tables, create or check the sync schema, install the triggers.

    Idempotent; concurrent bootstraps (several server processes) serialise on an advisory lock.
    Raises `UnsupportedSchemaError` with the table, the rule and the fix when anything is off.
    """
    async with pool.acquire() as conn:
        catalog = await load_catalog(conn, config)
        created = await run_retrying(lambda: ensure_sync_schema(conn, catalog), backoff=0.05)
        await validate_foreign_keys(conn, catalog)
        await run_retrying(lambda: install_triggers(conn, catalog), backoff=0.05)
    log.info(
        "sync schema %s (%s); %d registered tables",
        "created" if created else "validated",
        LAYOUT_NAME,
        len(catalog),
    )
    return catalog


# ------------------------------------------------------------------------------ runtime wiring

_CATALOG_ATTRIBUTE = "catalog"


async def bootstrap_runtime(runtime: SyncRuntime) -> None:
    """Start hook: bootstrap against the runtime's pool and keep the catalog on the runtime."""
    catalog = await bootstrap(runtime.pool, runtime.config)
    setattr(runtime, _CATALOG_ATTRIBUTE, catalog)


def install(runtime: SyncRuntime) -> None:
    """Register bootstrap as a start hook (after hooks already registered, e.g. example DDL)."""
    if bootstrap_runtime not in runtime.start_hooks:
        runtime.start_hooks.append(bootstrap_runtime)


def catalog_of(runtime: SyncRuntime) -> Catalog:
    """The catalog bootstrap built for this runtime."""
    catalog = getattr(runtime, _CATALOG_ATTRIBUTE, None)
    if not isinstance(catalog, Catalog):
        raise RuntimeError("the sync schema is not bootstrapped (runtime not started)")
    return catalog
