"""The capture log: what the AFTER triggers append, and its fold into ``_sync_dirty_rows``.

The triggers (``oversqlite._triggers``) do the least an app write can cost: one append to
``_sync_capture_log`` per key written (``intent`` 0: the key was touched; 1: a delete intent,
from a delete or a key change), with no lookups. The SDK folds the log into the dirty rows,
set-based, at the start of each of its write transactions (``_store.begin_immediate``), and
deletes the folded log rows in that same transaction, so a crash at any point leaves either
the log or its fold, never both and never neither.

The fold gives exactly what per-write coalescing gave. The SDK's transactions are the only
writers of ``_sync_row_state`` and ``_sync_outbox_rows``, and each folds before it writes, so
those tables are unchanged since every logged write: row versions and the "known" test of a
delete intent (the server has the key live, or the frozen bundle holds it) read now are what
they were then (the SDK's own writes to managed tables run with capture muted, so no log row
appears inside its transactions). Per logged key:

* a known key, or one without a delete intent: a dirty row is added unless one exists, with
  the key's row version at first touch (0: none) and ordered by its first logged write;
* a key the server never had, with delete intents: its dirty row goes; if a touch follows the
  last delete intent (a re-insert), a dirty row is added back, ordered by that touch.

New dirty rows come after the existing ones, in first-touch order. :data:`PENDING_SQL` counts
pending rows as the fold would leave them, so status reads (a read-only connection) see app
writes at once without folding.
"""

from __future__ import annotations

import sqlite3
from typing import Final

__all__ = ["PENDING_SQL", "fold_capture_log"]


def _known(alias: str) -> str:
    """SQL: the server has key ``alias`` live, or the frozen bundle holds it."""
    return (
        f"(EXISTS (SELECT 1 FROM _sync_row_state AS s WHERE s.table_name = {alias}.table_name "
        f"AND s.pk = {alias}.pk AND s.deleted = 0) OR EXISTS (SELECT 1 FROM _sync_outbox_rows "
        f"AS o WHERE o.table_name = {alias}.table_name AND o.pk = {alias}.pk))"
    )


# Delete intents of keys the server never had drop the key's dirty row.
_DROP_UNKNOWN: Final = (
    "DELETE FROM _sync_dirty_rows WHERE (table_name, pk) IN (SELECT l.table_name, l.pk "
    f"FROM _sync_capture_log AS l WHERE l.intent = 1 AND NOT {_known('l')})"
)

# Per logged key, the log position its dirty row is ordered by (NULL: no dirty row): its first
# write; for a key the server never had, its first write after its last delete intent.
_STARTS: Final = (
    "WITH events AS (SELECT table_name, pk, seq, "
    "MAX(CASE WHEN intent = 1 THEN seq END) OVER (PARTITION BY table_name, pk) AS last_delete "
    "FROM _sync_capture_log), "
    "keys AS (SELECT table_name, pk, MIN(seq) AS first_seq, MAX(last_delete) AS last_delete, "
    "MIN(CASE WHEN seq > last_delete THEN seq END) AS after_delete "
    "FROM events GROUP BY table_name, pk), "
    "starts AS MATERIALIZED (SELECT table_name, pk, CASE WHEN last_delete IS NULL OR "
    f"{_known('k')} THEN first_seq ELSE after_delete END AS start FROM keys AS k) "
)
# The same when the log holds no delete intent (inserts and updates: one sort, not two).
_STARTS_TOUCHED: Final = (
    "WITH starts AS (SELECT table_name, pk, MIN(seq) AS start FROM _sync_capture_log "
    "GROUP BY table_name, pk) "
)
# New dirty rows are numbered after the existing ones by log position (gaps do not matter).
_ADD: Final = (
    "INSERT INTO _sync_dirty_rows (table_name, pk, base_row_version, dirty_ordinal) "
    "SELECT table_name, pk, COALESCE((SELECT row_version FROM _sync_row_state AS s "
    "WHERE s.table_name = t.table_name AND s.pk = t.pk), 0), ? + start "
    "FROM starts AS t WHERE start IS NOT NULL ON CONFLICT (table_name, pk) DO NOTHING"
)

PENDING_SQL: Final = (
    "WITH keys AS (SELECT table_name, pk, MAX(seq) AS last_seq, "
    "MAX(CASE WHEN intent = 1 THEN seq END) AS last_delete "
    "FROM _sync_capture_log GROUP BY table_name, pk), "
    "outcome AS (SELECT EXISTS (SELECT 1 FROM _sync_dirty_rows AS d "
    "WHERE d.table_name = k.table_name AND d.pk = k.pk) AS dirty, "
    f"(last_delete IS NULL OR last_delete < last_seq OR {_known('k')}) AS present "
    "FROM keys AS k) "
    "SELECT (SELECT COUNT(*) FROM _sync_dirty_rows) + (SELECT COUNT(*) FROM _sync_outbox_rows) "
    "+ COALESCE((SELECT SUM(present AND NOT dirty) - SUM(dirty AND NOT present) FROM outcome), 0)"
)
"""Rows waiting to be pushed (dirty rows after a fold, plus frozen rows): a read, no write."""


def fold_capture_log(conn: sqlite3.Connection) -> int:
    """Fold the capture log into the dirty rows (inside the caller's write transaction).

    Returns the number of log rows folded (0: the log was empty, nothing written).
    """
    if conn.execute("SELECT 1 FROM _sync_capture_log LIMIT 1").fetchone() is None:
        return 0
    starts = _STARTS_TOUCHED
    if conn.execute("SELECT 1 FROM _sync_capture_log WHERE intent = 1 LIMIT 1").fetchone():
        conn.execute(_DROP_UNKNOWN)
        starts = _STARTS
    last = conn.execute("SELECT COALESCE(MAX(dirty_ordinal), 0) FROM _sync_dirty_rows")
    conn.execute(starts + _ADD, (last.fetchone()[0],))
    return conn.execute("DELETE FROM _sync_capture_log").rowcount
