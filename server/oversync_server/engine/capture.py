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

1. reads the staged changes of this transaction and coalesces them per (table, key):
   INSERT..DELETE vanishes, X..DELETE is DELETE, INSERT..X is INSERT, otherwise UPDATE, with
   the last after-image; rows keep their first capture position (skipped when the block set
   `capture.coalesced`: it captured every change itself, each key once, in order); the same
   read returns the user's next `bundle_seq`;
2. builds the wire payloads (Go-canonical JSON with exact integers, bytea as base64),
   `bundle_hash` and `byte_count`, once per row (`engine.bundle_encoding`);
3. in one statement: the `bundle_log` row, all `bundle_rows` (unnest arrays), the `row_state`
   upserts (tombstones for deletes), the gapless `bundle_seq` allocation (a row update, so a
   rollback undoes it; refused if another writer took the number) with the retention step
   (`engine.retention.advance_sql`) in the same update, the source's new watermark (`active`),
   the watch `pg_notify` (delivered only if the transaction commits) and the end of the bundle
   context (later writes to registered tables in this transaction are refused, not silently
   lost).

Statement budget: 1 statement for the context (none when the caller set it:
`context_set`), then 2 for the finalizer of a bundle of up to `FINALIZE_BATCH_ROWS` rows (stage
read, persist; with `capture.coalesced` the read is of the bundle_seq alone); 1 when nothing was
captured. A larger bundle costs a cursor (2) and one persist statement per batch more.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from oversync_server.config import WATCH_NOTIFY_CHANNEL, ServiceConfig
from oversync_server.engine import retention, sources
from oversync_server.engine.bundle_encoding import BundleEncoder
from oversync_server.engine.catalog import Catalog
from oversync_server.engine.db import Connection
from oversync_server.engine.ddl import CAPTURE_DIRECT_GUC, DIRECT_STAGE
from oversync_server.engine.errors import SyncError

OP_INSERT, OP_UPDATE, OP_DELETE = 1, 2, 3
OP_NAMES = {OP_INSERT: "INSERT", OP_UPDATE: "UPDATE", OP_DELETE: "DELETE"}
OP_CODES = {name: code for code, name in OP_NAMES.items()}
# One coalesced row as `_COALESCED_STAGE` yields it: table_id, key_bytes, op_code, payload text
# (None for a delete) and the bundle's row count (the stage read adds the next bundle_seq).
CoalescedRow = tuple[int, bytes, int, str | None, int]

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

# This transaction's staged changes, coalesced per (table, key) in first-capture order, with
# their count (every row carries it; the sort needs the whole set anyway). `{rows}` is the stage.
_COALESCE_TEMPLATE = """
SELECT c.table_id, c.key_bytes,
       CASE WHEN c.last_op = 3 THEN 3 WHEN c.first_op = 1 THEN 1 ELSE 2 END AS op_code,
       CASE WHEN c.last_op = 3 THEN NULL ELSE c.last_payload::text END AS payload,
       count(*) OVER () AS total,
       (SELECT next_bundle_seq FROM sync.user_state WHERE user_pk = $1) AS next_seq
FROM (
    SELECT table_id, key_bytes, min(capture_ordinal) AS first_ordinal,
           (array_agg(op_code ORDER BY capture_ordinal))[1] AS first_op,
           (array_agg(op_code ORDER BY capture_ordinal DESC))[1] AS last_op,
           (array_agg(payload_db ORDER BY capture_ordinal DESC))[1] AS last_payload
    FROM ({rows}) AS staged
    GROUP BY table_id, key_bytes
) c
WHERE NOT (c.first_op = 1 AND c.last_op = 3)
ORDER BY c.first_ordinal
"""
_TRIGGER_STAGE = """
    SELECT capture_ordinal, table_id, key_bytes, op_code, payload_db
    FROM sync.bundle_capture_stage WHERE txid = txid_current() AND user_pk = $1"""
_COALESCED_STAGE = _COALESCE_TEMPLATE.format(rows=_TRIGGER_STAGE)
# ... and with the rows the push commit's apply statements staged themselves (ddl.DIRECT_STAGE).
_COALESCED_STAGES = _COALESCE_TEMPLATE.format(
    rows=_TRIGGER_STAGE
    + f" UNION ALL SELECT capture_ordinal, table_id, key_bytes, op_code, payload_db FROM {DIRECT_STAGE}"
)

