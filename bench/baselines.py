"""The work a sync push or pull does, done by raw asyncpg without sync: the yardsticks.

* COPY (`copy_records_to_table`), one transaction per bundle, into `baseline.users` and
  `baseline.posts`: the same columns, primary key and (deferred) foreign key as
  `business.users` / `business.posts`, and no triggers;
* a read of a user's committed rows as JSON, straight from `sync.bundle_rows`: what a pull
  returns, without the protocol. Each row is one JSON text of the pull's row shape (schema,
  table, key, op, row_version, payload; the stored `payload_wire` embedded), and the client
  handles what it received as the pull client handles a PullResponse body: once every row is
  in, one `json.loads` over them all (as one JSON array). Both sides are timed up to the same
  rows as Python objects in the client process, and neither overlaps decoding with receiving;
* a read of a user's live rows as JSON (`to_jsonb(row)`), what a snapshot returns.

Each rate counts only the timed operation, not making its rows, like the server side does.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

SHAPES = """
CREATE SCHEMA IF NOT EXISTS baseline;
CREATE TABLE IF NOT EXISTS baseline.users (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    PRIMARY KEY (_sync_scope_id, id)
);
CREATE TABLE IF NOT EXISTS baseline.posts (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    author_id UUID,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    PRIMARY KEY (_sync_scope_id, id),
    CONSTRAINT posts_author_id_fkey FOREIGN KEY (_sync_scope_id, author_id)
        REFERENCES baseline.users (_sync_scope_id, id) DEFERRABLE INITIALLY DEFERRED
);
"""

COLUMNS = {
    "users": ("_sync_scope_id", "id", "name", "email"),
    "posts": ("_sync_scope_id", "id", "title", "content", "author_id"),
}

# Each row as the pull's row text (concatenated by PostgreSQL, the cheapest rendering found:
# json_build_object costs the database about 2.5 times as much per row).
PULL_READ = """
SELECT '{"schema":' || to_json(c.schema_name)::text || ',"table":' || to_json(c.table_name)::text
       || ',"key":{' || to_json(c.sync_key_column)::text || ':'
       || CASE c.sync_key_kind WHEN 1 THEN '"' || encode(b.key_bytes, 'hex')::uuid::text || '"'
               ELSE to_json(convert_from(b.key_bytes, 'UTF8'))::text END
       || CASE b.op_code WHEN 1 THEN '},"op":"INSERT","row_version":'
                         WHEN 2 THEN '},"op":"UPDATE","row_version":'
                         ELSE '},"op":"DELETE","row_version":' END
       || b.bundle_seq
       || CASE WHEN b.op_code = 3 THEN '}' ELSE ',"payload":' || b.payload_wire::text || '}' END
FROM sync.bundle_rows b
JOIN sync.user_state u ON u.user_pk = b.user_pk
JOIN sync.table_catalog c ON c.table_id = b.table_id
WHERE u.user_id = $1
ORDER BY b.bundle_seq, b.row_ordinal
"""

SNAPSHOT_READ = """
SELECT (to_jsonb(u) - '_sync_scope_id')::text FROM business.users u WHERE u._sync_scope_id = $1
"""


async def _rate(
    budget: float,
    min_runs: int,
    make: Callable[[], object],
    run: Callable[[object], Awaitable[int]],
) -> float:
    """Rows per second of `run(make())`, timing `run` only, for `budget` s and `min_runs`."""
    rows, spent, runs, started = 0, 0.0, 0, time.perf_counter()
    while runs < min_runs or time.perf_counter() - started < budget:
        item = make()
        begin = time.perf_counter()
        rows += await run(item)
        spent += time.perf_counter() - begin
        runs += 1
    return rows / spent


async def copy_rate(dsn: str, table: str, size: int, budget: float, min_runs: int) -> float:
    """Rows/s of COPY of `size`-row bundles into baseline.<table>, one transaction each."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(SHAPES)
        scope = f"copy-{table}-{size}-{uuid.uuid4().hex[:8]}"
        author = uuid.uuid4()
        await conn.execute(
            "INSERT INTO baseline.users (_sync_scope_id, id, name, email) VALUES ($1, $2, 'a', 'a')",
            scope,
            author,
        )
        counter = iter(range(1 << 62))

        def make() -> object:
            if table == "users":
                return [
                    (scope, uuid.uuid4(), f"user {i}", f"user{i}@example.com")
                    for i in (next(counter) for _ in range(size))
                ]
            return [
                (scope, uuid.uuid4(), f"post {i}", f"the content of post {i}", author)
                for i in (next(counter) for _ in range(size))
            ]

        async def run(records: object) -> int:
            assert isinstance(records, list)
            async with conn.transaction():
                await conn.copy_records_to_table(
                    table, schema_name="baseline", columns=COLUMNS[table], records=records
                )
            return len(records)

        return await _rate(budget, min_runs, make, run)
    finally:
        await conn.close()


async def read_rate(
    dsn: str, query: str, user: str, budget: float, min_runs: int, *, decode: bool = False
) -> float:
    """Rows/s of fetching `query`'s rows for `user` in one go; with `decode`, the rows (JSON
    texts) then go through one `json.loads` as one array, as a pull client decodes its body."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.fetch(query, user)  # warm: plan cached, pages in shared buffers

        async def run(_: object) -> int:
            rows = await conn.fetch(query, user)
            if decode:
                return len(json.loads("[" + ",".join([row[0] for row in rows]) + "]"))
            return len(rows)

        return await _rate(budget, min_runs, lambda: None, run)
    finally:
        await conn.close()
