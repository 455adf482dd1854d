"""Capture: one business transaction = exactly one bundle (server.md §2), through
`capture.bundle_transaction` on a bootstrapped database (no HTTP)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from oversync_server.config import ServiceConfig, load_config
from oversync_server.engine.capture import (
    FINALIZE_BATCH_ROWS,
    BundleContextError,
    CommittedBundle,
    bundle_transaction,
    set_bundle_context,
)
from oversync_server.engine.catalog import Catalog
from oversync_server.engine.errors import SyncError
from oversync_server.engine.schema import bootstrap
from oversync_server.engine.values import wire_key
from oversync_wire import bundle_hash

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "business"
CONFIG = load_config(EXAMPLE / "config.yaml")


@dataclass(frozen=True)
class StoredRow:
    """One row of a committed bundle as `sync.bundle_rows` holds it."""

    table: str
    key_bytes: bytes
    op: str
    payload: dict[str, Any] | None
    payload_text: str | None


class Store:
    def __init__(self, pool: asyncpg.Pool, catalog: Catalog, config: ServiceConfig) -> None:
        self.pool, self.catalog, self.config = pool, catalog, config
        self.next_source_bundle: dict[str, int] = {}

    async def user(self, user_id: str) -> int:
        async with self.pool.acquire() as conn:
            pk: int = await conn.fetchval(
                "INSERT INTO sync.user_state (user_id) VALUES ($1) ON CONFLICT (user_id)"
                " DO UPDATE SET user_id = EXCLUDED.user_id RETURNING user_pk",
                user_id,
            )
            return pk

    async def rows(self, bundle: CommittedBundle) -> list[StoredRow]:
        """The bundle's stored rows in row_ordinal order."""
        async with self.pool.acquire() as conn:
            records = await conn.fetch(
                "SELECT c.table_name, r.key_bytes, r.op_code, r.payload_wire::text"
                " FROM sync.bundle_rows r JOIN sync.table_catalog c USING (table_id)"
                " WHERE r.user_pk = $1 AND r.bundle_seq = $2 ORDER BY r.row_ordinal",
                bundle.user_pk,
                bundle.bundle_seq,
            )
        ops = {1: "INSERT", 2: "UPDATE", 3: "DELETE"}
        return [
            StoredRow(t, bytes(k), ops[o], None if p is None else json.loads(p), p)
            for t, k, o, p in records
        ]

    async def wire_rows(self, bundle: CommittedBundle) -> list[dict[str, Any]]:
        """The bundle's rows as the hash sees them."""
        out = []
        for row in await self.rows(bundle):
            table = self.catalog.by_name("business", row.table)
            assert table is not None
            item: dict[str, Any] = {
                "schema": "business",
                "table": row.table,
                "key": wire_key(table, row.key_bytes),
                "op": row.op,
                "row_version": bundle.bundle_seq,
            }
            if row.payload is not None:
                item["payload"] = row.payload
            out.append(item)
        return out

    def capture(
        self, conn: Any, user_id: str, user_pk: int, source_bundle_id: int, source: str = "dev"
    ) -> Any:
        """The bundle transaction of one test write (inside the caller's transaction)."""
        return bundle_transaction(
            conn,
            self.catalog,
            self.config,
            user_id=user_id,
            user_pk=user_pk,
            source_id=source,
            source_bundle_id=source_bundle_id,
        )

    async def write(
        self, user_id: str, *statements: tuple[Any, ...], source: str = "dev"
    ) -> CommittedBundle | None:
        pk = await self.user(user_id)
        sbid = self.next_source_bundle.get(f"{user_id}/{source}", 1)
        async with (
            self.pool.acquire() as conn,
            conn.transaction(),
            self.capture(conn, user_id, pk, sbid, source=source) as capture,
        ):
            for sql, *args in statements:
                await conn.execute(sql, *args)
        if capture.bundle is not None:
            self.next_source_bundle[f"{user_id}/{source}"] = sbid + 1
        return capture.bundle


@pytest.fixture
async def store(pg_pool: asyncpg.Pool) -> AsyncIterator[Store]:
    async with pg_pool.acquire() as conn:
        await conn.execute((EXAMPLE / "schema.sql").read_text())
    yield Store(pg_pool, await bootstrap(pg_pool, CONFIG), CONFIG)


INSERT_USER = "INSERT INTO business.users (id, name, email) VALUES ($1, $2, 'x@y')"


