"""`oversync-server schema check`: what starting with a configuration would change, before you do.

    oversync-server schema check --config FILE [--database-url URL]

Compares the configuration and the live database with what the sync schema knows (the tables of
`sync.table_catalog`, the columns bootstrap recorded in `sync.registered_columns`) and prints each
change on one line, `additive` or `breaking`, with the fix for a breaking one:

    additive  business.notes: new column pinned boolean NOT NULL DEFAULT: ...
    breaking  business.tags: registered table removed or renamed ...; fix: ...

Exit status: 0 when every change is additive (or nothing changed), 1 when one is breaking, 2 on a
usage or connection error. Read-only: everything runs in a READ ONLY transaction, and the checks
are the ones bootstrap applies (`engine.schema`, `engine.schema_changes`), not a copy of them.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from typing import TextIO

import asyncpg

from oversync_server.config import RegisteredTable, ServiceConfig
from oversync_server.engine.catalog import KEY_KINDS, Catalog, ColumnInfo, TableInfo
from oversync_server.engine.schema import (
    TableRuleError,
    UnsupportedSchemaError,
    check_layout,
    read_recorded_columns,
    read_stored_catalog,
    read_tables,
    validate_foreign_keys,
    validate_table,
)
from oversync_server.engine.schema_changes import (
    GUIDE,
    CatalogEntry,
    Change,
    column_changes,
    plan_table_ids,
)

EXIT_OK, EXIT_BREAKING, EXIT_USAGE = 0, 1, 2
CONNECT_TIMEOUT_SECONDS = 10.0


class CheckUsageError(RuntimeError):
    """The check could not run (database unreachable, unreadable catalogs): exit status 2."""


@dataclass
class Report:
    """The changes in the order found, and notes (facts that are not changes)."""

    changes: list[Change] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def breaking(self) -> bool:
        return any(change.breaking for change in self.changes)

    def lines(self) -> list[str]:
        lines = [change.line() for change in self.changes]
        lines += [f"note      {note}" for note in self.notes]
        additive = sum(not change.breaking for change in self.changes)
        breaking = len(self.changes) - additive
        if self.changes:
            lines.append(f"schema check: {additive} additive, {breaking} breaking")
        else:
            lines.append("schema check: no changes")
        return lines


async def inspect(conn: asyncpg.Connection, config: ServiceConfig) -> Report:
    """Every change starting with `config` would make to the database behind `conn`."""
    report = Report()
    registered = config.registered_tables
    columns, indexes = await read_tables(conn, [table.qualified_name for table in registered])
    valid: dict[str, TableInfo] = {}
    failed: dict[str, TableRuleError] = {}
    for position, table in enumerate(registered, 1):
        try:
            valid[table.qualified_name] = validate_table(
                table, columns.get(table.qualified_name), indexes, position
            )
        except TableRuleError as error:
            failed[table.qualified_name] = error

    try:
        fresh = await check_layout(conn)
    except UnsupportedSchemaError as error:
        report.changes.append(Change("breaking", "sync schema", str(error)))
        report.changes.extend(_rule_change(error) for error in failed.values())
        return report
    stored = [] if fresh else await read_stored_catalog(conn)
    recorded = {} if fresh else await read_recorded_columns(conn)
    if fresh:
        report.notes.append("no sync schema yet: the next start creates it")

    wanted = [
        CatalogEntry(0, table.schema, table.table, table.sync_key_column, _key_kind(columns, table))
        for table in registered
    ]
    plan = plan_table_ids(
        wanted,
        stored,
        stored_columns={tid: [c.name for c in cols] for tid, cols in recorded.items()},
        live_columns={name: [c.name for c in cols] for name, cols in columns.items()},
    )
    report.changes.extend(plan.problems())
    for table in registered:
        name = table.qualified_name
        rule_error = failed.get(name)
        if rule_error is not None:
            report.changes.append(_rule_change(rule_error, new=name in plan.added))
            continue
        if name in plan.added:
            report.changes.append(
                Change(
                    "additive",
                    name,
                    f"new table: registered as table_id {plan.ids[name]} with its triggers at"
                    " the next start",
                )
            )
            continue
        table_id = plan.ids[name]
        before = recorded.get(table_id)
        if before is None:
            if not fresh:
                report.notes.append(
                    f"{name}: no recorded columns (bootstrap records them at the next start),"
                    " so column removals and type changes cannot be told"
                )
            continue
        report.changes.extend(column_changes(name, before, valid[name].columns))

    if not failed:
        try:
            await validate_foreign_keys(conn, Catalog(valid.values()))
        except UnsupportedSchemaError as error:
            report.changes.append(Change("breaking", "foreign keys", str(error)))
    else:
        report.notes.append("foreign keys are checked once every registered table passes")

    reference_ids = config.table_ids()
    moved = sorted(name for name in plan.added if plan.ids[name] != reference_ids[name])
    if moved and stored:
        verb = "sorts" if len(moved) == 1 else "sort"
        report.notes.append(
            f"{', '.join(moved)} {verb} before an existing table: the Go reference server,"
            " which numbers tables by sorted position, will refuse this database"
            " (docs/deviations.md)"
        )
    upper = config.max_client_schema_version or "any"
    report.notes.append(
        f"version gate: app schema versions {config.min_client_schema_version}..{upper} are"
        f" served (min_client_schema_version, max_client_schema_version; {GUIDE})"
    )
    return report


def _key_kind(columns: dict[str, list[ColumnInfo]], table: RegisteredTable) -> int | None:
    """The sync key kind of the live key column; None when it is missing or of another type."""
    for column in columns.get(table.qualified_name, []):
        if column.name == table.sync_key_column:
            kind = KEY_KINDS.get(column.type_name)
            return None if kind is None else int(kind)
    return None


def _rule_change(error: TableRuleError, *, new: bool = False) -> Change:
    return Change("breaking", error.table, error.rule + (" (new table)" if new else ""), error.fix)


async def run_check(config: ServiceConfig, database_url: str) -> Report:
    """Connect, inspect in a read-only transaction, disconnect; `CheckUsageError` when the
    database cannot be reached or read."""
    try:
        conn = await asyncpg.connect(database_url, timeout=CONNECT_TIMEOUT_SECONDS)
    except (
        TimeoutError,
        OSError,
        asyncpg.PostgresError,
        asyncpg.InterfaceError,
        ValueError,
    ) as error:
        raise CheckUsageError(f"cannot connect to the database: {error}") from error
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            return await inspect(conn, config)
    except (asyncpg.PostgresError, UnsupportedSchemaError) as error:
        raise CheckUsageError(f"cannot read the database catalogs: {error}") from error
    finally:
        await conn.close()


def main(config: ServiceConfig, database_url: str, out: TextIO = sys.stdout) -> int:
    """Print the report; the exit status (0 additive/unchanged, 1 breaking, 2 error)."""
    try:
        report = asyncio.run(run_check(config, database_url))
    except CheckUsageError as error:
        print(f"oversync-server: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    for line in report.lines():
        print(line, file=out)
    return EXIT_BREAKING if report.breaking else EXIT_OK
