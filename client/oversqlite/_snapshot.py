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

import base64
import binascii
import logging
import sqlite3
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any

import orjson

from oversqlite import _marks, _outbox
from oversqlite._apply import (
    delete_local,
    live_payload,
    parse_server_row,
    row_state,
    write_local,
)
from oversqlite._codec import key_from_wire
from oversqlite._context import Context
from oversqlite._control import Phase
from oversqlite._errors import ProtocolError, ServerRejectedError
from oversqlite._results import RestoreSummary
from oversqlite._schema import TableInfo, quote_ident, quote_literal
from oversqlite._store import apply_transaction, atomic, update_state

__all__ = ["Staged", "apply_staged", "download", "load_staged"]

logger = logging.getLogger("oversqlite")


@dataclass(frozen=True)
class Staged:
    snapshot_id: str
    snapshot_bundle_seq: int
    row_count: int
    uniform: frozenset[str] = frozenset()
    """Tables whose staged rows all carry exactly the local columns (unknown after a restart:
    then every row is applied one by one)."""


def _clear_stage(ctx: Context) -> None:
    ctx.conn.execute("DELETE FROM _sync_snapshot_rows")
    ctx.conn.execute("DELETE FROM _sync_snapshot")


def load_staged(ctx: Context) -> Staged | None:
    """The completely staged snapshot, if there is one."""
    row = ctx.conn.execute(
        "SELECT snapshot_id, snapshot_bundle_seq, row_count FROM _sync_snapshot WHERE complete = 1"
    ).fetchone()
    return None if row is None else Staged(*row)


SESSION_RESTARTS = 2
"""New sessions a download starts when its session expires before the last page (its TTL ran
out, or a database crash emptied the server's pages)."""


def download(ctx: Context, source_id: str, *, replacement: tuple[str, str] | None = None) -> Staged:
    """Create a snapshot session and stage all of its rows (one transaction per page).

    ``replacement`` = (new source id, reason) asks the server to rotate this source. The session
    is deleted afterwards (best effort) whether or not the download succeeded. A session that
    expires part way is started over (``SESSION_RESTARTS`` times); with a replacement, which
    the first session's create already made, that is the caller's to retry.
    """
    restarts = 0 if replacement is not None else SESSION_RESTARTS
    while True:
        try:
            return _download_session(ctx, source_id, replacement)
        except ServerRejectedError as exc:
            if exc.code != "snapshot_session_expired" or restarts == 0:
                raise
            restarts -= 1
            logger.warning("snapshot session expired while downloading (%s); starting over", exc)


def _download_session(ctx: Context, source_id: str, replacement: tuple[str, str] | None) -> Staged:
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
        with _unsynced_commits(ctx.conn):
            with atomic(ctx.conn):
                ctx.conn.execute(
                    "INSERT INTO _sync_snapshot (singleton, snapshot_id, snapshot_bundle_seq, "
                    "row_count) VALUES (1, ?, ?, ?)",
                    (session.snapshot_id, seq, count),
                )
            stager = _Stager(ctx, count)
            received = _download_rows(ctx, source_id, session.snapshot_id, seq, stager)
        if received != count:
            raise ProtocolError(f"snapshot delivered {received} rows, announced {count}")
        with atomic(ctx.conn):
            ctx.conn.execute("UPDATE _sync_snapshot SET complete = 1")
    except BaseException:  # in the handler, so Ctrl-C and cancellation skip the DELETE
        ctx.api.delete_snapshot(source_id, session.snapshot_id)
        raise
    ctx.api.delete_snapshot(source_id, session.snapshot_id)
    return Staged(session.snapshot_id, seq, count, stager.uniform_columns())


_NORMAL = 1  # PRAGMA synchronous levels: OFF 0, NORMAL 1, FULL 2, EXTRA 3


@contextmanager
def _unsynced_commits(conn: sqlite3.Connection) -> Iterator[None]:
    """Stage pages with ``synchronous = NORMAL`` (in WAL mode: no fsync per commit, the file
    never corrupt; a power loss may roll back the last commits). A stage is only trusted once
    its ``complete`` mark commits, after this block, with the connection's own level, whose
    sync covers the staged pages before it; so a crash can only lose an untrusted partial
    stage, which is started over anyway."""
    level = int(conn.execute("PRAGMA synchronous").fetchone()[0])
    if level <= _NORMAL:
        yield
        return
    conn.execute(f"PRAGMA synchronous = {_NORMAL}")
    try:
        yield
    finally:
        conn.execute(f"PRAGMA synchronous = {level}")


