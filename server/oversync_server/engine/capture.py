"""Bundle capture: one committed business transaction becomes exactly one bundle (server.md §2).

Every registered table carries two row triggers (`engine/ddl.py`): an owner guard that refuses
writes without a bundle context and fills `_sync_scope_id`, and a capture trigger that appends
each row change (cascades and trigger-made writes included) to `sync.bundle_capture_stage`.
`bundle_transaction` sets the context and, when the business SQL is done, turns the staged
changes into the bundle. Both the push commit and server-originated writes use it:

    async with user_lock(runtime.pool, user_id) as conn, conn.transaction():
        scope = await lock_scope(conn, user_id)
        await sources.require_next(conn, user_id=user_id, user_pk=scope.user_pk,
                                   source_id=source_id, source_bundle_id=source_bundle_id)
        async with bundle_transaction(
            conn, catalog, config, user_id=user_id, user_pk=scope.user_pk,
            source_id=source_id, source_bundle_id=source_bundle_id,
        ) as capture:
            await conn.execute("INSERT INTO business.users (id, name) VALUES ($1, $2)", ...)
        bundle = capture.bundle          # CommittedBundle, or None if nothing was captured

The caller owns the transaction and the user lock and has checked the source. On a normal exit
of the block the finalizer, still inside the caller's transaction:

1. takes the staged changes of this transaction (`DELETE ... RETURNING`) and coalesces them per
   (table, key): INSERT..DELETE vanishes, X..DELETE is DELETE, INSERT..X is INSERT, otherwise
   UPDATE, with the last after-image; rows keep their first capture position;
2. allocates the user's next gapless `bundle_seq` (a row update, so a rollback undoes it);
3. builds the wire payloads (Go-canonical JSON with exact integers, bytea as base64, see
   `values.exact_json`), `bundle_hash` and `byte_count` with `oversync_wire`;
4. in one statement: the `bundle_log` row, all `bundle_rows` (unnest arrays), the `row_state`
   upserts (tombstones for deletes), the source's new watermark (`active`), the watch
   `pg_notify` (delivered only if the transaction commits) and the end of the bundle context
   (later writes to registered tables in this transaction are refused, not silently lost);
5. runs the retention step (`engine.retention.apply_retention`).

Statement budget, whatever the row count: 1 statement for the context, then 4 for the finalizer
(stage read, bundle_seq, persist, retention); 3 with retention off; 1 when nothing was captured.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from oversync_server.config import WATCH_NOTIFY_CHANNEL, ServiceConfig
from oversync_server.engine import retention, sources
from oversync_server.engine.catalog import Catalog, TableInfo
from oversync_server.engine.db import Connection
from oversync_server.engine.values import exact_json, wire_key, wire_payload_from_db_text
from oversync_wire import bundle_hash

OP_INSERT, OP_UPDATE, OP_DELETE = 1, 2, 3
OP_NAMES = {OP_INSERT: "INSERT", OP_UPDATE: "UPDATE", OP_DELETE: "DELETE"}
OP_CODES = {name: code for code, name in OP_NAMES.items()}

_GUCS = (
    "oversync.bundle_user_id",
    "oversync.bundle_user_pk",
    "oversync.bundle_source_id",
    "oversync.bundle_source_bundle_id",
    "oversync.bundle_initialization_id",
)

# Read the current values and, unless one conflicts, set all five transaction-locally: one round
# trip. The MATERIALIZED CTE is evaluated before the outer target list sets anything.
_SET_CONTEXT = (
    "WITH current AS MATERIALIZED (SELECT "
    + ", ".join(
        f"COALESCE(current_setting('{name}', true), '') AS c{i}" for i, name in enumerate(_GUCS)
    )
    + "), verdict AS MATERIALIZED (SELECT current.*, NOT ("
    + " OR ".join(f"(c{i} <> '' AND c{i} <> ${i + 1})" for i in range(len(_GUCS)))
    + ") AS ok FROM current) SELECT verdict.*, "
    + ", ".join(
        f"CASE WHEN ok THEN set_config('{name}', ${i + 1}, true) END"
        for i, name in enumerate(_GUCS)
    )
    + " FROM verdict"
)

_TAKE_STAGE = """
DELETE FROM sync.bundle_capture_stage
WHERE txid = txid_current() AND user_pk = $1
RETURNING capture_ordinal, table_id, op_code, key_bytes, payload_db::text
"""

_ALLOCATE_SEQ = """
UPDATE sync.user_state SET next_bundle_seq = next_bundle_seq + 1
WHERE user_pk = $1
RETURNING next_bundle_seq - 1
"""

_PERSIST = """
WITH log AS (
    INSERT INTO sync.bundle_log
        (user_pk, bundle_seq, source_id, source_bundle_id, row_count, byte_count, bundle_hash)
    VALUES ($1, $2, $3, $4, $5, $6, $7)
), persisted_rows AS (
    INSERT INTO sync.bundle_rows
        (user_pk, bundle_seq, row_ordinal, table_id, key_bytes, op_code, payload_wire)
    SELECT $1, $2, r.ordinal, r.table_id, r.key_bytes, r.op_code, r.payload::json
    FROM unnest($8::int4[], $9::bytea[], $10::int2[], $11::text[])
         WITH ORDINALITY AS r(table_id, key_bytes, op_code, payload, ordinal)
), states AS (
    INSERT INTO sync.row_state (user_pk, table_id, key_bytes, bundle_seq, deleted)
    SELECT $1, r.table_id, r.key_bytes, $2, r.op_code = 3
    FROM unnest($8::int4[], $9::bytea[], $10::int2[]) AS r(table_id, key_bytes, op_code)
    ON CONFLICT (user_pk, table_id, key_bytes)
    DO UPDATE SET bundle_seq = EXCLUDED.bundle_seq, deleted = EXCLUDED.deleted
), activated AS (
    INSERT INTO sync.source_state (user_pk, source_id, state, max_committed_source_bundle_id)
    VALUES ($1, $3, 'active', $4)
    ON CONFLICT (user_pk, source_id) DO UPDATE
    SET state = 'active',
        max_committed_source_bundle_id = EXCLUDED.max_committed_source_bundle_id,
        replaced_by_source_id = '', retirement_reason = ''
    WHERE sync.source_state.state <> 'retired'
    RETURNING 1
)
SELECT (SELECT count(*) FROM activated) AS activated,
       CASE WHEN $12::text <> '' THEN pg_notify($12, $13) END AS notified,
       set_config('oversync.bundle_user_id', '', true) AS context_closed