async def test_one_transaction_is_one_bundle(store: Store) -> None:
    a, b, c = (uuid.uuid4() for _ in range(3))
    bundle = await store.write(
        "alice",
        (
            "INSERT INTO business.users (id, name, email) VALUES ($1, 'A', 'a'), ($2, 'B', 'b'), ($3, 'C', 'c')",
            a,
            b,
            c,
        ),
        ("UPDATE business.users SET name = 'A2' WHERE id = $1", a),
        ("DELETE FROM business.users WHERE id = $1", c),  # inserted and deleted: vanishes
    )
    assert bundle is not None
    assert (bundle.bundle_seq, bundle.row_count, bundle.source_id, bundle.source_bundle_id) == (
        1,
        2,
        "dev",
        1,
    )
    rows = await store.rows(bundle)
    assert [(r.op, r.key_bytes) for r in rows] == [("INSERT", a.bytes), ("INSERT", b.bytes)]
    assert rows[0].payload is not None and rows[0].payload["name"] == "A2"
    assert "_sync_scope_id" not in rows[0].payload
    assert bundle_hash(await store.wire_rows(bundle)) == (bundle.bundle_hash, bundle.byte_count)
    async with store.pool.acquire() as conn:
        stored = await conn.fetch("SELECT row_ordinal FROM sync.bundle_rows ORDER BY 1")
        assert [r[0] for r in stored] == [1, 2]
        log = await conn.fetchrow("SELECT row_count, byte_count, bundle_hash FROM sync.bundle_log")
        assert tuple(log) == (2, bundle.byte_count, bytes.fromhex(bundle.bundle_hash))
        states = await conn.fetch("SELECT bundle_seq, deleted FROM sync.row_state")
        assert sorted(tuple(s) for s in states) == [(1, False), (1, False)]
        assert await conn.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0
        source = await conn.fetchrow(
            "SELECT state, max_committed_source_bundle_id FROM sync.source_state"
        )
        assert tuple(source) == ("active", 1)
        assert (
            await conn.fetchval("SELECT _sync_scope_id FROM business.users WHERE id = $1", a)
            == "alice"
        )


async def test_bundle_seq_is_gapless_and_rollback_leaves_nothing(store: Store) -> None:
    assert (await store.write("alice", (INSERT_USER, uuid.uuid4(), "a"))).bundle_seq == 1  # type: ignore[union-attr]
    pk = await store.user("alice")
    with pytest.raises(RuntimeError, match="boom"):
        async with (
            store.pool.acquire() as conn,
            conn.transaction(),
            store.capture(conn, "alice", pk, 2),
        ):
            await conn.execute(INSERT_USER, uuid.uuid4(), "b")
            raise RuntimeError("boom")
    async with store.pool.acquire() as conn:
        for table in ("bundle_log", "bundle_rows", "row_state"):
            assert await conn.fetchval(f"SELECT count(*) FROM sync.{table}") == 1
        assert await conn.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0
    assert (await store.write("alice", (INSERT_USER, uuid.uuid4(), "c"))).bundle_seq == 2  # type: ignore[union-attr]


async def test_no_effects_means_no_bundle(store: Store) -> None:
    key = uuid.uuid4()
    bundle = await store.write(
        "alice", (INSERT_USER, key, "a"), ("DELETE FROM business.users WHERE id = $1", key)
    )
    assert bundle is None
    async with store.pool.acquire() as conn:
        assert await conn.fetchval("SELECT next_bundle_seq FROM sync.user_state") == 1
        assert await conn.fetchval("SELECT count(*) FROM sync.source_state") == 0


async def test_key_change_is_delete_plus_insert_and_cascades_follow(store: Store) -> None:
    old, new = uuid.uuid4(), uuid.uuid4()
    category, child = uuid.uuid4(), uuid.uuid4()
    await store.write(
        "alice",
        (INSERT_USER, old, "a"),
        ("INSERT INTO business.categories (id, name) VALUES ($1, 'root')", category),
        (
            "INSERT INTO business.categories (id, name, parent_id) VALUES ($1, 'leaf', $2)",
            child,
            category,
        ),
    )
    changed = await store.write(
        "alice", ("UPDATE business.users SET id = $2 WHERE id = $1", old, new)
    )
    assert changed is not None
    assert [(r.op, r.key_bytes) for r in await store.rows(changed)] == [
        ("DELETE", old.bytes),
        ("INSERT", new.bytes),
    ]
    cascaded = await store.write(
        "alice", ("DELETE FROM business.categories WHERE id = $1", category)
    )
    assert cascaded is not None
    assert sorted((r.op, r.key_bytes) for r in await store.rows(cascaded)) == sorted(
        [("DELETE", category.bytes), ("DELETE", child.bytes)]
    )
    async with store.pool.acquire() as conn:
        tombstones = await conn.fetchval("SELECT count(*) FROM sync.row_state WHERE deleted")
        assert tombstones == 3  # old user key, both categories