class _Stager:
    """Validates snapshot rows and writes them into the stage, remembering per table whether
    every row carried exactly the local columns (then the apply can run in SQL alone)."""

    def __init__(self, ctx: Context, total: int) -> None:
        self.ctx = ctx
        self.total = total
        self.staged = 0
        self.columns = {name: table.wire_columns for name, table in ctx.tables.items()}
        self.uneven: set[str] = set()

    def stage(self, after: int, rows: list[Any]) -> None:
        ctx, tables, columns_of = self.ctx, self.ctx.tables, self.columns
        schema = ctx.config.schema
        staged = []
        dumps = orjson.dumps
        for ordinal, raw in enumerate(rows, start=after + 1):
            if not isinstance(raw, dict):
                raise ProtocolError(f"snapshot row {ordinal} is not an object")
            name, payload = raw.get("table"), raw.get("payload")
            if not isinstance(payload, dict):
                raise ProtocolError(f"snapshot row {ordinal} carries no payload object")
            columns = columns_of.get(name) if isinstance(name, str) else None
            if (
                isinstance(name, str)
                and columns is not None
                and raw.get("schema") == schema
                and payload.keys() == columns
            ):
                table = tables[name]  # the common case: nothing to fit
                version, key = raw.get("row_version"), raw.get("key")
                if type(version) is not int or version <= 0:
                    raise ProtocolError(f"snapshot row for {name} has row_version {version!r}")
                if not isinstance(key, dict):
                    raise ProtocolError(f"snapshot row for {name} has no key object")
                try:
                    pk = key_from_wire(table, key)
                except ValueError as exc:
                    raise ProtocolError(f"snapshot row key: {exc}") from None
                if payload[table.key.wire_name] != key[table.key.wire_name]:
                    raise ProtocolError(f"snapshot row for {name}: payload key differs from key")
                staged.append((ordinal, name, pk, version, dumps(payload).decode()))
                continue
            row = parse_server_row(
                ctx.tables,
                schema,
                row_schema=raw.get("schema"),
                table=name,
                key=raw.get("key"),
                op="INSERT",
                row_version=raw.get("row_version"),
                payload=payload,
                drift=ctx.drift,
            )
            if row is not None:
                self.uneven.add(row.table.name)
                staged.append(
                    (
                        ordinal,
                        row.table.name,
                        row.pk,
                        row.row_version,
                        orjson.dumps(row.payload).decode(),
                    )
                )
        with atomic(ctx.conn):
            ctx.conn.executemany(
                "INSERT INTO _sync_snapshot_rows (row_ordinal, table_name, pk, row_version, "
                "payload) VALUES (?, ?, ?, ?, ?)",
                staged,
            )
        self.staged = after + len(rows)
        ctx.control.report(Phase.SNAPSHOT_DOWNLOAD, self.staged, self.total)

    def uniform_columns(self) -> frozenset[str]:
        return frozenset(set(self.ctx.tables) - self.uneven)


def _checked_page(page: dict[str, Any], snapshot_id: str, seq: int, after: int) -> list[Any]:
    rows = page.get("rows")
    next_ordinal = page.get("next_row_ordinal")
    has_more = page.get("has_more")
    if page.get("snapshot_id") != snapshot_id or page.get("snapshot_bundle_seq") != seq:
        raise ProtocolError("snapshot chunk does not belong to the requested session")
    if not isinstance(rows, list) or not isinstance(has_more, bool):
        raise ProtocolError(f"snapshot chunk after {after} is malformed")
    if next_ordinal != after + len(rows) or (has_more and not rows):
        raise ProtocolError(
            f"snapshot chunk after {after}: next_row_ordinal {next_ordinal} "
            f"does not match {len(rows)} rows"
        )
    return rows


def _download_rows(
    ctx: Context, source_id: str, snapshot_id: str, seq: int, stager: _Stager
) -> int:
    """Fetch and stage every page; the next page is fetched while this one is staged."""

    def fetch(after: int) -> dict[str, Any]:
        request = partial(
            ctx.api.snapshot_chunk_json,
            source_id,
            snapshot_id,
            after=after,
            max_rows=ctx.config.snapshot_chunk_rows,
        )
        return ctx.retry("get_snapshot_chunk", request)

    after = 0
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="oversqlite-snapshot") as pool:
        page = fetch(after)
        while True:
            rows = _checked_page(page, snapshot_id, seq, after)
            following: Future[dict[str, Any]] | None = None
            if page["has_more"]:
                following = pool.submit(fetch, after + len(rows))
            try:
                stager.stage(after, rows)
            except BaseException:
                if following is not None:
                    following.cancel()
                raise
            after += len(rows)
            if following is None:
                return after
            ctx.control.check()  # a safe point between pages (the stage restarts anyway)
            page = following.result()


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
        _write_staged(ctx, staged)
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


