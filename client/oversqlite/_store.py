"""The SDK's SQLite connection, its transaction discipline and the ``_sync_*`` state tables.

Local state (all created idempotently by ``install``):

``_sync_state``           one row: source id and sequence, binding, checkpoint, durable gates
                          (``rebuild_required``, ``operation``) and ``apply_mode``
``_sync_row_state``       the last authoritative version (and tombstone flag) of every key
``_sync_dirty_rows``      pending local intent: one row per key, payload read at freeze time
``_sync_capture_log``     app writes the capture triggers logged since the last fold into the
                          dirty rows (``oversqlite._capture``; every SDK write transaction folds)
``_sync_outbox``          header of the one frozen bundle being pushed (no row: nothing frozen)
``_sync_outbox_rows``     the frozen rows, in upload order, with their wire payloads
``_sync_snapshot``        header of a staged snapshot download
``_sync_snapshot_rows``   the staged snapshot rows
``_sync_managed_tables``  the tables the triggers are installed on, with their column shape
``_sync_rehydrate``       tables to re-hydrate from a snapshot after a local schema change, with
                          the columns whose local values pending rows keep
``_sync_rehydrate_rows``  per key of such a table: the values its new columns had when the app
                          first touched the row after the change (NULL: inserted after it)
``_sync_rejected_changes`` changes the server refused for good, with its error (``_rejected``)
``_sync_committed_rows``  the verified rows of a committed bundle being fetched (``_push``)

``schema_version`` in ``_sync_state`` is the local schema version recorded by ``open()``.
``isolate_rows`` / ``isolate_left``: while the push isolates a refused row, the bundle size and
the rows of the refused bundle still to go (0: not isolating).

``apply_mode`` is set to 1 only inside transactions that write authoritative data and back to
0 before they commit, so the capture triggers (which check it) never see a committed 1.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any, Final

from oversqlite._capture import PENDING_SQL, fold_capture_log
from oversqlite._errors import ConfigError

__all__ = [
    "STATE_TABLES",
    "UNHEX",
    "SyncState",
    "apply_transaction",
    "atomic",
    "begin_immediate",
    "connect",
    "install",
    "pending_row_count",
    "read_state",
    "register_functions",
    "update_state",
]

# Create order; uninstall drops them all.
_DDL: Final = (
    """CREATE TABLE IF NOT EXISTS _sync_state (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        schema_name TEXT NOT NULL DEFAULT '',
        source_id TEXT NOT NULL DEFAULT '',
        next_source_bundle_id INTEGER NOT NULL DEFAULT 1,
        binding TEXT NOT NULL DEFAULT 'anonymous',
        user_id TEXT NOT NULL DEFAULT '',
        last_bundle_seq_seen INTEGER NOT NULL DEFAULT 0,
        pending_initialization_id TEXT NOT NULL DEFAULT '',
        rebuild_required INTEGER NOT NULL DEFAULT 0,
        operation TEXT NOT NULL DEFAULT 'none',
        operation_user_id TEXT NOT NULL DEFAULT '',
        recovery_reason TEXT NOT NULL DEFAULT '',
        replacement_source_id TEXT NOT NULL DEFAULT '',
        apply_mode INTEGER NOT NULL DEFAULT 0,
        schema_version INTEGER NOT NULL DEFAULT 0,
        isolate_rows INTEGER NOT NULL DEFAULT 0,
        isolate_left INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_row_state (
        table_name TEXT NOT NULL,
        pk TEXT NOT NULL,
        row_version INTEGER NOT NULL,
        deleted INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (table_name, pk)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS _sync_dirty_rows (
        table_name TEXT NOT NULL,
        pk TEXT NOT NULL,
        base_row_version INTEGER NOT NULL,
        dirty_ordinal INTEGER NOT NULL,
        PRIMARY KEY (table_name, pk)
    ) WITHOUT ROWID""",
    # New dirty rows are numbered from MAX(dirty_ordinal): keep it an index lookup.
    "CREATE INDEX IF NOT EXISTS _sync_dirty_rows_ordinal ON _sync_dirty_rows (dirty_ordinal)",
    # Appended to by the capture triggers (one row per key written), emptied by every fold.
    """CREATE TABLE IF NOT EXISTS _sync_capture_log (
        seq INTEGER PRIMARY KEY,
        table_name TEXT NOT NULL,
        pk TEXT NOT NULL,
        intent INTEGER NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_outbox (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        state TEXT NOT NULL CHECK (state IN ('prepared', 'committed')),
        source_id TEXT NOT NULL,
        source_bundle_id INTEGER NOT NULL,
        row_count INTEGER NOT NULL,
        bundle_seq INTEGER NOT NULL DEFAULT 0,
        bundle_hash TEXT NOT NULL DEFAULT '',
        committed_row_count INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_outbox_rows (
        row_ordinal INTEGER PRIMARY KEY,
        table_name TEXT NOT NULL,
        pk TEXT NOT NULL,
        op TEXT NOT NULL CHECK (op IN ('INSERT', 'UPDATE', 'DELETE')),
        base_row_version INTEGER NOT NULL,
        payload TEXT
    )""",
    "CREATE UNIQUE INDEX IF NOT EXISTS _sync_outbox_rows_key ON _sync_outbox_rows (table_name, pk)",
    """CREATE TABLE IF NOT EXISTS _sync_snapshot (
        singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
        snapshot_id TEXT NOT NULL,
        snapshot_bundle_seq INTEGER NOT NULL,
        row_count INTEGER NOT NULL,
        complete INTEGER NOT NULL DEFAULT 0
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_snapshot_rows (
        row_ordinal INTEGER PRIMARY KEY,
        table_name TEXT NOT NULL,
        pk TEXT NOT NULL,
        row_version INTEGER NOT NULL,
        payload TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_managed_tables (
        table_name TEXT PRIMARY KEY,
        key_column TEXT NOT NULL,
        columns TEXT NOT NULL DEFAULT ''
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_rehydrate (
        table_name TEXT PRIMARY KEY,
        keep_columns TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_rehydrate_rows (
        table_name TEXT NOT NULL,
        pk TEXT NOT NULL,
        baseline TEXT,
        PRIMARY KEY (table_name, pk)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS _sync_rejected_changes (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        table_name TEXT NOT NULL,
        pk TEXT NOT NULL,
        wire_key TEXT NOT NULL,
        op TEXT NOT NULL,
        base_row_version INTEGER NOT NULL,
        payload TEXT,
        code TEXT NOT NULL,
        message TEXT NOT NULL,
        rejected_at REAL NOT NULL,
        UNIQUE (table_name, pk)
    )""",
    """CREATE TABLE IF NOT EXISTS _sync_committed_rows (
        row_ordinal INTEGER PRIMARY KEY,
        row TEXT NOT NULL
    )""",
)

# Columns added to state tables after their first release: (table, column, definition).
# Databases made by an older SDK get them on open.
_ADDED_COLUMNS: Final = (
    ("_sync_state", "schema_version", "INTEGER NOT NULL DEFAULT 0"),
    ("_sync_managed_tables", "columns", "TEXT NOT NULL DEFAULT ''"),
    ("_sync_state", "isolate_rows", "INTEGER NOT NULL DEFAULT 0"),
    ("_sync_state", "isolate_left", "INTEGER NOT NULL DEFAULT 0"),
)

STATE_TABLES: Final = (
    "_sync_state",
    "_sync_row_state",
    "_sync_dirty_rows",
    "_sync_capture_log",
    "_sync_outbox",
    "_sync_outbox_rows",
    "_sync_snapshot",
    "_sync_snapshot_rows",
    "_sync_managed_tables",
    "_sync_rehydrate",
    "_sync_rehydrate_rows",
    "_sync_rejected_changes",
    "_sync_committed_rows",
)

_savepoints = itertools.count()

# An SQL function on the SDK's connection: a hex key string as the BLOB it stands for.
UNHEX: Final = "oversqlite_unhex"


def _unhex(text: object) -> bytes | None:
    return bytes.fromhex(text) if isinstance(text, str) else None


def register_functions(conn: sqlite3.Connection) -> None:
    """Define the SDK's SQL functions on ``conn`` (idempotent)."""
    conn.create_function(UNHEX, 1, _unhex, deterministic=True)


def connect(
    path: str, *, busy_timeout: float, tracer: Callable[[str], None] | None
) -> sqlite3.Connection:
    """Open the SDK's own connection: manual transactions, WAL, foreign keys on."""
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
    )
    if tracer is not None:
        conn.set_trace_callback(tracer)
    register_functions(conn)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def begin_immediate(conn: sqlite3.Connection) -> None:
    """Start a write transaction and fold the capture log first (every SDK write does).

    Folding before anything else keeps the row state and the outbox exactly as they were
    when the app made the logged writes (``oversqlite._capture``).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        fold_capture_log(conn)
    except BaseException:
        conn.execute("ROLLBACK")
        raise


@contextmanager
def atomic(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction (:func:`begin_immediate`), or a savepoint when already inside one.

    Rollback edges: an exception in the body rolls everything back; a failing COMMIT (deferred
    foreign keys are checked there) leaves SQLite's transaction open, so it is rolled back too.
    """
    if conn.in_transaction:
        name = f"oversqlite_{next(_savepoints)}"
        conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            conn.execute(f"ROLLBACK TO {name}")
            conn.execute(f"RELEASE {name}")
            raise
        conn.execute(f"RELEASE {name}")
        return
    begin_immediate(conn)
    try:
        yield
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


@contextmanager
def apply_transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """A transaction that writes authoritative data: FKs not enforced, capture triggers muted.

    Server data is consistent by construction (the server's foreign keys always hold), so
    foreign keys are off for the transaction: a local row that an app connection wrote with
    foreign keys off (e.g. a child of a parent whose delete the server refused) cannot make an
    apply fail for good, and a local pending row that server data orphans is not cascaded away
    silently: its push is refused and it becomes a rejected change. Nested in another
    transaction (where the pragma cannot change), FKs stay on and deferred to the commit.
    """
    outermost = not conn.in_transaction
    if outermost:
        conn.execute("PRAGMA foreign_keys = OFF")
    try:
        with atomic(conn):
            conn.execute("PRAGMA defer_foreign_keys = ON")
            conn.execute("UPDATE _sync_state SET apply_mode = 1")
            yield
            conn.execute("UPDATE _sync_state SET apply_mode = 0")
    finally:
        if outermost:
            conn.execute("PRAGMA foreign_keys = ON")


@dataclass(frozen=True)
class SyncState:
    """The ``_sync_state`` row."""

    schema_name: str
    source_id: str
    next_source_bundle_id: int
    binding: str
    user_id: str
    last_bundle_seq_seen: int
    pending_initialization_id: str
    rebuild_required: int
    operation: str
    operation_user_id: str
    recovery_reason: str
    replacement_source_id: str
    apply_mode: int
    schema_version: int
    """The recorded local schema version (0: never recorded, i.e. version 1)."""
    isolate_rows: int = 0
    isolate_left: int = 0

    @property
    def attached(self) -> bool:
        return self.binding == "attached"


_STATE_COLUMNS: Final = tuple(f.name for f in fields(SyncState))


def install(conn: sqlite3.Connection) -> None:
    """Create the state tables if missing and check the layout of existing ones."""
    for statement in _DDL:
        conn.execute(statement)
    for table, column, definition in _ADDED_COLUMNS:
        have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    present = {row[1] for row in conn.execute("PRAGMA table_info(_sync_state)")}
    if not set(_STATE_COLUMNS) <= present:
        raise ConfigError(
            "table _sync_state exists with a different layout (made by another tool?); "
            "rename it or use another database"
        )
    conn.execute("INSERT INTO _sync_state (singleton) VALUES (1) ON CONFLICT DO NOTHING")


def read_state(conn: sqlite3.Connection) -> SyncState:
    row = conn.execute(f"SELECT {', '.join(_STATE_COLUMNS)} FROM _sync_state").fetchone()
    return SyncState(*row)


def update_state(conn: sqlite3.Connection, **values: Any) -> None:
    unknown = set(values) - set(_STATE_COLUMNS)
    if unknown:
        raise AssertionError(f"unknown _sync_state columns {sorted(unknown)}")
    assignments = ", ".join(f"{name} = ?" for name in values)
    conn.execute(f"UPDATE _sync_state SET {assignments}", tuple(values.values()))


def pending_row_count(conn: sqlite3.Connection) -> int:
    """Rows waiting to be pushed: dirty rows (as folded) plus frozen outbox rows.

    A read only (status reads use a read-only connection): unfolded app writes count as the
    fold will leave them.
    """
    return int(conn.execute(PENDING_SQL).fetchone()[0])
