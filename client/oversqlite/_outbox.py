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
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from oversqlite._apply import dumps, live_payload
from oversqlite._errors import ConfigError
from oversqlite._schema import TableInfo
from oversqlite._store import atomic

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


def _sort_key(table: TableInfo, op: str, ordinal: int) -> tuple[int, int, int]:
    if op == "DELETE":
        return (1, -table.order, ordinal)
    return (0, table.order, ordinal)


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
    ``max_rows`` (the server's ``max_rows_per_bundle``), the first ``max_rows`` rows in push
    order are frozen and the rest stay pending for the next bundle (parents still go first).
    """
    with atomic(conn):
        existing = load(conn)
        if existing is not None:
            return existing
        dirty = conn.execute(
            "SELECT d.table_name, d.pk, d.base_row_version, d.dirty_ordinal, r.deleted "
            "FROM _sync_dirty_rows AS d LEFT JOIN _sync_row_state AS r "
            "ON r.table_name = d.table_name AND r.pk = d.pk"
        ).fetchall()
        planned: list[tuple[tuple[int, int, int], str, str, str, int, dict[str, Any] | None]] = []
        noops: list[tuple[str, str]] = []
        for table_name, pk, base, ordinal, deleted in dirty:
            table = tables.get(table_name)
            if table is None:
                raise ConfigError(
                    f"pending changes exist for table {table_name!r}, which is not managed; "
                    "add it back to the config"
                )
            payload = live_payload(conn, table, pk)
            synced_live = deleted == 0
            if payload is None and not synced_live:
                noops.append((table_name, pk))
                continue
            op = "DELETE" if payload is None else ("UPDATE" if synced_live else "INSERT")
            planned.append((_sort_key(table, op, ordinal), table_name, pk, op, base, payload))
        conn.executemany("DELETE FROM _sync_dirty_rows WHERE table_name = ? AND pk = ?", noops)
        if not planned:
            return None
        planned.sort(key=lambda item: item[0])
        if max_rows:
            planned = planned[:max_rows]
        conn.executemany(
            "INSERT INTO _sync_outbox_rows (row_ordinal, table_name, pk, op, base_row_version, "
            "payload) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (ordinal, table, pk, op, base, dumps(payload))
                for ordinal, (_, table, pk, op, base, payload) in enumerate(planned)
            ],
        )
        conn.executemany(
            "DELETE FROM _sync_dirty_rows WHERE table_name = ? AND pk = ?",
            [(table, pk) for _, table, pk, _, _, _ in planned],
        )
        conn.execute(
            "INSERT INTO _sync_outbox (singleton, state, source_id, source_bundle_id, row_count) "
            "VALUES (1, 'prepared', ?, ?, ?)",
            (source_id, source_bundle_id, len(planned)),
        )
        outbox = load(conn)
    return outbox


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