"""


class BundleContextError(RuntimeError):
    """The transaction already carries another bundle context (a programming error)."""


@dataclass(frozen=True, slots=True)
class BundleRow:
    """One row of a committed bundle, as stored and served."""

    table: TableInfo
    key_bytes: bytes
    op: str  # INSERT, UPDATE or DELETE
    payload: dict[str, Any] | None  # the wire payload; None for DELETE
    payload_text: str | None  # its canonical JSON text (what bundle_rows.payload_wire holds)

    def wire(self, row_version: int) -> dict[str, Any]:
        """The row as the wire (and the hash) sees it."""
        row: dict[str, Any] = {
            "schema": self.table.schema,
            "table": self.table.table,
            "key": wire_key(self.table, self.key_bytes),
            "op": self.op,
            "row_version": row_version,
        }
        if self.payload is not None:
            row["payload"] = self.payload
        return row


@dataclass(frozen=True, slots=True)
class CommittedBundle:
    """A bundle committed by this transaction (visible to others once it commits)."""

    user_pk: int
    bundle_seq: int
    source_id: str
    source_bundle_id: int
    row_count: int
    byte_count: int
    bundle_hash: str  # lowercase hex
    rows: tuple[BundleRow, ...]

    def wire_rows(self) -> list[dict[str, Any]]:
        return [row.wire(self.bundle_seq) for row in self.rows]


@dataclass(slots=True)
class BundleCapture:
    """What `bundle_transaction` yields; `bundle` is set when the block exits normally."""

    conn: Connection
    user_id: str
    user_pk: int
    source_id: str
    source_bundle_id: int
    bundle: CommittedBundle | None = field(default=None)


async def set_bundle_context(
    conn: Connection,
    *,
    user_id: str,
    user_pk: int,
    source_id: str,
    source_bundle_id: int,
    initialization_id: str | None = None,
) -> None:
    """Set the transaction-local bundle GUCs the triggers read (server.md §1.7)."""
    values = (user_id, str(user_pk), source_id, str(source_bundle_id), initialization_id or "")
    row = await conn.fetchrow(_SET_CONTEXT, *values)
    assert row is not None
    for name, value, current in zip(_GUCS, values, list(row)[: len(_GUCS)], strict=True):
        if current and current != value:
            raise BundleContextError(
                f"transaction already carries conflicting sync bundle context ({name})"
            )


@dataclass(slots=True)
class _Change:
    first_ordinal: int
    first_op: int
    last_op: int
    payload_text: str | None


def coalesce_changes(
    staged: list[tuple[int, int, int, bytes, str | None]],
) -> list[tuple[int, bytes, int, str | None]]:
    """Normalise staged `(ordinal, table_id, op, key_bytes, payload)` per (table, key).

    Returns `(table_id, key_bytes, op, payload)` in first-capture order (§2.2 step 3).
    """
    changes: dict[tuple[int, bytes], _Change] = {}
    for ordinal, table_id, op, key, payload in sorted(staged, key=lambda item: item[0]):
        change = changes.get((table_id, key))
        if change is None:
            changes[(table_id, key)] = _Change(ordinal, op, op, payload)
        else:
            change.last_op, change.payload_text = op, payload
    out: list[tuple[int, bytes, int, str | None]] = []
    for (table_id, key), change in sorted(
        changes.items(), key=lambda item: (item[1].first_ordinal, item[0][0], item[0][1])
    ):
        if change.last_op == OP_DELETE:
            if change.first_op == OP_INSERT:
                continue  # created and destroyed in the same transaction
            out.append((table_id, key, OP_DELETE, None))
        else:
            op = OP_INSERT if change.first_op == OP_INSERT else OP_UPDATE
            out.append((table_id, key, op, change.payload_text))
    return out


def _notify_payload(user_pk: int, bundle_seq: int, source_id: str, source_bundle_id: int) -> str:
    event: dict[str, Any] = {"user_pk": user_pk, "bundle_seq": bundle_seq}
    if source_id:  # Go omitempty
        event["source_id"] = source_id
    if source_bundle_id:
        event["source_bundle_id"] = source_bundle_id
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False)


async def finalize_bundle(
    conn: Connection,
    catalog: Catalog,
    config: ServiceConfig,
    *,
    user_id: str,
    user_pk: int,
    source_id: str,
    source_bundle_id: int,
) -> CommittedBundle | None:
    """Turn this transaction's captured changes into the committed bundle (see module doc)."""
    staged = await conn.fetch(_TAKE_STAGE, user_pk)
    changes = coalesce_changes([(r[0], r[1], r[2], bytes(r[3]), r[4]) for r in staged])
    if not changes:
        return None
    bundle_seq = await conn.fetchval(_ALLOCATE_SEQ, user_pk)
    if bundle_seq is None:
        raise RuntimeError(f"sync.user_state row {user_pk} is missing")

    rows: list[BundleRow] = []
    for table_id, key, op, text in changes:
        table = catalog.by_id(table_id)
        if text is None:
            rows.append(BundleRow(table, key, "DELETE", None, None))
            continue
        payload = wire_payload_from_db_text(table, text)
        canonical = exact_json(payload)
        rows.append(BundleRow(table, key, OP_NAMES[op], payload, canonical))
    digest, byte_count = bundle_hash(row.wire(bundle_seq) for row in rows)

    channel = WATCH_NOTIFY_CHANNEL if config.bundle_change_watch else ""
    result = await conn.fetchrow(
        _PERSIST,
        user_pk,
        bundle_seq,
        source_id,
        source_bundle_id,
        len(rows),
        byte_count,
        bytes.fromhex(digest),
        [row.table.table_id for row in rows],
        [row.key_bytes for row in rows],
        [OP_CODES[row.op] for row in rows],
        [row.payload_text for row in rows],
        channel,
        _notify_payload(user_pk, bundle_seq, source_id, source_bundle_id),
    )
    if result is None or result["activated"] != 1:
        state = await sources.load_source(conn, user_pk, source_id)
        raise sources.source_retired(
            user_id=user_id, source_id=source_id, replaced_by_source_id=state.replaced_by_source_id
        )
    await retention.apply_retention(conn, user_pk=user_pk, config=config)
    return CommittedBundle(
        user_pk=user_pk,
        bundle_seq=bundle_seq,
        source_id=source_id,
        source_bundle_id=source_bundle_id,
        row_count=len(rows),
        byte_count=byte_count,
        bundle_hash=digest,
        rows=tuple(rows),
    )