async def test_trigger_writes_and_savepoints_land_in_the_same_bundle(store: Store) -> None:
    async with store.pool.acquire() as conn:
        await conn.execute(
            """
            CREATE FUNCTION business.welcome_post() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO business.posts (id, title, content, author_id)
                VALUES (gen_random_uuid(), 'hello', 'first post', NEW.id);
                RETURN NULL;
            END $$;
            CREATE TRIGGER welcome AFTER INSERT ON business.users
                FOR EACH ROW EXECUTE FUNCTION business.welcome_post();
            """
        )
    pk = await store.user("alice")
    async with (
        store.pool.acquire() as conn,
        conn.transaction(),
        store.capture(conn, "alice", pk, 1) as capture,
    ):
        await conn.execute(INSERT_USER, uuid.uuid4(), "a")
        async with conn.transaction():  # a savepoint
            await conn.execute(INSERT_USER, uuid.uuid4(), "b")
    assert capture.bundle is not None
    assert sorted(r.table for r in await store.rows(capture.bundle)) == [
        "posts",
        "posts",
        "users",
        "users",
    ]


async def test_scope_is_enforced_by_the_triggers(store: Store) -> None:
    key = uuid.uuid4()
    await store.write("alice", (INSERT_USER, key, "a"))
    with pytest.raises(asyncpg.RaiseError, match="scope mismatch"):
        await store.write(
            "bob",
            (
                "INSERT INTO business.users (_sync_scope_id, id, name, email) VALUES ('alice', $1, 'x', 'y')",
                uuid.uuid4(),
            ),
        )
    # bob's statements cannot see or touch alice's row through the guard
    with pytest.raises(asyncpg.RaiseError, match="scope mismatch"):
        await store.write("bob", ("UPDATE business.users SET name = 'z' WHERE id = $1", key))
    with pytest.raises(asyncpg.RaiseError, match="scope mutation is not allowed"):
        await store.write(
            "alice", ("UPDATE business.users SET _sync_scope_id = 'bob' WHERE id = $1", key)
        )


async def test_context_is_closed_after_finalize_and_conflicts_are_refused(store: Store) -> None:
    pk = await store.user("alice")
    async with store.pool.acquire() as conn, conn.transaction():
        async with store.capture(conn, "alice", pk, 1):
            await conn.execute(INSERT_USER, uuid.uuid4(), "a")
            with pytest.raises(BundleContextError, match="conflicting sync bundle context"):
                await set_bundle_context(
                    conn, user_id="bob", user_pk=pk + 1, source_id="dev", source_bundle_id=1
                )
        # a write after finalize would never reach a bundle: it is refused instead
        with pytest.raises(asyncpg.RaiseError, match="requires oversync sync bundle context"):
            async with conn.transaction():
                await conn.execute(INSERT_USER, uuid.uuid4(), "late")
    with pytest.raises(BundleContextError, match="open transaction"):
        async with (
            store.pool.acquire() as conn,
            store.capture(conn, "alice", pk, 2),
        ):
            pass


async def test_notify_is_sent_only_when_the_bundle_commits(store: Store) -> None:
    received: list[dict[str, Any]] = []
    listener = await asyncpg.connect(store.pool._connect_args[0])  # type: ignore[attr-defined]
    await listener.add_listener(
        "oversync_bundle_change_v1", lambda *args: received.append(json.loads(args[3]))
    )
    try:
        pk = await store.user("alice")
        with pytest.raises(RuntimeError):
            async with store.pool.acquire() as conn, conn.transaction():
                async with store.capture(conn, "alice", pk, 1):
                    await conn.execute(INSERT_USER, uuid.uuid4(), "a")
                raise RuntimeError("rolled back after finalize")
        await store.write("alice", (INSERT_USER, uuid.uuid4(), "b"))
        for _ in range(50):
            if received:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)
        assert received == [
            {"user_pk": pk, "bundle_seq": 1, "source_id": "dev", "source_bundle_id": 1}
        ]
    finally:
        await listener.close()


