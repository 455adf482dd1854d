"""GET /syncx/status and /syncx/health (protocol.md §8.2, server.md §12.2) on a real server."""

from __future__ import annotations

import threading
import time

import asyncpg
import httpx

from oversync_protocol.models import StatusResponse
from oversync_server.engine.ddl import SCHEMA_DDL
from oversync_server.engine.status import EXACT_MAX_PAGES, StatusCounters, read_counters
from protocol_helpers import seed_bundle, user_row
from serverproc import ServerProcess

COUNTERS = set(StatusCounters().as_dict())


def status(server: ServerProcess) -> dict[str, object]:
    response = httpx.get(f"{server.base_url}/syncx/status")
    assert response.status_code == 200
    body: dict[str, object] = response.json()
    return body


async def test_counters_before_and_after_bootstrap(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        assert await read_counters(conn) == StatusCounters()  # no sync schema at all
        await conn.execute(SCHEMA_DDL)
        assert await read_counters(conn) == StatusCounters()  # fresh schema, unused sequences
        await conn.execute("SELECT nextval('sync.rejected_registered_write_seq')")
        await conn.execute("SELECT nextval('sync.history_pruned_error_seq')")
        await conn.execute("SELECT nextval('sync.history_pruned_error_seq')")
        counters = await read_counters(conn)
    assert counters.rejected_registered_write_count == 1
    assert counters.history_pruned_error_count == 2
    assert counters.accepted_push_replay_count == 0


async def test_the_status_document(server: ServerProcess) -> None:
    body = status(server)
    StatusResponse.model_validate(body)
    assert list(body)[:8] == [
        "status",
        "version",
        "app_name",
        "lifecycle",
        "accepting_operations",
        "inflight_operations",
        "registered_tables",
        "features",
    ]
    assert set(body) - set(list(body)[:8]) == COUNTERS
    assert body["status"] == "healthy" and body["version"] == "v1"
    assert body["app_name"] == "oversync-py"
    assert body["lifecycle"] == "running" and body["accepting_operations"] is True
    assert body["inflight_operations"] == 0
    assert isinstance(body["registered_tables"], list) and len(body["registered_tables"]) == 8
    assert body["registered_tables"][:2] == ["business.categories", "business.file_reviews"]
    # the reference's 20 + version gate, authenticated_user, registered_table_columns
    assert isinstance(body["features"], dict) and len(body["features"]) == 23
    assert all(body[name] == 0 for name in COUNTERS)
    health = httpx.get(f"{server.base_url}/syncx/health")
    assert health.status_code == 200 and health.json() == body
    assert httpx.post(f"{server.base_url}/syncx/status").status_code == 405


async def test_counters_follow_the_bundles(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        for _ in range(5):
            await seed_bundle(conn, "alice", "dev-a", [user_row(), user_row()])
        await seed_bundle(conn, "bob", "dev-b", [user_row("DELETE")])
    await pg_pool.execute(
        "UPDATE sync.user_state SET retained_bundle_floor = 2 WHERE user_id = 'alice'"
    )
    total_bytes = await pg_pool.fetchval("SELECT sum(byte_count) FROM sync.bundle_log")
    body = status(server)
    assert {name: body[name] for name in COUNTERS} == {
        **StatusCounters().as_dict(),
        "latest_bundle_seq_max": 5,
        "retained_bundle_floor_min": 0,
        "retained_bundle_floor_max": 2,
        "retained_bundle_window_min": 1,
        "retained_bundle_window_max": 3,
        "committed_bundle_count": 6,
        "committed_bundle_bytes": total_bytes,
    }
    # The pull history_pruned counter (each pull answer counts once).
    headers = {"Authorization": f"Bearer {server.token('alice')}", "Oversync-Source-ID": "d"}
    pruned = httpx.get(f"{server.base_url}/sync/pull?after_bundle_seq=1", headers=headers)
    assert pruned.status_code == 409
    assert status(server)["history_pruned_error_count"] == 1


async def test_a_floor_ahead_of_the_latest_bundle_is_unhealthy(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    async with pg_pool.acquire() as conn:
        await seed_bundle(conn, "alice", "dev-a", [user_row()])
        # Impossible under the storage CHECK; the status still watches for it, as Go does.
        await conn.execute(
            "ALTER TABLE sync.user_state DROP CONSTRAINT user_state_retained_floor_check"
        )
        await conn.execute("UPDATE sync.user_state SET retained_bundle_floor = 7")
    body = status(server)
    assert body["status"] == "unhealthy"
    assert body["user_state_retention_floor_ahead_count"] == 1
    assert body["lifecycle"] == "running"
    health = httpx.get(f"{server.base_url}/syncx/health")
    assert health.status_code == 503 and health.json()["status"] == "unhealthy"


async def test_inflight_operations_count_sync_requests(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    async with pg_pool.acquire() as conn:
        key = await conn.fetchval("SELECT hashtextextended('alice', 0)")
        await conn.execute("SELECT pg_advisory_lock($1)", key)  # connect will wait for alice
        answers: list[int] = []
        waiting = threading.Thread(
            target=lambda: answers.append(
                httpx.post(
                    f"{server.base_url}/sync/connect",
                    json={},
                    headers={
                        "Authorization": f"Bearer {server.token('alice')}",
                        "Oversync-Source-ID": "dev-a",
                    },
                    timeout=30,
                ).status_code
            )
        )
        waiting.start()
        try:
            deadline = time.monotonic() + 10
            while status(server)["inflight_operations"] != 1 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert status(server)["inflight_operations"] == 1
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", key)
            waiting.join(timeout=30)
    assert answers == [200]
    assert status(server)["inflight_operations"] == 0


async def test_a_service_that_is_not_running_is_unhealthy() -> None:
    from oversync_server.config import load_config
    from oversync_server.runtime import SyncRuntime
    from oversync_server.services.monitoring import build_status, status_document
    from protocol_helpers import EXAMPLE_CONFIG

    runtime = SyncRuntime(config=load_config(EXAMPLE_CONFIG), database_url="postgresql://unused")
    runtime.lifecycle = "shutting_down"
    draining = build_status(runtime, StatusCounters())
    assert draining.status.value == "unhealthy" and draining.accepting_operations is False
    runtime.lifecycle = "closed"  # no pool any more: still a document, not an error
    closed = await status_document(runtime)
    assert closed.status.value == "unhealthy" and closed.lifecycle.value == "closed"


_LARGE = """
INSERT INTO sync.user_state (user_id, next_bundle_seq, retained_bundle_floor)
SELECT 'user-' || n, 3, 1 FROM generate_series(1, $1) AS n;
"""
_LARGE_BUNDLES = """
INSERT INTO sync.bundle_log
    (user_pk, bundle_seq, source_id, source_bundle_id, row_count, byte_count, bundle_hash)
SELECT u.user_pk, s.seq, 'dev', s.seq, 1, 100 + (u.user_pk % 7) * 10, '\\x00'::bytea
FROM sync.user_state AS u CROSS JOIN generate_series(1, 2) AS s(seq)
"""


async def _large_status_tables(conn: asyncpg.Connection, users: int) -> None:
    await conn.execute(SCHEMA_DDL)
    await conn.execute(_LARGE.replace("$1", str(users)))
    await conn.execute(_LARGE_BUNDLES)
    await conn.execute("ANALYZE sync.user_state, sync.bundle_log")


async def _rows_read(conn: asyncpg.Connection, table: str) -> int:
    """Rows read from `table` by sequential or sample scans, as this backend's pending
    statistics count them (at once, not after the statistics flush)."""
    read = await conn.fetchval(
        "SELECT seq_tup_read FROM pg_stat_xact_user_tables WHERE relid = to_regclass($1)", table
    )
    return int(read or 0)


async def test_large_tables_are_sampled_not_scanned(pg_pool: asyncpg.Pool) -> None:
    users = 100_000
    async with pg_pool.acquire() as conn:
        await _large_status_tables(conn, users)
        exact_bytes = int(await conn.fetchval("SELECT sum(byte_count) FROM sync.bundle_log"))
        pages = await conn.fetchval(
            "SELECT pg_relation_size('sync.bundle_log') / current_setting('block_size')::int"
        )
        assert pages > 2 * EXACT_MAX_PAGES  # the sampled path
        async with conn.transaction():  # (pending statistics: compare before and after)
            bundles_before = await _rows_read(conn, "sync.bundle_log")
            users_before = await _rows_read(conn, "sync.user_state")
            counters = await read_counters(conn)
            bundle_rows_read = await _rows_read(conn, "sync.bundle_log") - bundles_before
            user_rows_read = await _rows_read(conn, "sync.user_state") - users_before
    # Bounded reads: a sample of the bundles and of the users, no full scan.
    assert bundle_rows_read < 2 * users / 4, bundle_rows_read
    assert user_rows_read < users / 4, user_rows_read
    # The approximate fields are close; the rest is exact.
    assert abs(counters.committed_bundle_count - 2 * users) <= 0.05 * 2 * users
    assert abs(counters.committed_bundle_bytes - exact_bytes) <= 0.1 * exact_bytes
    assert counters.latest_bundle_seq_max == 2
    assert (counters.retained_bundle_floor_min, counters.retained_bundle_floor_max) == (1, 1)
    assert (counters.retained_bundle_window_min, counters.retained_bundle_window_max) == (1, 1)
    assert counters.user_state_retention_floor_ahead_count == 0  # proven by the CHECK


async def test_the_floor_ahead_count_stays_exact_without_the_check(pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await _large_status_tables(conn, 30_000)
        await conn.execute(
            "ALTER TABLE sync.user_state DROP CONSTRAINT user_state_retained_floor_check"
        )
        await conn.execute(
            "UPDATE sync.user_state SET retained_bundle_floor = 9 WHERE user_id = 'user-17'"
        )
        counters = await read_counters(conn)
    assert counters.user_state_retention_floor_ahead_count == 1