@asynccontextmanager
async def bundle_transaction(
    conn: Connection,
    catalog: Catalog,
    config: ServiceConfig,
    *,
    user_id: str,
    user_pk: int,
    source_id: str,
    source_bundle_id: int,
    initialization_id: str | None = None,
) -> AsyncIterator[BundleCapture]:
    """Run business SQL under a bundle context, then finalize it (see the module docstring).

    Must be entered inside a transaction on `conn`. An exception in the block skips the
    finalizer and propagates (the caller's transaction rolls back). Raises `SyncError`
    409 `source_retired` if the source was retired under the caller (it should be locked).
    """
    if not conn.is_in_transaction():
        raise BundleContextError("bundle_transaction needs an open transaction on the connection")
    await set_bundle_context(
        conn,
        user_id=user_id,
        user_pk=user_pk,
        source_id=source_id,
        source_bundle_id=source_bundle_id,
        initialization_id=initialization_id,
    )
    capture = BundleCapture(conn, user_id, user_pk, source_id, source_bundle_id)
    yield capture
    capture.bundle = await finalize_bundle(
        conn,
        catalog,
        config,
        user_id=user_id,
        user_pk=user_pk,
        source_id=source_id,
        source_bundle_id=source_bundle_id,
    )


__all__ = [
    "OP_CODES",
    "OP_NAMES",
    "BundleCapture",
    "BundleContextError",
    "BundleRow",
    "CommittedBundle",
    "bundle_transaction",
    "coalesce_changes",
    "finalize_bundle",
    "set_bundle_context",
]