_DROP_STAGE = """
DELETE FROM sync.bundle_capture_stage WHERE txid = txid_current() AND user_pk = $1
"""

_NEXT_SEQ = "SELECT next_bundle_seq FROM sync.user_state WHERE user_pk = $1"

_LOG_COLUMNS = (
    "(user_pk, bundle_seq, source_id, source_bundle_id, row_count, byte_count, bundle_hash)"
)


def _rows_ctes(offset: str, first_array: int) -> str:
    """CTEs writing one batch's `bundle_rows` and `row_state` upserts (tombstones for deletes);
    $1 is the user_pk, $2 the bundle_seq, `offset` the batch's first row_ordinal - 1, and the
    four row arrays are the parameters from `$first_array` on."""
    arrays = [f"${first_array + i}" for i in range(4)]
    table_ids, keys, ops, payloads = arrays
    return f"""persisted_rows AS (
    INSERT INTO sync.bundle_rows
        (user_pk, bundle_seq, row_ordinal, table_id, key_bytes, op_code, payload_wire)
    SELECT $1, $2, {offset} + r.ordinal, r.table_id, r.key_bytes, r.op_code, r.payload::json
    FROM unnest({table_ids}::int4[], {keys}::bytea[], {ops}::int2[], {payloads}::text[])
         WITH ORDINALITY AS r(table_id, key_bytes, op_code, payload, ordinal)
), states AS (
    INSERT INTO sync.row_state (user_pk, table_id, key_bytes, bundle_seq, deleted)
    SELECT $1, r.table_id, r.key_bytes, $2, r.op_code = 3
    FROM unnest({table_ids}::int4[], {keys}::bytea[], {ops}::int2[]) AS r(table_id, key_bytes, op_code)
    ON CONFLICT (user_pk, table_id, key_bytes)
    DO UPDATE SET bundle_seq = EXCLUDED.bundle_seq, deleted = EXCLUDED.deleted
)"""


def _finish(keep: int) -> str:
    """The end of every bundle, after its log CTE: $1 user_pk, $2 bundle_seq, $3 source_id,
    $4 source_bundle_id, $8 the notify channel ('' = off), $9 its payload, ${keep} and
    ${keep + 1} the retention's keep and batch. Allocates the bundle_seq (only if it is still
    the user's next: else `advanced` is 0), runs the retention step (`retention.advance_sql`),
    activates the source, drops the stage rows, notifies watchers on COMMIT and closes the
    bundle context."""
    return (
        ", "
        + retention.advance_sql(keep=f"${keep}::bigint", batch=f"${keep + 1}::bigint")
        + _FINISH_REST
    )


_FINISH_REST = (
    """, activated AS (
    INSERT INTO sync.source_state (user_pk, source_id, state, max_committed_source_bundle_id)
    VALUES ($1, $3, 'active', $4)
    ON CONFLICT (user_pk, source_id) DO UPDATE
    SET state = 'active',
        max_committed_source_bundle_id = EXCLUDED.max_committed_source_bundle_id,
        replaced_by_source_id = '', retirement_reason = ''
    WHERE sync.source_state.state <> 'retired'
    RETURNING 1
), dropped_stage AS (
    DELETE FROM sync.bundle_capture_stage WHERE txid = txid_current() AND user_pk = $1
)
SELECT (SELECT count(*) FROM activated) AS activated,
       (SELECT count(*) FROM advanced) AS advanced,
       CASE WHEN $8::text <> '' THEN pg_notify($8, $9) END AS notified,
       set_config('oversync.bundle_user_id', '', true) AS context_closed,
       set_config('"""
    + CAPTURE_DIRECT_GUC
    + """', '', true) AS direct_closed
"""
)
_INSERT_LOG = f"""log AS (
    INSERT INTO sync.bundle_log {_LOG_COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7)
)"""

# A bundle of one batch: everything in one statement ($10-$13 the rows).
_PERSIST_ALL = f"WITH {_INSERT_LOG}, {_rows_ctes('0', 10)}{_finish(14)}"
# A bundle of several batches: the first inserts the log row the rows reference (its hash is set
# at the end; $5 row_count, $6 byte_count 0, $7 an empty hash, $8-$11 the rows) ...
_PERSIST_FIRST = f"WITH {_INSERT_LOG}, {_rows_ctes('0', 8)} SELECT 1"
# ... the next ones only write rows ($3 the ordinal offset, $4-$7 the rows) ...
_PERSIST_MORE = f"WITH {_rows_ctes('$3', 4)} SELECT 1"
# ... and the end sets the hash.
_FINISH_SEVERAL = (
    "WITH log AS (UPDATE sync.bundle_log SET row_count = $5, byte_count = $6, bundle_hash = $7"
    " WHERE user_pk = $1 AND bundle_seq = $2 AND source_id = $3 AND source_bundle_id = $4)"
    + _finish(10)
)