async def test_retention_runs_in_the_committing_transaction(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await conn.execute((EXAMPLE / "schema.sql").read_text())
    catalog = await bootstrap(pg_pool, CONFIG)
    keep_two = Store(
        pg_pool,
        catalog,
        CONFIG.with_changes(retained_bundles_per_user=2, retention_prune_batch_size=1),
    )
    for _ in range(5):
        await keep_two.write("alice", (INSERT_USER, uuid.uuid4(), "a"))
    async with pg_pool.acquire() as conn:
        # latest 5, keep 2 -> target 3, but the floor moves at most one bundle per commit
        assert await conn.fetchval("SELECT retained_bundle_floor FROM sync.user_state") == 3
        assert [
            r[0] for r in await conn.fetch("SELECT bundle_seq FROM sync.bundle_log ORDER BY 1")
        ] == [4, 5]
        assert await conn.fetchval("SELECT min(bundle_seq) FROM sync.bundle_rows") == 4
        assert await conn.fetchval("SELECT count(*) FROM sync.row_state") == 5  # never pruned
    keep_all = Store(pg_pool, catalog, CONFIG.with_changes(retained_bundles_per_user=0))
    for _ in range(3):
        await keep_all.write("bob", (INSERT_USER, uuid.uuid4(), "b"))
    async with pg_pool.acquire() as conn:
        floor = await conn.fetchval(
            "SELECT retained_bundle_floor FROM sync.user_state WHERE user_id = 'bob'"
        )
        assert floor == 0


async def test_coalesce_rules(store: Store) -> None:
    """Per (table, key), in one transaction: INSERT..DELETE vanishes, X..DELETE is DELETE,
    DELETE..INSERT is UPDATE, INSERT..UPDATE is INSERT with the last image, rows keep their
    first-capture order."""
    kept, gone, reborn, edited = (uuid.uuid4() for _ in range(4))
    await store.write("alice", (INSERT_USER, kept, "k"), (INSERT_USER, reborn, "r"))
    bundle = await store.write(
        "alice",
        (INSERT_USER, edited, "e1"),
        ("UPDATE business.users SET name = 'e2' WHERE id = $1", edited),
        (INSERT_USER, gone, "g"),
        ("DELETE FROM business.users WHERE id = $1", gone),
        ("DELETE FROM business.users WHERE id = $1", reborn),
        (INSERT_USER, reborn, "r2"),
        ("UPDATE business.users SET name = 'k2' WHERE id = $1", kept),
        ("DELETE FROM business.users WHERE id = $1", kept),
    )
    assert bundle is not None
    rows = await store.rows(bundle)
    assert [(r.op, r.key_bytes) for r in rows] == [
        ("INSERT", edited.bytes),
        ("UPDATE", reborn.bytes),
        ("DELETE", kept.bytes),
    ]
    assert rows[0].payload is not None and rows[0].payload["name"] == "e2"
    assert rows[1].payload is not None and rows[1].payload["name"] == "r2"
    assert rows[2].payload is None


async def test_a_bundle_of_several_batches_streams_and_hashes_like_one(store: Store) -> None:
    count = FINALIZE_BATCH_ROWS * 2 + 7
    bundle = await store.write(
        "alice",
        (
            "INSERT INTO business.users (id, name, email)"
            " SELECT gen_random_uuid(), 'n' || g, 'e' FROM generate_series(1, $1) g",
            count,
        ),
    )
    assert bundle is not None and bundle.row_count == count
    wire = await store.wire_rows(bundle)
    assert len(wire) == count
    assert bundle_hash(wire) == (bundle.bundle_hash, bundle.byte_count)
    async with store.pool.acquire() as conn:
        log = await conn.fetchrow("SELECT row_count, byte_count, bundle_hash FROM sync.bundle_log")
        assert tuple(log) == (count, bundle.byte_count, bytes.fromhex(bundle.bundle_hash))
        ordinals = await conn.fetchrow(
            "SELECT min(row_ordinal), max(row_ordinal) FROM sync.bundle_rows"
        )
        assert tuple(ordinals) == (1, count)
        assert await conn.fetchval("SELECT count(*) FROM sync.row_state") == count
        assert await conn.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0


async def test_max_rows_per_bundle_is_enforced_on_what_was_captured(
    pg_pool: asyncpg.Pool, store: Store
) -> None:
    small = Store(pg_pool, store.catalog, CONFIG.with_changes(max_rows_per_bundle=3))
    assert await small.write("alice", *[(INSERT_USER, uuid.uuid4(), "a") for _ in range(3)])
    with pytest.raises(SyncError, match="more than max_rows_per_bundle 3") as refused:
        await small.write("alice", *[(INSERT_USER, uuid.uuid4(), "a") for _ in range(4)])
    assert refused.value.code == "push_commit_invalid"
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sync.bundle_log") == 1


async def test_a_column_added_while_the_server_runs_is_served_after_a_restart(
    store: Store,
) -> None:
    """The running process's catalog does not know the column's type yet (a bytea would be
    served in PostgreSQL's hex form): it is left out of bundles until bootstrap validated it."""
    async with store.pool.acquire() as conn:
        await conn.execute("ALTER TABLE business.users ADD COLUMN avatar bytea DEFAULT '\\x00ff'")
    bundle = await store.write("alice", (INSERT_USER, uuid.uuid4(), "a"))
    assert bundle is not None
    (row,) = await store.rows(bundle)
    assert row.payload is not None and "avatar" not in row.payload and row.payload["name"] == "a"
    assert bundle_hash(await store.wire_rows(bundle)) == (bundle.bundle_hash, bundle.byte_count)
