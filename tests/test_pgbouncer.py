"""Several server processes on one PostgreSQL through a real PgBouncer in transaction pooling
mode (`pool_mode: transaction`, engine/txpool.py): pushes, pulls and watch wake-ups across them,
per-user serialisation with transaction-scoped advisory locks, and a pooler that really
multiplexes (more client connections than PostgreSQL sessions)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from oversync_server.config import ConfigError, ServiceConfig
from oversync_server.engine.errors import SyncError
from oversync_server.engine.pool import create_pool
from oversync_server.engine.scope import user_lock
from pgbouncer import PgBouncer
from protocol_helpers import (
    attach,
    config_file,
    insert_user,
    pull_to_stable,
    push_rows,
    watch_stream,
)
from serverproc import ServerProcess

POOL_SIZE = 2  # PostgreSQL sessions PgBouncer opens per database


@pytest.fixture
def bouncer(pg_cluster: str) -> Iterator[PgBouncer]:
    with PgBouncer(pg_cluster, pool_mode="transaction", pool_size=POOL_SIZE) as pooler:
        yield pooler


def _pooled_server(bouncer: PgBouncer, database_url: str, tmp_path: Path) -> ServerProcess:
    """A server whose pool goes through the pooler and whose watch listener connects directly."""
    config = config_file(
        tmp_path,
        pool_mode="transaction",
        watch_database_url=database_url,
        pool_max_size=6,
    )
    process = ServerProcess(
        bouncer.url_for(database_url), config=config, extra_args=("--example-schema",)
    )
    return process.start(tmp_path)


def test_transaction_mode_needs_a_watch_url() -> None:
    with pytest.raises(ConfigError, match="watch_database_url"):
        ServiceConfig(registered_tables=(), pool_mode="transaction")
    with pytest.raises(ConfigError, match="pool_mode"):
        ServiceConfig(registered_tables=(), pool_mode="statement")
    ServiceConfig(registered_tables=(), pool_mode="transaction", bundle_change_watch=False)


async def test_two_servers_behind_pgbouncer_push_pull_and_watch(
    bouncer: PgBouncer, database_url: str, tmp_path: Path
) -> None:
    first = _pooled_server(bouncer, database_url, tmp_path)
    second = _pooled_server(bouncer, database_url, tmp_path)
    try:
        with first.client("alice") as client:
            attach(client, "dev-a")
        # A push served by the first server wakes a watcher on the second.
        async with watch_stream(second, "alice", "dev-b", after=0) as stream:
            with first.client("alice") as client:
                committed = await asyncio.to_thread(
                    push_rows, client, "dev-a", 1, [insert_user("Ada")]
                )
            event = await stream.next_event()
        assert event == {
            "bundle_seq": committed.bundle_seq,
            "source_id": "dev-a",
            "source_bundle_id": 1,
        }

        # A large bundle (its commit stages rows in a temporary table) through the other one.
        with second.client("alice") as client:
            big = push_rows(client, "dev-b", 1, [insert_user(f"big-{n}") for n in range(150)])
        assert big.bundle_seq == 2

        # Two devices of one user push concurrently, each alternating between the servers:
        # every bundle commits, and the user's bundle_seq stays gapless (serialised writers).
        errors: list[BaseException] = []

        def device(source: str) -> None:
            try:
                for bundle in range(1, 9):
                    server = first if bundle % 2 else second
                    with server.client("alice") as client:
                        rows = [insert_user(f"{source}-{bundle}-{n}") for n in range(3)]
                        push_rows(client, source, bundle + (1 if source == "dev-a" else 0), rows)
            except BaseException as error:  # reported below
                errors.append(error)

        threads = [threading.Thread(target=device, args=(s,)) for s in ("dev-a", "dev-c")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert not errors, errors

        for server in (first, second):
            with server.client("alice") as client:
                stable, bundles = pull_to_stable(client, "dev-b")
            assert stable == 18
            assert [bundle.bundle_seq for bundle in bundles] == list(range(1, 19))
            assert sum(len(bundle.rows) for bundle in bundles) == 1 + 150 + 16 * 3

        # The pooler multiplexed: two servers with up to 6 pooled connections each ran on at
        # most POOL_SIZE PostgreSQL sessions (plus the two direct watch listeners).
        connection = await asyncpg.connect(database_url)
        try:
            sessions = await connection.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name <> 'oversync-watch-listener' AND pid <> pg_backend_pid()"
            )
        finally:
            await connection.close()
        assert 1 <= sessions <= POOL_SIZE
    finally:
        first.stop()
        second.stop()


async def test_transaction_scoped_user_locks_serialise_across_processes(
    bouncer: PgBouncer, server: ServerProcess, database_url: str
) -> None:
    """Two pools stand in for two server processes: a writer holding alice's lock (in its
    transaction) makes the other wait until its bounded deadline, then 503; other users and
    a session-mode (direct, Go-style) lock holder interact the same way."""
    pooled = bouncer.url_for(database_url)
    holder_pool = await create_pool(pooled, transaction_pooling=True, user_lock_timeout=5)
    waiter_pool = await create_pool(pooled, transaction_pooling=True, user_lock_timeout=0.3)
    direct_pool = await create_pool(database_url, user_lock_timeout=0.3)
    try:
        holding = asyncio.Event()
        release = asyncio.Event()

        async def hold() -> None:
            async with user_lock(holder_pool, "alice") as conn, conn.transaction():
                holding.set()
                await release.wait()

        holder = asyncio.create_task(hold())
        await holding.wait()
        for pool in (waiter_pool, direct_pool):
            with pytest.raises(SyncError) as refused:
                async with user_lock(pool, "alice") as conn, conn.transaction():
                    pass
            assert refused.value.code == "service_unavailable"
        async with user_lock(waiter_pool, "bob") as conn, conn.transaction():
            assert await conn.fetchval("SELECT 1") == 1
        release.set()
        await holder
        async with user_lock(waiter_pool, "alice") as conn, conn.transaction():
            # the session timeouts are set by every transaction behind the pooler
            assert await conn.fetchval("SHOW lock_timeout") == "10s"

        # A Go-style session lock on the direct connection blocks the pooled writers too.
        async with direct_pool.acquire() as go_style:
            key = "SELECT pg_advisory_lock(hashtextextended('alice', 0))"
            await go_style.execute(key)
            with pytest.raises(SyncError):
                async with user_lock(waiter_pool, "alice") as conn, conn.transaction():
                    pass
            await go_style.execute("SELECT pg_advisory_unlock(hashtextextended('alice', 0))")
    finally:
        for pool in (holder_pool, waiter_pool, direct_pool):
            await pool.close()