# Rows per batch of the streamed finalizer: bounds the Python memory of any bundle.
FINALIZE_BATCH_ROWS = 2000
_FIRST_BATCH = f" LIMIT {FINALIZE_BATCH_ROWS}"


class BundleContextError(RuntimeError):
    """The transaction already carries another bundle context (a programming error)."""


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


@dataclass(slots=True)
class BundleCapture:
    """What `bundle_transaction` yields; `bundle` is set when the block exits normally."""

    conn: Connection
    user_id: str
    user_pk: int
    source_id: str
    source_bundle_id: int
    bundle: CommittedBundle | None = field(default=None)
    # Set by a block that captured its changes itself, already coalesced and in bundle order
    # (the push commit's collected apply, `push_commit`): the finalizer then skips the stages.
    coalesced: list[CoalescedRow] | None = field(default=None)


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


def context_columns(values: tuple[str, str, str, str, str], when: str) -> str:
    """Select-list items setting the bundle context (`set_bundle_context`: user id, user_pk,
    source id, source_bundle_id, initialization id or '') to these SQL text expressions when
    `when` holds: a statement the caller runs anyway sets it (`bundle_transaction`'s
    `context_set`), which must be the first to set it in the transaction."""
    return ", ".join(
        f"CASE WHEN {when} THEN set_config('{name}', {value}, true) END AS bundle_context_{i}"
        for i, (name, value) in enumerate(zip(_GUCS, values, strict=True))
    )


# json.dumps(..., separators=(",", ":"), ensure_ascii=False) without a new encoder per call
_compact_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _notify_payload(user_pk: int, bundle_seq: int, source_id: str, source_bundle_id: int) -> str:
    event: dict[str, Any] = {"user_pk": user_pk, "bundle_seq": bundle_seq}
    if source_id:  # Go omitempty
        event["source_id"] = source_id
    if source_bundle_id:
        event["source_bundle_id"] = source_bundle_id
    return _compact_json(event)


def bundle_too_large(rows: int, limit: int) -> SyncError:
    return SyncError(
        "push_commit_invalid",
        f"the bundle would hold {rows} rows (cascades and trigger writes included), more than"
        f" max_rows_per_bundle {limit}; split the change into smaller bundles",
    )


_BatchArrays = tuple[list[int], list[bytes], list[int], list[str | None]]


def _encode_batch(catalog: Catalog, records: list[Any], encoder: BundleEncoder) -> _BatchArrays:
    """The row arrays (`_rows_ctes`) of one batch of `_COALESCED_STAGE` rows, each row's wire
    form hashed in order."""
    table_ids: list[int] = []
    keys: list[bytes] = []
    op_codes: list[int] = []
    payloads: list[str | None] = []
    add = encoder.add
    by_id = catalog.by_id
    for table_id, key, op_code, text, *_counts in records:
        table_ids.append(table_id)
        keys.append(key)
        op_codes.append(op_code)
        payloads.append(add(by_id(table_id), key, op_code, text))
    return table_ids, keys, op_codes, payloads


