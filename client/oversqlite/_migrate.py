"""Local migrations (run by ``open()``) and the re-hydration that follows a schema change.

Each pending :class:`~oversqlite.Migration` runs in its own ``BEGIN IMMEDIATE`` transaction,
with foreign keys enforced only at its end (``PRAGMA foreign_keys`` is off around it, as
SQLite's table-rebuild procedure requires, and ``foreign_key_check`` must find no new
violation) and change capture suspended (the ``_sync_*`` triggers are dropped, then reinstalled
for the new table shapes in the same transaction). The same transaction records the new local
schema version and marks reshaped tables for re-hydration (``oversqlite._marks``). A failure
rolls that migration back and raises :class:`~oversqlite.MigrationError`.

Re-hydration runs at the next push, pull or sync: a bundle frozen before the change is pushed
first (its payloads have the old shape, so the server keeps its values of new columns), then a
snapshot rebuild (``_lifecycle.rebuild_keep_source``) replaces the local data, keeping pending
rows.
"""

from __future__ import annotations

import logging
import sqlite3

from oversqlite import _lifecycle, _marks, _outbox, _push
from oversqlite._capture import fold_capture_log
from oversqlite._config import BASE_SCHEMA_VERSION, ClientConfig, Migration
from oversqlite._context import Context
from oversqlite._errors import ConfigError, MigrationError
from oversqlite._results import PushReport, RestoreSummary
from oversqlite._schema import load_tables, table_shape
from oversqlite._store import atomic, read_state, update_state
from oversqlite._triggers import drop_all

__all__ = [
    "pending_migrations",
    "recorded_version",
    "rehydrate",
    "run_migrations",
    "split_statements",
]

logger = logging.getLogger("oversqlite")


def recorded_version(conn: sqlite3.Connection) -> int:
    """The database's local schema version (never recorded: the base version 1)."""
    return read_state(conn).schema_version or BASE_SCHEMA_VERSION


def split_statements(script: str) -> list[str]:
    """Split an SQL script into complete statements (``sqlite3.complete_statement``)."""
    statements: list[str] = []
    pending = ""
    pieces = script.split(";")
    for index, piece in enumerate(pieces):
        pending += piece
        if index < len(pieces) - 1:
            pending += ";"
            if not sqlite3.complete_statement(pending):
                continue
        if pending.strip().strip(";").strip():
            statements.append(pending)
        pending = ""
    return statements


def pending_migrations(conn: sqlite3.Connection, config: ClientConfig) -> list[Migration]:
    """The migrations above the recorded version, in order.

    Raises :class:`ConfigError` when the database is newer than this app.
    """
    current = recorded_version(conn)
    if current > config.schema_version:
        raise ConfigError(
            f"this database is at local schema version {current}, newer than this app's "
            f"{config.schema_version} (was the app downgraded?); install a release with "
            f"schema_version >= {current}"
        )
    return [m for m in config.migrations if m.version > current]


def run_migrations(
    conn: sqlite3.Connection, config: ClientConfig, migrations: list[Migration]
) -> None:
    """Apply ``migrations`` in order, each in its own transaction (outside any transaction).

    Raises :class:`MigrationError` when one fails (the ones before it stay applied).
    """
    for migration in migrations:
        _apply_one(conn, config, migration)
        logger.info("migrated the local schema to version %d", migration.version)


def _violations(conn: sqlite3.Connection) -> set[tuple[object, ...]]:
    return {tuple(row) for row in conn.execute("PRAGMA foreign_key_check")}


def _apply_one(conn: sqlite3.Connection, config: ClientConfig, migration: Migration) -> None:
    version = migration.version
    conn.execute("PRAGMA foreign_keys = OFF")  # a no-op inside a transaction: set before BEGIN
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            fold_capture_log(conn)  # the logged writes are judged by the state before it
            before = _violations(conn)
            drop_all(conn)  # capture suspended: the migration's own writes are not pushed
            _run(conn, migration)
            if not conn.in_transaction:
                raise MigrationError(
                    version, "it ended the transaction itself (a migration must not commit)"
                )
            new = sorted(_violations(conn) - before, key=repr)
            if new:
                raise MigrationError(version, f"it leaves foreign key violations {new[:5]}")
            _marks.note_reshaped(conn)
            conn.execute("DELETE FROM _sync_snapshot_rows")  # staged rows have the old shape
            conn.execute("DELETE FROM _sync_snapshot")
            update_state(conn, schema_version=version)
            _reinstall_between(conn, config)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, MigrationError) or not isinstance(exc, Exception):
                raise
            raise MigrationError(version, f"{type(exc).__name__}: {exc}") from exc
    finally:
        conn.execute("PRAGMA foreign_keys = ON")


def _run(conn: sqlite3.Connection, migration: Migration) -> None:
    if migration.apply is not None:
        migration.apply(conn)
        return
    assert migration.sql is not None
    for statement in split_statements(migration.sql):
        conn.execute(statement)


def _reinstall_between(conn: sqlite3.Connection, config: ClientConfig) -> None:
    """Capture triggers for the configured tables that exist now (open() finishes the job).

    An intermediate shape need not be syncable yet (a later migration may add a parent
    table); then the triggers stay off until the final install of this ``open()``.
    """
    specs = [spec for spec in config.sync_tables if table_shape(conn, spec.name) is not None]
    try:
        tables = load_tables(conn, specs)
    except ConfigError as exc:
        logger.debug("between migrations the tables are not syncable yet: %s", exc)
        return
    _marks.reinstall_triggers(conn, tables.values())


def rehydrate(ctx: Context) -> tuple[PushReport | None, RestoreSummary | None]:
    """Re-hydrate marked tables from a snapshot, if any are marked.

    Returns the push of a bundle frozen before the schema change (if there was one) and the
    snapshot applied. Without server data of ours yet (a seed is pending), marks are dropped.
    """
    conn = ctx.conn
    marks = _marks.load_marks(conn)
    if not marks:
        return None, None
    if read_state(conn).pending_initialization_id:
        with atomic(conn):
            _marks.clear_marks(conn)
            _marks.reinstall_triggers(conn, ctx.tables.values())
        return None, None
    pushed = _push.push_pending(ctx, frozen_only=True) if _outbox.exists(conn) else None
    logger.info("re-hydrating %s after a local schema change", ", ".join(sorted(marks)))
    return pushed, _lifecycle.rebuild_keep_source(ctx)
