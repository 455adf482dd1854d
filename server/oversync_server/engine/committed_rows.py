"""Committed bundle rows: `GET /sync/committed-bundles/{bundle_seq}/rows` (protocol.md §6.6).

One statement per page whatever its size (a single statement is a single snapshot, so no
REPEATABLE READ transaction is needed): the user's floor, the bundle_log row and up to
`max_rows + 1` rows (the extra row only tells `has_more`). The response JSON is assembled from the
stored canonical payload text without re-parsing it, the way the reference's encoder emits
stored `json.RawMessage` payloads (compact, HTML-escaped, sorted keys).

Paging: wire ordinals are 0-based (storage is 1-based). Without `after_row_ordinal` the page
starts at ordinal 0, with `after_row_ordinal = N` at N+1; `next_row_ordinal` is the ordinal of
the last row returned (`(after ?? -1) + len(rows)`), or echoes `after` (0 when absent) for an
empty page.
"""

from __future__ import annotations

from dataclasses import dataclass

from oversync_server.engine.capture import OP_DELETE, OP_NAMES
from oversync_server.engine.catalog import Catalog
from oversync_server.engine.db import Connection
from oversync_server.engine.errors import SyncError
from oversync_server.engine.retention import history_pruned
from oversync_server.engine.values import key_from_bytes
from oversync_wire import canonical_json

_PAGE = """
SELECT us.retained_bundle_floor AS floor, bl.source_id, bl.source_bundle_id, bl.row_count,
       bl.bundle_hash, page.table_ids, page.keys, page.ops, page.payloads
FROM sync.user_state us
LEFT JOIN sync.bundle_log bl ON bl.user_pk = us.user_pk AND bl.bundle_seq = $2
LEFT JOIN LATERAL (
    SELECT array_agg(r.table_id ORDER BY r.row_ordinal) AS table_ids,
           array_agg(r.key_bytes ORDER BY r.row_ordinal) AS keys,
           array_agg(r.op_code ORDER BY r.row_ordinal) AS ops,
           array_agg(r.payload_wire::text ORDER BY r.row_ordinal) AS payloads
    FROM (SELECT table_id, key_bytes, op_code, payload_wire, row_ordinal
          FROM sync.bundle_rows
          WHERE user_pk = us.user_pk AND bundle_seq = $2 AND row_ordinal > $3
          ORDER BY row_ordinal LIMIT $4) AS r
) AS page ON bl.bundle_seq IS NOT NULL
WHERE us.user_id = $1
"""


_MAX_INT8 = 2**63 - 1


@dataclass(frozen=True, slots=True)
class PageRequest:
    bundle_seq: int
    after_row_ordinal: int | None
    max_rows: int


def _text(value: str) -> str:
    return canonical_json(value).decode("utf-8")


def not_found(bundle_seq: int) -> SyncError:
    return SyncError("committed_bundle_not_found", f"committed bundle {bundle_seq} was not found")


async def committed_rows_page(
    conn: Connection, catalog: Catalog, *, user_id: str, request: PageRequest
) -> bytes:
    """The response body (JSON bytes with Go's trailing newline) of one page.

    Raises 409 `history_pruned` at or below the floor, 404 `committed_bundle_not_found` for an
    unknown bundle (also for a user the server has never seen; Go answers 500 there).
    """
    after = request.after_row_ordinal
    # storage ordinals are 1-based: rows after logical `after` have storage ordinal > after + 1
    storage_after = min(after + 1, _MAX_INT8) if after is not None else 0
    row = await conn.fetchrow(
        _PAGE, user_id, request.bundle_seq, storage_after, request.max_rows + 1
    )
    if row is None:
        raise not_found(request.bundle_seq)
    if request.bundle_seq <= row["floor"]:
        raise history_pruned(user_id, request.bundle_seq, row["floor"])
    if row["source_id"] is None:
        raise not_found(request.bundle_seq)
    table_ids = row["table_ids"] or []
    has_more = len(table_ids) > request.max_rows
    count = min(len(table_ids), request.max_rows)
    seq = request.bundle_seq
    parts: list[str] = []
    for index in range(count):
        table = catalog.by_id(table_ids[index])
        op = row["ops"][index]
        key = key_from_bytes(table.key_kind, bytes(row["keys"][index]))
        item = (
            f'{{"schema":{_text(table.schema)},"table":{_text(table.table)},'
            f'"key":{{{_text(table.key_column)}:{_text(key)}}},'
            f'"op":"{OP_NAMES[op]}","row_version":{seq}'
        )
        if op != OP_DELETE:
            item += f',"payload":{row["payloads"][index]}'
        parts.append(item + "}")
    next_ordinal = ((after if after is not None else -1) + count) if count else (after or 0)
    body = (
        f'{{"bundle_seq":{seq},"source_id":{_text(row["source_id"])},'
        f'"source_bundle_id":{row["source_bundle_id"]},"row_count":{row["row_count"]},'
        f'"bundle_hash":"{bytes(row["bundle_hash"]).hex()}",'
        f'"rows":[{",".join(parts)}],'
        f'"next_row_ordinal":{next_ordinal},"has_more":{"true" if has_more else "false"}}}\n'
    )
    return body.encode("utf-8")