async def finalize_bundle(
    conn: Connection,
    catalog: Catalog,
    config: ServiceConfig,
    *,
    user_id: str,
    user_pk: int,
    source_id: str,
    source_bundle_id: int,
    direct: bool = False,
    coalesced: list[CoalescedRow] | None = None,
) -> CommittedBundle | None:
    """Turn this transaction's captured changes into the committed bundle (see module doc);
    `direct`: the transaction has the push commit's direct stage (`ddl.DIRECT_STAGE`) too;
    `coalesced`: the changes, coalesced and in order, when the caller captured them all itself
    (the stages hold none: step 1 is skipped)."""
    fetch: Callable[[], Awaitable[list[Any]]]
    if coalesced is None:
        query = _COALESCED_STAGES if direct else _COALESCED_STAGE
        # one batch's rows (the usual case) in one round trip; a larger bundle is read again
        # through a cursor, batch by batch
        records = await conn.fetch(query + _FIRST_BATCH, user_pk)
        cursor = None

        async def fetch() -> list[Any]:
            nonlocal cursor
            if cursor is None:
                cursor = await conn.cursor(query, user_pk)
                await cursor.forward(FINALIZE_BATCH_ROWS)
            return await cursor.fetch(FINALIZE_BATCH_ROWS)
    else:
        starts = iter(range(0, len(coalesced), FINALIZE_BATCH_ROWS))

        async def fetch() -> list[Any]:
            start = next(starts, None)
            return [] if start is None else coalesced[start : start + FINALIZE_BATCH_ROWS]

        records = await fetch()
    if not records:
        await conn.execute(_DROP_STAGE, user_pk)
        return None
    total = int(records[0][4])
    limit = config.max_rows_per_bundle
    if limit and total > limit:
        raise bundle_too_large(total, limit)
    # the stage read carries the user's next bundle_seq; the bundle's statement allocates it
    # (`retention.advance_sql`)
    bundle_seq = records[0][5] if coalesced is None else await conn.fetchval(_NEXT_SEQ, user_pk)
    if bundle_seq is None:
        raise RuntimeError(f"sync.user_state row {user_pk} is missing")

    encoder = BundleEncoder(bundle_seq)
    channel = WATCH_NOTIFY_CHANNEL if config.bundle_change_watch else ""
    notify = _notify_payload(user_pk, bundle_seq, source_id, source_bundle_id)
    head = (user_pk, bundle_seq, source_id, source_bundle_id, total)
    retain = (config.retained_bundles_per_user, config.retention_prune_batch_size)
    if total <= len(records):  # one batch: one statement
        rows = _encode_batch(catalog, records, encoder)
        digest, byte_count = encoder.result()
        result = await conn.fetchrow(
            _PERSIST_ALL, *head, byte_count, bytes.fromhex(digest), channel, notify, *rows, *retain
        )
    else:
        written = 0
        while records:
            rows = _encode_batch(catalog, records, encoder)
            if written == 0:
                await conn.execute(_PERSIST_FIRST, *head, 0, b"", *rows)
            else:
                await conn.execute(_PERSIST_MORE, user_pk, bundle_seq, written, *rows)
            written += len(records)
            records = await fetch() if written < total else []
        if written != total:
            raise RuntimeError(f"captured {written} rows, expected {total}")
        digest, byte_count = encoder.result()
        result = await conn.fetchrow(
            _FINISH_SEVERAL, *head, byte_count, bytes.fromhex(digest), channel, notify, *retain
        )
    if result is None or result["activated"] != 1:
        state = await sources.load_source(conn, user_pk, source_id)
        raise sources.source_retired(
            user_id=user_id, source_id=source_id, replaced_by_source_id=state.replaced_by_source_id
        )
    if result["advanced"] != 1:
        raise RuntimeError(f"sync.user_state row {user_pk} is missing or moved past {bundle_seq}")
    return CommittedBundle(
        user_pk=user_pk,
        bundle_seq=bundle_seq,
        source_id=source_id,
        source_bundle_id=source_bundle_id,
        row_count=total,
        byte_count=byte_count,
        bundle_hash=digest,
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
    direct: bool = False,
    context_set: bool = False,
) -> AsyncIterator[BundleCapture]:
    """Run business SQL under a bundle context, then finalize it (see the module docstring).

    Must be entered inside a transaction on `conn`. An exception in the block skips the
    finalizer and propagates (the caller's transaction rolls back). Raises `SyncError`
    409 `source_retired` if the source was retired under the caller (it should be locked).
    `direct`: the block also stages rows in `ddl.DIRECT_STAGE` (the push commit, which creates
    it); the finalizer then reads both stages. A block that captured every change itself sets
    `capture.coalesced` instead (`finalize_bundle`). `context_set`: an earlier statement of the
    transaction set this very context (`context_columns`), none other.
    """
    if not conn.is_in_transaction():
        raise BundleContextError("bundle_transaction needs an open transaction on the connection")
    if not context_set:
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
        direct=direct,
        coalesced=capture.coalesced,
    )


__all__ = [
    "CAPTURE_DIRECT_GUC",
    "OP_CODES",
    "OP_NAMES",
    "BundleCapture",
    "BundleContextError",
    "CoalescedRow",
    "CommittedBundle",
    "bundle_too_large",
    "bundle_transaction",
    "context_columns",
    "finalize_bundle",
    "set_bundle_context",
]
