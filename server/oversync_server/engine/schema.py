"""Bootstrap: validate the registered tables, create or verify the `sync` schema, install triggers.

    catalog = await bootstrap(pool, config)     # raises UnsupportedSchemaError, fail-closed

Steps (reference server.md §1.1), each refusing to start on anything it cannot serve safely:

1. Registered tables (§1.2): one `uuid` or `text` sync key, a `_sync_scope_id text` column, every
   unique index scope-first, a `(_sync_scope_id, key)` unique identity, and only column types the
   wire mapping covers (`catalog.SUPPORTED_TYPES`). The result is the `Catalog`.
2. Foreign keys (§1.3): the registered set is FK-closed and every registered FK is
   `(_sync_scope_id, parent_key)`, DEFERRABLE, MATCH SIMPLE, with supported actions.
3. The `sync` schema (§1.4/§1.5), under `pg_advisory_xact_lock(BOOTSTRAP_LOCK_KEY)`: created when
   the schema holds nothing, otherwise its layout marker must match. Unlike the reference, the
   catalog may grow: every table `sync.table_catalog` lists keeps its id and sync key, a newly
   registered table gets the next free id (`schema_changes.plan_table_ids`); a removed or
   renamed table or a changed sync key is refused with what breaks and how to proceed. The
   catalog then carries the stored ids, and `sync.registered_columns` the served columns
   (column changes since the last start are logged).
4. Triggers (§1.6): the owner guard and the capture trigger on every registered table (the
   capture trigger's `to_jsonb(NEW)` picks up new columns by itself).

Every error names the table, the rule and the fix. `install(runtime)` registers bootstrap as a
start hook of a `SyncRuntime` and keeps the catalog on it (`catalog_of(runtime)`).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass

import asyncpg

from oversync_server.config import RegisteredTable, ServiceConfig
from oversync_server.engine.catalog import (
    KEY_KINDS,
    SCOPE_COLUMN,
    SUPPORTED_TYPES,
    Catalog,
    ColumnInfo,
    TableInfo,
    quote_ident,
    quote_literal,
)
from oversync_server.engine.db import Connection, run_retrying
from oversync_server.engine.ddl import (
    BOOTSTRAP_LOCK_KEY,
    CAPTURE_DIRECT_GUC,
    LAYOUT_NAME,
    PROTOCOL_LABEL,
    SCHEMA_DDL,
    TRIGGER_FUNCTIONS_DDL,
    UPGRADE_DDL,
    UPGRADE_NEEDED_SQL,
)
from oversync_server.engine.schema_changes import (
    CatalogEntry,
    Change,
    column_changes,
    plan_table_ids,
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
       (a.atthasdef OR a.attidentity <> '') AS has_default,
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


# ------------------------------------------------------------------------------ tables


class TableRuleError(UnsupportedSchemaError):
    """A registered table breaks a rule of §1.2: which table, the rule and the fix."""

    def __init__(self, table: str, rule: str, fix: str) -> None:
        super().__init__(f"registered table {table}: {rule}; fix: {fix}")
        self.table, self.rule, self.fix = table, rule, fix


def _table_error(name: str, rule: str, fix: str) -> TableRuleError:
    return TableRuleError(name, rule, fix)


async def read_tables(
    conn: Connection, names: list[str]
) -> tuple[dict[str, list[ColumnInfo]], dict[str, list[asyncpg.Record]]]:
    """The columns (in table order) and unique indexes of these `schema.table`s, by name."""
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
    return dict(columns), dict(indexes)


async def load_catalog(conn: Connection, config: ServiceConfig) -> Catalog:
    """Read and validate every registered table (§1.2). Table ids are the reference's (1-based
    positions in the sorted list) until `ensure_sync_schema` gives the stored ones."""
    names = [table.qualified_name for table in config.registered_tables]
    columns, indexes = await read_tables(conn, names)
    return Catalog(
        validate_table(registered, columns.get(registered.qualified_name), indexes, position)
        for position, registered in enumerate(config.registered_tables, 1)
    )


def validate_table(
    registered: RegisteredTable,
    table_columns: list[ColumnInfo] | None,
    indexes: dict[str, list[asyncpg.Record]],
    table_id: int,
) -> TableInfo:
    """The rules of one registered table (§1.2); `UnsupportedSchemaError` on the first broken."""
    name = registered.qualified_name
    key = registered.sync_key_column
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
    return TableInfo(
        table_id=table_id,
        schema=registered.schema,
        table=registered.table,
        key_column=key,
        key_kind=key_kind,
        columns=tuple(table_columns),
    )


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


# ------------------------------------------------------------------------------ sync schema


async def check_layout(conn: Connection) -> bool:
    """Validate an existing layout's markers (§1.5); True when the schema must be created."""
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
            return True
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
        return False
    except UnsupportedSchemaError:
        raise
    except asyncpg.PostgresError as error:
        raise UnsupportedSchemaError(f"cannot validate the sync schema: {error}") from error


