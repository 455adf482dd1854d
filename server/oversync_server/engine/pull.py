"""Pull: one page of complete committed bundles under a stable ceiling (protocol.md §6.7).

A page is read in the caller's REPEATABLE READ, READ ONLY transaction in two steps:

* `plan_page`: the scope gate's `Scope` (read by the caller), then one statement that picks the
  page's bundles: at most `max_bundles`, and no more than `max_bytes` of bundle bytes
  (`bundle_log.byte_count`, the canonical size of each bundle; the first bundle is always taken,
  so any bundle can be pulled). Each bundle's JSON head (`{"bundle_seq":...,"rows":[`, fields in
  Go's order) is rendered by PostgreSQL. A page cut by the byte budget says `has_more`.
* `page_chunks`: the page's rows in (bundle_seq, row_ordinal) order, `ROW_BATCH` at a time (a
  keyset range of the bundle_rows primary key per statement, in the same snapshot), each row
  rendered as compact JSON by PostgreSQL and handed over as one comma-joined run per bundle
  (stored `payload_wire` values, JSON not JSONB, embedded byte for byte, so served payloads are
  exactly the ones the bundle hash was computed over), as UTF-8 bytes (`convert_to`: the server
  never decodes or re-encodes them), assembled into the PullResponse body and yielded in chunks
  of about `CHUNK_BYTES`. The next batch's statement is sent when a full batch arrives, so
  PostgreSQL renders it while the server sends the current one. The server holds at most two
  batches of rows, whatever the bundles' sizes, and touches each batch a few times rather than
  each row. Everything runs inside the one transaction, so it suits a transaction-pooling
  PgBouncer (`engine.txpool`) as it is: no cursor or statement outlives it.

Statements per page: the scope gate, the plan, and one per `ROW_BATCH` rows (at least one). The
reference runs 3 + 3·bundles statements here.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

from oversync_server.engine.retention import enforce_floor
from oversync_server.engine.scope import Connection, Scope

__all__ = ["CHUNK_BYTES", "ROW_BATCH", "PagePlan", "page_chunks", "plan_page"]

ROW_BATCH = 2000
CHUNK_BYTES = 64 * 1024

# The page's bundles (plus one more, which only sets has_more), each with the bytes of the page
# up to and including it, and its JSON head.
_PLAN = """
SELECT bundle_seq,
       sum(byte_count) OVER (ORDER BY bundle_seq) AS bytes_through,
       '{"bundle_seq":' || bundle_seq
       || ',"source_id":' || to_json(source_id)::text
       || ',"source_bundle_id":' || source_bundle_id
       || ',"row_count":' || row_count
       || ',"bundle_hash":"' || encode(bundle_hash, 'hex')
       || '","rows":[' AS head
FROM sync.bundle_log
WHERE user_pk = $1 AND bundle_seq > $2 AND bundle_seq <= $3
ORDER BY bundle_seq
LIMIT $4::bigint + 1
"""

# The next `$5` rows of the page after (bundle_seq, row_ordinal) = ($2, $3), up to bundle `$4`,
# as one comma-joined run of wire JSON rows per bundle: a keyset page on the bundle_rows primary
# key (the LIMIT makes it an index range scan that stops after `$5` rows, whatever the planner's
# statistics, with nothing to sort), rendered by PostgreSQL with each table's constant prefix
# computed once. DELETE rows carry no `payload` key; uuid keys are stored as 16 raw bytes
# (rendered lowercase dashed), text keys as UTF-8; stored `payload_wire` values (JSON, not JSONB)
# are embedded byte for byte, so served payloads are the ones the bundle hash was computed over.
# Handed over as bytes (`convert_to`), so the server never decodes or re-encodes them. One value
# per bundle and batch, not one result row per row: per-row results saved PostgreSQL about
# 0.6 µs of CPU per row and cost the server 0.8 µs more (asyncpg records, `make bench`).
_ROWS = """
WITH tables AS MATERIALIZED (
    SELECT c.table_id, c.sync_key_kind,
           '{"schema":' || to_json(c.schema_name)::text || ',"table":' || to_json(c.table_name)::text
           || ',"key":{' || to_json(c.sync_key_column)::text || ':' AS prefix
    FROM sync.table_catalog c
)
SELECT r.bundle_seq, count(*) AS rows, max(r.row_ordinal) AS last_ordinal,
       convert_to(string_agg(
           t.prefix
           || CASE t.sync_key_kind
                  WHEN 1 THEN '"' || encode(r.key_bytes, 'hex')::uuid::text || '"'
                  ELSE to_json(convert_from(r.key_bytes, 'UTF8'))::text
              END
           || CASE r.op_code WHEN 1 THEN '},"op":"INSERT","row_version":'
                             WHEN 2 THEN '},"op":"UPDATE","row_version":'
                             ELSE '},"op":"DELETE","row_version":' END
           || r.bundle_seq
           || CASE WHEN r.op_code = 3 THEN '}' ELSE ',"payload":' || r.payload_wire::text || '}' END,
           ',' ORDER BY r.row_ordinal), 'UTF8') AS docs
