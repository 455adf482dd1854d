"""The durable outbox: the one frozen bundle being pushed.

Freezing turns dirty keys into push rows in one transaction: the op comes from the live row and
the row state (no live row: DELETE; live row and a live row state: UPDATE; else INSERT), the
payload is the live row now. Upserts go parents first, deletes children first (table FK order,
then first-touch order). The bundle keeps its ``source_bundle_id`` until its committed replay,
so a crash at any point resends the same bundle, and the server answers ``already_committed``
if it had it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from oversqlite._apply import dumps, live_payload
from oversqlite._config import KeyKind
from oversqlite._errors import ConfigError
from oversqlite._schema import TableInfo, quote_ident, quote_literal
from oversqlite._store import UNHEX, atomic, register_functions

__all__ = [
    "Outbox",
    "OutboxRow",
    "clear",
    "exists",
    "freeze",
    "load",
    "mark_committed",
    "unfreeze",
]


@dataclass(frozen=True)
class OutboxRow:
    ordinal: int
    table: str
    pk: str
    op: str
    base_row_version: int
    payload: dict[str, Any] | None
    """The wire payload as frozen (``None`` for DELETE)."""


@dataclass(frozen=True)
class Outbox:
    state: str
    """``prepared`` (maybe not on the server yet) or ``committed`` (the server has it)."""
    source_id: str
    source_bundle_id: int
    rows: tuple[OutboxRow, ...]
    bundle_seq: int
    bundle_hash: str
    committed_row_count: int

    @property
    def committed(self) -> bool:
        return self.state == "committed"


def exists(conn: sqlite3.Connection) -> bool:
    """Whether a frozen bundle is waiting (cheaper than `load`)."""
    return conn.execute("SELECT 1 FROM _sync_outbox").fetchone() is not None


def load(conn: sqlite3.Connection) -> Outbox | None:
    header = conn.execute(
        "SELECT state, source_id, source_bundle_id, bundle_seq, bundle_hash, committed_row_count "
        "FROM _sync_outbox"
    ).fetchone()
    if header is None:
        return None
    rows = tuple(
        OutboxRow(o, t, pk, op, base, None if p is None else json.loads(p))
        for o, t, pk, op, base, p in conn.execute(
            "SELECT row_ordinal, table_name, pk, op, base_row_version, payload "
            "FROM _sync_outbox_rows ORDER BY row_ordinal"
        )
    )
    state, source_id, source_bundle_id, bundle_seq, bundle_hash, committed_rows = header
    return Outbox(state, source_id, source_bundle_id, rows, bundle_seq, bundle_hash, committed_rows)


def _case(tables: Mapping[str, TableInfo], value: Callable[[TableInfo], str]) -> str:
    whens = " ".join(f"WHEN {quote_literal(name)} THEN {value(t)}" for name, t in tables.items())
    return f"CASE d.table_name {whens} END"


def _live_sql(table: TableInfo) -> str:
    """SQL: whether the live row of the dirty key ``d.pk`` exists (an index probe)."""
    key = f"{UNHEX}(d.pk)" if table.key_kind is KeyKind.BLOB_UUID else "d.pk"
    return f"EXISTS (SELECT 1 FROM {table.sql_name} WHERE {quote_ident(table.key.name)} = {key})"


_SYNCED_LIVE = (
    "EXISTS (SELECT 1 FROM _sync_row_state AS r "
    "WHERE r.table_name = d.table_name AND r.pk = d.pk AND r.deleted = 0)"
)


def freeze(
    conn: sqlite3.Connection,
    tables: Mapping[str, TableInfo],
    source_id: str,
    source_bundle_id: int,
    *,
    max_rows: int = 0,
) -> Outbox | None:
    """Return the frozen outbox, freezing the dirty rows first if there is none.

    ``None`` when nothing is pending. Dirty rows that turn out to be no-ops (a key deleted
    locally that the server never had) are dropped, and that cleanup is committed. With
    ``max_rows`` (the smallest of the server's ``max_rows_per_bundle`` and the client's cap),
    the first ``max_rows`` rows in push order are frozen and the rest stay pending for the next
    bundle (parents still go first). The push order is computed by SQLite, and only the frozen
    rows' payloads are read, so memory is bounded by ``max_rows`` whatever is pending.
    """
    with atomic(conn):
        existing = load(conn)
        if existing is not None:
            return existing
        register_functions(conn)
        names = ", ".join(quote_literal(name) for name in tables)
        unmanaged = conn.execute(
            f"SELECT table_name FROM _sync_dirty_rows WHERE table_name NOT IN ({names}) LIMIT 1"
        ).fetchone()
        if unmanaged is not None:
            raise ConfigError(
                f"pending changes exist for table {unmanaged[0]!r}, which is not managed; "
                "add it back to the config"
            )
        live = _case(tables, _live_sql)
        conn.execute(f"DELETE FROM _sync_dirty_rows AS d WHERE NOT {live} AND NOT {_SYNCED_LIVE}")
        order = _case(tables, lambda t: str(t.order))
        plan = conn.execute(
            "SELECT table_name, pk, base_row_version, synced_live FROM ("
            f"SELECT d.table_name, d.pk, d.base_row_version, d.dirty_ordinal, {order} AS rank, "
            f"{live} AS live, {_SYNCED_LIVE} AS synced_live FROM _sync_dirty_rows AS d) "
            "ORDER BY NOT live, CASE WHEN live THEN rank ELSE -rank END, dirty_ordinal LIMIT ?",
            (max_rows or -1,),
        )
        batch: list[tuple[int, str, str, str, int, str | None]] = []
        count = 0
        for table_name, pk, base, synced_live in plan:
            payload = live_payload(conn, tables[table_name], pk)
            op = "DELETE" if payload is None else ("UPDATE" if synced_live else "INSERT")
            batch.append((count, table_name, pk, op, base, dumps(payload)))
            count += 1
            if len(batch) >= _BATCH:
                _insert_rows(conn, batch)
        _insert_rows(conn, batch)
        if not count:
            return None
        conn.execute(
            "DELETE FROM _sync_dirty_rows WHERE EXISTS (SELECT 1 FROM _sync_outbox_rows AS o "
            "WHERE o.table_name = _sync_dirty_rows.table_name AND o.pk = _sync_dirty_rows.pk)"
        )
        conn.execute(
            "INSERT INTO _sync_outbox (singleton, state, source_id, source_bundle_id, row_count) "
            "VALUES (1, 'prepared', ?, ?, ?)",
            (source_id, source_bundle_id, count),
        )
        outbox = load(conn)
    return outbox


_BATCH = 1000


def _insert_rows(
    conn: sqlite3.Connection, batch: list[tuple[int, str, str, str, int, str | None]]
) -> None:
    conn.executemany(
        "INSERT INTO _sync_outbox_rows (row_ordinal, table_name, pk, op, base_row_version, "
        "payload) VALUES (?, ?, ?, ?, ?, ?)",
        batch,
    )
    batch.clear()


def mark_committed(conn: sqlite3.Connection, bundle_seq: int, bundle_hash: str, rows: int) -> None:
    conn.execute(
        "UPDATE _sync_outbox SET state = 'committed', bundle_seq = ?, bundle_hash = ?, "
        "committed_row_count = ?",
        (bundle_seq, bundle_hash, rows),
    )


def clear(conn: sqlite3.Connection) -> None:
    conn.execute("DELETE FROM _sync_outbox_rows")
    conn.execute("DELETE FROM _sync_outbox")


def unfreeze(conn: sqlite3.Connection, skip: tuple[str, str] | None = None) -> None:
    """Move the frozen rows back to the dirty rows (keeping their bases) and clear the outbox.

    A key edited since the freeze already has a dirty row, which is kept. ``skip`` names one key
    whose dirty row the caller handles itself.
    """
    conn.execute(
        "INSERT INTO _sync_dirty_rows (table_name, pk, base_row_version, dirty_ordinal) "
        "SELECT table_name, pk, base_row_version, "
        "(SELECT COALESCE(MAX(dirty_ordinal), 0) FROM _sync_dirty_rows) + row_ordinal + 1 "
        "FROM _sync_outbox_rows WHERE NOT (table_name IS ? AND pk IS ?) "
        "ON CONFLICT (table_name, pk) DO NOTHING",
        skip or (None, None),
    )
    clear(conn)