async def read_stored_catalog(conn: Connection) -> list[CatalogEntry]:
    """The `sync.table_catalog` rows of an existing layout, by table_id."""
    try:
        rows = await conn.fetch(
            "SELECT table_id, schema_name, table_name, sync_key_column, sync_key_kind"
            " FROM sync.table_catalog ORDER BY table_id"
        )
    except asyncpg.PostgresError as error:
        raise UnsupportedSchemaError(f"cannot read sync.table_catalog: {error}") from error
    return [CatalogEntry(*row) for row in rows]


async def read_recorded_columns(conn: Connection) -> dict[int, list[ColumnInfo]]:
    """`sync.registered_columns` by table_id (empty when the table does not exist yet)."""
    if not await conn.fetchval("SELECT to_regclass('sync.registered_columns') IS NOT NULL"):
        return {}
    recorded: dict[int, list[ColumnInfo]] = defaultdict(list)
    for row in await conn.fetch(
        "SELECT table_id, column_name, type_name, sql_type, not_null, has_default, generated"
        " FROM sync.registered_columns ORDER BY table_id, ordinal"
    ):
        recorded[row["table_id"]].append(ColumnInfo(*tuple(row)[1:]))
    return dict(recorded)


def catalog_entries(catalog: Catalog) -> list[CatalogEntry]:
    return [CatalogEntry(*row) for row in catalog.catalog_rows()]


def refusal(problems: list[Change]) -> UnsupportedSchemaError:
    """The bootstrap error for breaking table changes, one change per line."""
    return UnsupportedSchemaError(
        "the registered tables changed in a way the sync schema cannot follow:\n"
        + "\n".join(f"  {change.line()}" for change in problems)
        + "\n`oversync-server schema check --config FILE` lists every change"
        " (docs/schema-changes.md)"
    )


@dataclass(frozen=True, slots=True)
class SchemaState:
    """What `ensure_sync_schema` found and did."""

    created: bool
    catalog: Catalog  # with the stored table ids
    added: tuple[str, ...]  # tables added to sync.table_catalog now
    column_changes: tuple[Change, ...]  # since the columns were last recorded


async def _lock_bootstrap(conn: Connection) -> None:
    """Serialise bootstraps of all server processes (transaction-scoped). The wait is not
    bounded by the pool's `lock_timeout`: another process may be installing a large schema."""
    await conn.execute("SET LOCAL lock_timeout = 0")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", BOOTSTRAP_LOCK_KEY)


async def ensure_sync_schema(conn: Connection, catalog: Catalog) -> SchemaState:
    """Create the sync schema or validate the existing one, extend `sync.table_catalog` with
    newly registered tables and record the served columns; the catalog under the stored ids."""
    async with conn.transaction():
        await _lock_bootstrap(conn)
        fresh = await check_layout(conn)
        if fresh:
            await conn.execute(SCHEMA_DDL)
            await conn.execute(
                "INSERT INTO sync.meta (singleton_key, protocol_label, layout_name)"
                " VALUES (TRUE, $1, $2)",
                PROTOCOL_LABEL,
                LAYOUT_NAME,
            )
            stored: list[CatalogEntry] = []
        else:
            if await conn.fetchval(UPGRADE_NEEDED_SQL):
                await conn.execute(UPGRADE_DDL)
            stored = await read_stored_catalog(conn)
        recorded = await read_recorded_columns(conn)
        plan = plan_table_ids(
            catalog_entries(catalog),
            stored,
            stored_columns={tid: [c.name for c in cols] for tid, cols in recorded.items()},
            live_columns={t.qualified_name: [c.name for c in t.columns] for t in catalog.tables},
        )
        problems = plan.problems()
        if problems:
            raise refusal(problems)
        catalog = catalog.with_table_ids(plan.ids)
        await conn.executemany(
            "INSERT INTO sync.table_catalog"
            " (table_id, schema_name, table_name, sync_key_column, sync_key_kind)"
            " VALUES ($1, $2, $3, $4, $5)",
            [row for row in catalog.catalog_rows() if f"{row[1]}.{row[2]}" in plan.added],
        )
        changes = await record_columns(conn, catalog, recorded, set(plan.added))
        return SchemaState(fresh, catalog, plan.added, tuple(changes))


async def record_columns(
    conn: Connection,
    catalog: Catalog,
    recorded: dict[int, list[ColumnInfo]],
    added: set[str],
) -> list[Change]:
    """Bring `sync.registered_columns` from `recorded` to the catalog's columns (rows are
    written only for tables whose columns changed); the column changes since the record."""
    changes: list[Change] = []
    rewrite: list[TableInfo] = []
    for table in catalog.tables:
        before = None if table.qualified_name in added else recorded.get(table.table_id)
        if before == list(table.columns):
            continue
        if before is not None:
            changes.extend(column_changes(table.qualified_name, before, table.columns))
        rewrite.append(table)
    stale = set(recorded) - {table.table_id for table in catalog.tables}
    if not rewrite and not stale:
        return changes
    await conn.execute(
        "DELETE FROM sync.registered_columns WHERE table_id = ANY($1::int[])",
        [table.table_id for table in rewrite] + sorted(stale),
    )
    await conn.executemany(
        "INSERT INTO sync.registered_columns (table_id, column_name, ordinal, type_name,"
        " sql_type, not_null, has_default, generated) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        [
            (
                table.table_id,
                column.name,
                ordinal,
                column.type_name,
                column.sql_type,
                column.not_null,
                column.has_default,
                column.generated,
            )
            for table in rewrite
            for ordinal, column in enumerate(table.columns, 1)
        ],
    )
    return changes