APPLY_BATCH_ROWS = 20_000
"""Staged rows per apply step (one progress report each; all in the one transaction)."""


def _write_staged(ctx: Context, staged: Staged) -> None:
    """Write the staged rows into the (emptied) managed tables and their row state.

    The inserts go in row ordinal order (so a later staged row still wins). Snapshots are
    numbered in key order per table, which is SQLite's order of the key strings too, so the
    key indexes are appended to without sorting the stage first."""
    conn = ctx.conn
    _register_decoders(conn)
    conn.execute(
        "INSERT INTO _sync_row_state (table_name, pk, row_version, deleted) "
        "SELECT table_name, pk, row_version, 0 FROM _sync_snapshot_rows WHERE true "
        "ORDER BY row_ordinal ON CONFLICT (table_name, pk) DO UPDATE SET "
        "row_version = excluded.row_version, deleted = 0"
    )
    bulk = {name: _bulk_insert_sql(table) for name, table in ctx.tables.items()}
    done = 0
    for low in range(1, staged.row_count + 1, APPLY_BATCH_ROWS):
        high = low + APPLY_BATCH_ROWS - 1
        for name, table in ctx.tables.items():
            if name in staged.uniform:
                try:
                    conn.execute(bulk[name], (name, low, high))
                except sqlite3.OperationalError as exc:
                    if "user-defined function" not in str(exc):
                        raise
                    raise ProtocolError(f"snapshot row of {name} has an invalid BLOB") from None
                continue
            cursor = conn.execute(
                "SELECT pk, payload FROM _sync_snapshot_rows "
                "WHERE table_name = ? AND row_ordinal BETWEEN ? AND ? ORDER BY row_ordinal",
                (name, low, high),
            )
            for pk, payload in cursor.fetchall():
                try:
                    write_local(conn, table, pk, orjson.loads(payload))
                except ValueError as exc:
                    raise ProtocolError(
                        f"snapshot row does not fit the local schema: {exc}"
                    ) from None
        done = min(high, staged.row_count)
        ctx.control.report(Phase.SNAPSHOT_APPLY, done, staged.row_count)


def _bulk_insert_sql(table: TableInfo) -> str:
    """``INSERT ... SELECT`` of one table's staged rows, decoded by SQLite's JSON functions."""
    names, values = [], []
    for column in table.columns:
        path = "$." + '"' + column.wire_name.replace('"', '""') + '"'
        extract = f"json_extract(payload, {quote_literal(path)})"
        if column.uuid_blob:
            extract = f"oversqlite_uuid_blob({extract})"
        elif column.is_blob:
            extract = f"oversqlite_base64_blob({extract})"
        names.append(quote_ident(column.name))
        values.append(extract)
    others = [n for n in names if n != quote_ident(table.key.name)]
    conflict = (
        "DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in others)
        if others
        else "DO NOTHING"
    )
    return (
        f"INSERT INTO {table.sql_name} ({', '.join(names)}) SELECT {', '.join(values)} "
        "FROM _sync_snapshot_rows WHERE table_name = ? AND row_ordinal BETWEEN ? AND ? "
        f"ORDER BY row_ordinal ON CONFLICT ({quote_ident(table.key.name)}) {conflict}"
    )


def _base64_blob(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a base64 string, got {value!r}")
    try:
        raw = base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64: {exc}") from None
    if base64.b64encode(raw).decode("ascii") != value:
        raise ValueError("base64 is not canonical padded standard base64")
    return raw


def _uuid_blob(value: object) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError(f"expected a UUID string, got {value!r}")
    parsed = uuid.UUID(value)
    if str(parsed) != value:
        raise ValueError(f"{value!r} is not a canonical lowercase dashed UUID")
    return parsed.bytes


def _register_decoders(conn: sqlite3.Connection) -> None:
    conn.create_function("oversqlite_base64_blob", 1, _base64_blob, deterministic=True)
    conn.create_function("oversqlite_uuid_blob", 1, _uuid_blob, deterministic=True)