FROM (
    SELECT b.bundle_seq, b.row_ordinal, b.table_id, b.key_bytes, b.op_code, b.payload_wire
    FROM sync.bundle_rows b
    WHERE b.user_pk = $1 AND (b.bundle_seq, b.row_ordinal) > ($2, $3) AND b.bundle_seq <= $4
    ORDER BY b.bundle_seq, b.row_ordinal
    LIMIT $5
) r
JOIN tables t ON t.table_id = r.table_id
GROUP BY r.bundle_seq
ORDER BY r.bundle_seq
"""
_MAX_INT8 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class PagePlan:
    """One page: the stable ceiling, its bundles' `(bundle_seq, JSON head)` ascending, whether
    more bundles follow, and the user and lower bound the rows are read with."""

    stable_bundle_seq: int
    bundles: list[tuple[int, str]]
    has_more: bool
    user_pk: int
    lower_bundle_seq: int

    def body_head(self) -> str:
        return f'{{"stable_bundle_seq":{self.stable_bundle_seq},"bundles":['

    def body_tail(self) -> str:
        return f'],"has_more":{json.dumps(self.has_more)}}}'


async def plan_page(
    conn: Connection,
    scope: Scope,
    *,
    after_bundle_seq: int,
    max_bundles: int,
    target_bundle_seq: int,
    max_bytes: int,
) -> PagePlan:
    """The page of bundles `after < bundle_seq <= stable` (and above the floor) for `scope`.

    `scope` comes from `require_initialized` in the same transaction. Raises `history_pruned`
    when `after` (> 0), `target` (> 0) or the resolved ceiling (> 0) is at or below the floor; an
    `after` of 0 is exempt, and then bundles at or below the floor are skipped. The ceiling is
    `target` when given (echoed, not clamped), else the latest committed bundle. `max_bytes` of 0
    means no byte budget.
    """
    user, floor = scope.user_id, scope.retained_bundle_floor
    enforce_floor(user, after_bundle_seq, floor)
    enforce_floor(user, target_bundle_seq, floor)
    stable = target_bundle_seq if target_bundle_seq > 0 else scope.latest_bundle_seq
    enforce_floor(user, stable, floor)
    lower = max(after_bundle_seq, floor)
    if after_bundle_seq >= stable:
        return PagePlan(stable, [], False, scope.user_pk, lower)
    records = await conn.fetch(_PLAN, scope.user_pk, lower, stable, max_bundles)
    bundles: list[tuple[int, str]] = []
    for record in records[:max_bundles]:
        if bundles and max_bytes and record["bytes_through"] > max_bytes:
            break
        bundles.append((record["bundle_seq"], record["head"]))
    return PagePlan(stable, bundles, len(records) > len(bundles), scope.user_pk, lower)


async def _row_batches(conn: Connection, plan: PagePlan) -> AsyncGenerator[list[Any], None]:
    """The page's rows as `_ROWS` results, `ROW_BATCH` rows at a time. The next batch's
    statement is sent as soon as a full batch arrives, so PostgreSQL renders it while the caller
    handles (and sends) this one; the server then holds at most two batches."""
    last_seq = plan.bundles[-1][0]

    def fetch(after: tuple[int, int]) -> asyncio.Future[list[Any]]:
        return asyncio.ensure_future(conn.fetch(_ROWS, plan.user_pk, *after, last_seq, ROW_BATCH))

    pending: asyncio.Future[list[Any]] | None = fetch((plan.lower_bundle_seq, _MAX_INT8))
    try:
        while pending is not None:
            runs = await pending
            pending = None
            if runs and sum(run["rows"] for run in runs) == ROW_BATCH:
                pending = fetch((runs[-1]["bundle_seq"], runs[-1]["last_ordinal"]))
            yield runs
    finally:
        if pending is not None:  # the iteration stopped early: let the statement finish
            await asyncio.wait([pending])
            if not pending.cancelled():
                pending.exception()  # retrieved: a failure here no longer matters


async def page_chunks(conn: Connection, plan: PagePlan) -> AsyncGenerator[bytes, None]:
    """The PullResponse body of `plan`, in chunks of about `CHUNK_BYTES`, read `ROW_BATCH` rows
    at a time (in the caller's transaction, which must stay open until the iteration ends; close
    the iterator to stop early)."""
    parts = [plan.body_head().encode()]
    size = 0
    if plan.bundles:
        heads = iter(plan.bundles)
        current, head = next(heads)
        parts.append(head.encode())
        first_row = True
        async with aclosing(_row_batches(conn, plan)) as batches:
            async for runs in batches:
                for bundle_seq, _, _, docs in runs:
                    while bundle_seq != current:  # the next bundle (a bundle without rows is empty)
                        current, head = next(heads)
                        parts.append(b"]},")
                        parts.append(head.encode())
                        first_row = True
                    if not first_row:
                        parts.append(b",")
                    parts.append(docs)
                    first_row = False
                    size += len(docs)
                if size >= CHUNK_BYTES:
                    yield b"".join(parts)
                    parts, size = [], 0
        parts.append(b"]}")
        for _, head in heads:
            parts.append(b",")
            parts.append(head.encode())
            parts.append(b"]}")
    parts.append(plan.body_tail().encode())
    yield b"".join(parts)
