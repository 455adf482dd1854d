"""Snapshot sessions: download into a durable stage, then replace local state in one transaction.

Used for hydration (``remote_authoritative`` attach), after ``history_pruned``, by ``rebuild()``
and for source recovery. The stage is only trusted when it is complete; a partial download is
started over. Pending local changes can be preserved across the replacement: their current rows
are read before the wipe and written back after the snapshot, and their dirty rows are kept
(their bases are unchanged, so the next push detects conflicts with what the snapshot brought).

Every applied snapshot also settles the re-hydration marks of a local schema change
(``oversqlite._marks``): a pending row of a marked table writes back only the columns the app
wrote, so the server's values of newly added columns are not overwritten by local defaults.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from oversqlite import _marks, _outbox
from oversqlite._apply import delete_local, live_payload, row_state, set_row_state, write_local
from oversqlite._bundles import parse_snapshot_row
from oversqlite._context import Context
from oversqlite._errors import ProtocolError
from oversqlite._results import RestoreSummary
from oversqlite._store import apply_transaction, atomic, update_state

__all__ = ["Staged", "apply_staged", "download", "load_staged"]

logger = logging.getLogger("oversqlite")


@dataclass(frozen=True)
class Staged:
    snapshot_id: str
    snapshot_bundle_seq: int
    row_count: int


def _clear_stage(ctx: Context) -> None:
    ctx.conn.execute("DELETE FROM _sync_snapshot_rows")
    ctx.conn.execute("DELETE FROM _sync_snapshot")


def load_staged(ctx: Context) -> Staged | None:
    """The completely staged snapshot, if there is one."""
    row = ctx.conn.execute(
        "SELECT snapshot_id, snapshot_bundle_seq, row_count FROM _sync_snapshot WHERE complete = 1"
    ).fetchone()
    return None if row is None else Staged(*row)


def download(ctx: Context, source_id: str, *, replacement: tuple[str, str] | None = None) -> Staged:
    """Create a snapshot session and stage all of its rows (one transaction per chunk).

    ``replacement`` = (new source id, reason) asks the server to rotate this source. The session
    is deleted afterwards (best effort) whether or not the download succeeded.
    """
    with atomic(ctx.conn):
        _clear_stage(ctx)
    session = ctx.retry(
        "create_snapshot_session",
        lambda: ctx.api.create_snapshot(source_id, replacement=replacement),
    )
    seq, count = session.snapshot_bundle_seq, session.row_count
    if not session.snapshot_id or seq < 0 or count < 0 or (count > 0 and seq == 0):
        raise ProtocolError(f"invalid snapshot session {session.to_dict()!r}")
    try:
        with atomic(ctx.conn):
            ctx.conn.execute(
                "INSERT INTO _sync_snapshot (singleton, snapshot_id, snapshot_bundle_seq, "
                "row_count) VALUES (1, ?, ?, ?)",
                (session.snapshot_id, seq, count),
            )
        received = _download_rows(ctx, source_id, session.snapshot_id, seq)
        if received != count:
            raise ProtocolError(f"snapshot delivered {received} rows, announced {count}")
        with atomic(ctx.conn):
            ctx.conn.execute("UPDATE _sync_snapshot SET complete = 1")
    finally:
        ctx.api.delete_snapshot(source_id, session.snapshot_id)
    return Staged(session.snapshot_id, seq, count)


def _download_rows(ctx: Context, source_id: str, snapshot_id: str, seq: int) -> int:
    after = 0
    while True:
        request = partial(
            ctx.api.snapshot_chunk,
            source_id,
            snapshot_id,
            after=after,
            max_rows=ctx.config.snapshot_chunk_rows,
        )
        chunk = ctx.retry("get_snapshot_chunk", request)
        rows = chunk.rows
        if chunk.snapshot_id != snapshot_id or chunk.snapshot_bundle_seq != seq:
            raise ProtocolError("snapshot chunk does not belong to the requested session")
        if chunk.next_row_ordinal != after + len(rows) or (chunk.has_more and not rows):
            raise ProtocolError(
                f"snapshot chunk after {after}: next_row_ordinal {chunk.next_row_ordinal} "
                f"does not match {len(rows)} rows"
            )
        staged = []
        for offset, raw in enumerate(rows, start=1):
            row = parse_snapshot_row(ctx.tables, ctx.config.schema, raw, ctx.drift)
            if row is not None:
                staged.append(
                    (
                        after + offset,
                        row.table.name,
                        row.pk,
                        row.row_version,
                        json.dumps(row.payload),
                    )
                )
        with atomic(ctx.conn):
            ctx.conn.executemany(
                "INSERT INTO _sync_snapshot_rows (row_ordinal, table_name, pk, row_version, "
                "payload) VALUES (?, ?, ?, ?, ?)",
                staged,
            )
        after = chunk.next_row_ordinal
        if not chunk.has_more:
            return after


@dataclass(frozen=True)
class _Pending:
    table: str
    pk: str
    live: dict[str, Any] | None
    """The whole local row (None: a pending delete)."""
    written: dict[str, Any] | None
    """For a marked table: the part the app wrote (used when the server has the row)."""


def _preserve_pending(ctx: Context) -> list[_Pending]:
    conn = ctx.conn
    marks = _marks.load_marks(conn)
    added = _marks.baseline_columns(ctx.tables.values(), marks)
    out: list[_Pending] = []
    for name, pk in conn.execute("SELECT table_name, pk FROM _sync_dirty_rows").fetchall():
        table = ctx.tables[name]
        live = live_payload(conn, table, pk)
        written = None
        if live is not None and name in added:
            changed = _marks.changed_since_baseline(conn, table, pk, added[name])
            if changed is not None:
                dropped = {c.wire_name for c in added[name]} - changed
                written = {k: v for k, v in live.items() if k not in dropped}
        out.append(_Pending(name, pk, live, written))
    return out


def _rebase_on_own_commit(
    ctx: Context, committed: Mapping[tuple[str, str], Any], preserved: list[_Pending]
) -> None:
    """A pending row edited after its bundle was committed (the bundle since pruned) still
    has the base from before that commit; where the snapshot row is exactly what we committed,
    it is our version: rebase on it, so the edit does not conflict with its own commit. A row
    another device changed since keeps its old base (the next push raises the conflict)."""
    for pending in preserved:
        key = (pending.table, pending.pk)
        if key not in committed or committed[key] is None:
            continue
        table = ctx.tables[pending.table]
        state = row_state(ctx.conn, table.name, pending.pk)
        if state and live_payload(ctx.conn, table, pending.pk) == committed[key]:
            ctx.conn.execute(
                "UPDATE _sync_dirty_rows SET base_row_version = ? WHERE table_name = ? AND pk = ?",
                (state[0], *key),
            )


def apply_staged(
    ctx: Context,
    staged: Staged,
    *,
    keep_pending: bool,
    outbox: str,
    state: Mapping[str, Any],
) -> RestoreSummary:
    """Replace every managed table by the staged snapshot, in one transaction.

    ``keep_pending``: keep dirty rows and the local rows they point at; otherwise drop them.
    ``outbox``: ``"requeue"`` moves frozen rows back to the dirty rows (they were never
    committed), ``"drop"`` discards them (the snapshot already contains them). ``state`` holds
    further ``_sync_state`` updates made in the same transaction.
    """
    conn = ctx.conn
    with apply_transaction(conn):
        committed: dict[tuple[str, str], Any] = {}  # the dropped outbox: in the snapshot
        if outbox == "requeue":
            _outbox.unfreeze(conn)
        else:
            frozen = _outbox.load(conn)
            committed = {(r.table, r.pk): r.payload for r in frozen.rows} if frozen else {}
            _outbox.clear(conn)
        preserved = _preserve_pending(ctx) if keep_pending else []
        if not keep_pending:
            conn.execute("DELETE FROM _sync_dirty_rows")
        for table in reversed(ctx.tables.values()):  # children first: RESTRICT is not deferred
            conn.execute(f"DELETE FROM {table.sql_name}")
        conn.execute("DELETE FROM _sync_row_state")
        cursor = conn.execute(
            "SELECT table_name, pk, row_version, payload FROM _sync_snapshot_rows "
            "ORDER BY row_ordinal"
        )
        while batch := cursor.fetchmany(500):
            for table_name, pk, version, payload in batch:
                table = ctx.tables[table_name]
                try:
                    write_local(conn, table, pk, json.loads(payload))
                except ValueError as exc:
                    raise ProtocolError(
                        f"snapshot row does not fit the local schema: {exc}"
                    ) from None
                set_row_state(conn, table_name, pk, version, False)
        _rebase_on_own_commit(ctx, committed, preserved)
        for pending in preserved:
            table = ctx.tables[pending.table]
            if pending.live is None:
                delete_local(conn, table, pending.pk)
                continue
            payload = pending.live
            if pending.written is not None and row_state(conn, table.name, pending.pk):
                payload = pending.written  # the server's values of the new columns stay
            write_local(conn, table, pending.pk, payload)
        update_state(
            conn, last_bundle_seq_seen=staged.snapshot_bundle_seq, rebuild_required=0, **state
        )
        _clear_stage(ctx)
        marked = sorted(_marks.load_marks(conn))
        if marked:
            _marks.clear_marks(conn)
            _marks.reinstall_triggers(conn, ctx.tables.values())
            logger.info("re-hydrated %s after a local schema change", ", ".join(marked))
    logger.info(
        "snapshot applied: bundle_seq=%d rows=%d kept_pending=%d",
        staged.snapshot_bundle_seq,
        staged.row_count,
        len(preserved),
    )
    return RestoreSummary(staged.snapshot_bundle_seq, staged.row_count)
