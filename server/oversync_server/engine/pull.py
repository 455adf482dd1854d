"""Pull: one page of complete committed bundles under a stable ceiling (protocol.md §6.7).

`pull_page` runs in the caller's REPEATABLE READ, READ ONLY transaction and costs two SQL
statements whatever the page holds: the scope gate (which also reads `user_state`) and one
statement that returns every bundle of the page with all its rows already rendered as compact
JSON by PostgreSQL (one text value per bundle; rows aggregated in `row_ordinal` order). Stored
`payload_wire` values (JSON, not JSONB) are embedded byte for byte, so served payloads are exactly
the ones the bundle hash was computed over. The reference runs 3 + 3·bundles statements here.

The response body is assembled from those texts without decoding them again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from oversync_server.engine.retention import enforce_floor
from oversync_server.engine.scope import Connection, Scope
from oversync_server.engine.values import ROW_IDENTITY_JSON_SQL

__all__ = ["PullPage", "pull_page", "render_page"]

# One text per bundle: the wire's Bundle object, compact, fields in Go's order, its rows in
# `row_ordinal` order. DELETE rows carry no `payload` key; uuid keys are stored as 16 raw bytes
# (rendered lowercase dashed), text keys as UTF-8. The extra (max+1)-th bundle only sets has_more.
_PAGE = """
WITH page AS (
    SELECT bundle_seq, source_id, source_bundle_id, row_count, bundle_hash
    FROM sync.bundle_log
    WHERE user_pk = $1 AND bundle_seq > $2 AND bundle_seq <= $3
    ORDER BY bundle_seq
    LIMIT $4::bigint + 1
)
SELECT
    p.bundle_seq,
    CASE WHEN row_number() OVER (ORDER BY p.bundle_seq) <= $4 THEN
        '{"bundle_seq":' || p.bundle_seq
        || ',"source_id":' || to_json(p.source_id)::text
        || ',"source_bundle_id":' || p.source_bundle_id
        || ',"row_count":' || p.row_count
        || ',"bundle_hash":"' || encode(p.bundle_hash, 'hex')
        || '","rows":[' || coalesce((
            SELECT string_agg(
                {ROW_IDENTITY_JSON_SQL}
                || ',"op":"' || CASE r.op_code
                                     WHEN 1 THEN 'INSERT' WHEN 2 THEN 'UPDATE' ELSE 'DELETE'
                                 END
                || '","row_version":' || r.bundle_seq
                || CASE WHEN r.op_code = 3 THEN '}'
                        ELSE ',"payload":' || r.payload_wire::text || '}'
                   END,
                ',' ORDER BY r.row_ordinal)
            FROM sync.bundle_rows r
            JOIN sync.table_catalog c ON c.table_id = r.table_id
            WHERE r.user_pk = $1 AND r.bundle_seq = p.bundle_seq
        ), '') || ']}'
    END AS body
FROM page p
ORDER BY p.bundle_seq
""".replace("{ROW_IDENTITY_JSON_SQL}", ROW_IDENTITY_JSON_SQL)


@dataclass(frozen=True, slots=True)
class PullPage:
    """One page: the stable ceiling, each bundle's JSON text (ascending), and `has_more`."""

    stable_bundle_seq: int
    bundles: list[str]
    has_more: bool


async def pull_page(
    conn: Connection,
    scope: Scope,
    *,
    after_bundle_seq: int,
    max_bundles: int,
    target_bundle_seq: int,
) -> PullPage:
    """The page of bundles `after < bundle_seq <= stable` (and above the floor) for `scope`.

    `scope` comes from `require_initialized` in the same transaction. Raises 409 `history_pruned` when
    `after` (> 0), `target` (> 0) or the resolved ceiling (> 0) is at or below the floor; an
    `after` of 0 is exempt, and then bundles at or below the floor are skipped. The ceiling is
    `target` when given (echoed, not clamped), else the latest committed bundle.
    """
    user, floor = scope.user_id, scope.retained_bundle_floor
    enforce_floor(user, after_bundle_seq, floor)
    enforce_floor(user, target_bundle_seq, floor)
    stable = target_bundle_seq if target_bundle_seq > 0 else scope.latest_bundle_seq
    enforce_floor(user, stable, floor)
    if after_bundle_seq >= stable:
        return PullPage(stable, [], False)
    lower = max(after_bundle_seq, scope.retained_bundle_floor)
    rows = await conn.fetch(_PAGE, scope.user_pk, lower, stable, max_bundles)
    bundles = [row["body"] for row in rows[:max_bundles]]
    return PullPage(stable, bundles, len(rows) > max_bundles)


def render_page(page: PullPage) -> bytes:
    """The PullResponse JSON body, assembled around the bundle texts PostgreSQL rendered."""
    head = f'{{"stable_bundle_seq":{page.stable_bundle_seq},"bundles":['
    tail = f'],"has_more":{json.dumps(page.has_more)}}}'
    return (head + ",".join(page.bundles) + tail).encode()