# ------------------------------------------------------------------------------ foreign keys


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


# ------------------------------------------------------------------------------ triggers


def direct_apply_condition(table: TableInfo) -> str:
    """The WHEN condition of both triggers of `table`: false only for rows written by a
    top-level statement (trigger depth 0) while the transaction-local `CAPTURE_DIRECT_GUC` names
    this table: the push commit's INSERT and UPDATE statements, which check the scope and stage
    their rows themselves (`engine.push_commit`). Referential actions and rows written by other
    triggers are written at depth >= 1, so they are guarded and captured as always, and a write
    without a bundle context is refused by the guard whatever the GUC says."""
    return (
        f"pg_trigger_depth() > 0 OR current_setting('{CAPTURE_DIRECT_GUC}', true)"
        f" IS DISTINCT FROM '{table.table_id}'"
        " OR COALESCE(current_setting('oversync.bundle_user_id', true), '') = ''"
    )


def trigger_ddl(table: TableInfo) -> str:
    """Drop and recreate the owner guard and the capture trigger of one registered table.

    The names, events and functions are the reference's (server.md §1.6); the WHEN condition
    (`direct_apply_condition`) is oversync-py's. A Go server bootstrapping the database drops and
    recreates both triggers without it, and never sets the GUC: either way, host writes and
    every write the Go server makes are guarded and captured exactly as the reference's."""
    args = ", ".join(
        quote_literal(arg)
        for arg in (table.key_column, str(int(table.key_kind)), str(table.table_id))
    )
    when = direct_apply_condition(table)
    return f"""
DROP TRIGGER IF EXISTS oversync_bundle_owner_guard ON {table.sql_name};
DROP TRIGGER IF EXISTS oversync_bundle_capture_row ON {table.sql_name};
CREATE TRIGGER oversync_bundle_owner_guard BEFORE INSERT OR UPDATE OR DELETE ON {table.sql_name}
    FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION sync.enforce_registered_row_owner();
CREATE TRIGGER oversync_bundle_capture_row AFTER INSERT OR UPDATE OR DELETE ON {table.sql_name}
    FOR EACH ROW WHEN ({when}) EXECUTE FUNCTION sync.capture_registered_row_change({args});
"""


async def require_temporary_tables(conn: Connection) -> None:
    """The push commit stages its rows in a temporary table (`ddl.DIRECT_STAGE`): refuse to
    start, naming the fix, when the role may not create one."""
    if not await conn.fetchval("SELECT has_database_privilege(current_database(), 'TEMPORARY')"):
        row = await conn.fetchrow("SELECT current_database() AS db, current_user AS role")
        assert row is not None
        database, role = row["db"], row["role"]
        raise UnsupportedSchemaError(
            f"role {role} may not create temporary tables in database {database}, which push"
            f" commits need; fix: GRANT TEMPORARY ON DATABASE {quote_ident(database)}"
            f" TO {quote_ident(role)}"
        )


async def install_triggers(conn: Connection, catalog: Catalog) -> None:
    async with conn.transaction():
        await _lock_bootstrap(conn)
        await conn.execute(
            TRIGGER_FUNCTIONS_DDL + "".join(trigger_ddl(table) for table in catalog.tables)
        )


# ------------------------------------------------------------------------------ bootstrap


async def bootstrap(pool: asyncpg.Pool, config: ServiceConfig) -> Catalog:
    """Validate the registered tables and their foreign keys, create or check (and extend) the
    sync schema, install the triggers; the catalog under the stored table ids.

    Idempotent; concurrent bootstraps (several server processes) serialise on an advisory lock.
    Raises `UnsupportedSchemaError` with the table, the rule and the fix when anything is off;
    the foreign keys are checked before anything is written, so a refused start leaves the
    sync catalog as it was.
    """
    async with pool.acquire() as conn:
        catalog = await load_catalog(conn, config)
        await validate_foreign_keys(conn, catalog)
        await require_temporary_tables(conn)
        state = await run_retrying(lambda: ensure_sync_schema(conn, catalog), backoff=0.05)
        catalog = state.catalog
        await run_retrying(lambda: install_triggers(conn, catalog), backoff=0.05)
    for name in state.added:
        table = catalog.by_name(*name.split("."))
        assert table is not None
        log.info(
            "registered table %s added to the sync catalog (table_id %d)", name, table.table_id
        )
    for change in state.column_changes:
        (log.warning if change.breaking else log.info)("schema change: %s", change.line())
    log.info(
        "sync schema %s (%s); %d registered tables",
        "created" if state.created else "validated",
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
