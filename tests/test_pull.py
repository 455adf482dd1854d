"""GET /sync/pull against a real server (protocol.md §6.7), with bundles written to storage.

Bundles come from `seed_bundle` (straight into sync.bundle_log/bundle_rows), so these tests pin
the pull contract independently of the push path; tests/test_pull_push.py covers real pushes.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from oversync_client.models import PullResponse
from oversync_client.types import Unset
from oversync_server.engine import pull as pulls
from oversync_server.engine import scope as scopes
from oversync_wire import bundle_hash
from protocol_helpers import (
    attach,
    parsed,
    pull_page,
    pull_to_stable,
    seed_bundle,
    start_server,
    user_row,
)
from serverproc import ServerProcess


def raw_pull(server: ServerProcess, user: str, **query: int) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}/sync/pull",
        params=query,
        headers={"Authorization": f"Bearer {server.token(user)}", "Oversync-Source-ID": "dev-x"},
    )


async def seed(pool: asyncpg.Pool, user: str, count: int, source: str = "dev-a") -> list[int]:
    async with pool.acquire() as conn:
        return [(await seed_bundle(conn, user, source, [user_row()]))[0] for _ in range(count)]


async def test_an_initialized_scope_without_bundles(server: ServerProcess) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    response = raw_pull(server, "alice")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"stable_bundle_seq": 0, "bundles": [], "has_more": False}


async def test_bundles_are_served_whole_with_the_stored_hash(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    key = str(uuid.uuid4())
    rows = [user_row("INSERT", key, "Ada"), user_row("UPDATE", key, "Ada <&> \u00e9\n")]
    async with pg_pool.acquire() as conn:
        first, first_hash = await seed_bundle(conn, "alice", "dev-a", rows)
        second, _ = await seed_bundle(conn, "alice", "dev-b", [user_row("DELETE", key)])

    body = raw_pull(server, "alice").json()
    assert body["stable_bundle_seq"] == 2 and body["has_more"] is False
    assert [bundle["bundle_seq"] for bundle in body["bundles"]] == [first, second]
    bundle = body["bundles"][0]
    assert list(bundle) == [
        "bundle_seq",
        "source_id",
        "source_bundle_id",
        "row_count",
        "bundle_hash",
        "rows",
    ]
    assert (bundle["source_id"], bundle["source_bundle_id"], bundle["row_count"]) == ("dev-a", 1, 2)
    assert bundle["bundle_hash"] == first_hash
    assert bundle["rows"][1] == {
        "schema": "business",
        "table": "users",
        "key": {"id": key},
        "op": "UPDATE",
        "row_version": first,
        "payload": rows[1]["payload"],
    }
    # What a client hashes from the served rows is the stored hash.
    assert bundle_hash(bundle["rows"])[0] == first_hash
    deleted = body["bundles"][1]["rows"][0]
    assert deleted == {
        "schema": "business",
        "table": "users",
        "key": {"id": key},
        "op": "DELETE",
        "row_version": second,
    }  # no payload key at all

    with server.client("alice") as client:  # the typed client reads the same page
        page = parsed(pull_page(client, "dev-a"), PullResponse)
        assert [b.source_id for b in page.bundles] == ["dev-a", "dev-b"]  # own bundles included
        assert isinstance(page.bundles[1].rows[0].payload, Unset)


async def test_paging_under_a_frozen_ceiling_while_bundles_commit(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    await seed(pg_pool, "alice", 5)
    first = raw_pull(server, "alice", max_bundles=2).json()
    assert first["stable_bundle_seq"] == 5 and first["has_more"] is True
    assert [b["bundle_seq"] for b in first["bundles"]] == [1, 2]

    await seed(pg_pool, "alice", 3)  # 6..8 commit between pages
    seen = [1, 2]
    page = first
    while page["has_more"]:
        page = raw_pull(
            server, "alice", after_bundle_seq=seen[-1], max_bundles=2, target_bundle_seq=5
        ).json()
        assert page["stable_bundle_seq"] == 5
        seen.extend(b["bundle_seq"] for b in page["bundles"])
    assert seen == [1, 2, 3, 4, 5]
    assert page["has_more"] is False

    fresh = raw_pull(server, "alice", after_bundle_seq=5).json()
    assert fresh["stable_bundle_seq"] == 8
    assert [b["bundle_seq"] for b in fresh["bundles"]] == [6, 7, 8]

    with server.client("alice") as client:
        stable, bundles = pull_to_stable(client, "dev-z", max_bundles=3)
    assert stable == 8 and [b.bundle_seq for b in bundles] == list(range(1, 9))


async def test_target_bundle_seq_is_echoed(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    await seed(pg_pool, "alice", 3)
    capped = raw_pull(server, "alice", target_bundle_seq=2).json()
    assert capped["stable_bundle_seq"] == 2 and capped["has_more"] is False
    assert [b["bundle_seq"] for b in capped["bundles"]] == [1, 2]
    beyond = raw_pull(server, "alice", target_bundle_seq=10).json()  # not clamped to the latest
    assert beyond["stable_bundle_seq"] == 10
    assert [b["bundle_seq"] for b in beyond["bundles"]] == [1, 2, 3]
    at_ceiling = raw_pull(server, "alice", after_bundle_seq=3, target_bundle_seq=3).json()
    assert at_ceiling == {"stable_bundle_seq": 3, "bundles": [], "has_more": False}
    past = raw_pull(server, "alice", after_bundle_seq=7).json()
    assert past == {"stable_bundle_seq": 3, "bundles": [], "has_more": False}


@pytest.mark.parametrize(
    "query",
    [
        {"max_bundles": 0},
        {"max_bundles": 5001},
        {"max_bundles": -1},
        {"after_bundle_seq": -1},
        {"target_bundle_seq": -1},
    ],
)
async def test_bad_query_values_are_invalid_requests(
    server: ServerProcess, query: dict[str, int]
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    response = raw_pull(server, "alice", **query)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


async def test_max_bundles_limits(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    await seed(pg_pool, "alice", 3)
    one = raw_pull(server, "alice", max_bundles=1).json()
    assert len(one["bundles"]) == 1 and one["has_more"] is True
    most = raw_pull(server, "alice", max_bundles=5000).json()
    assert len(most["bundles"]) == 3 and most["has_more"] is False
    exact = raw_pull(server, "alice", max_bundles=3).json()
    assert len(exact["bundles"]) == 3 and exact["has_more"] is False


async def status_counter(server: ServerProcess) -> int:
    count: int = httpx.get(f"{server.base_url}/syncx/status").json()["history_pruned_error_count"]
    return count


async def test_history_pruned_below_the_floor(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    await seed(pg_pool, "alice", 5)
    await pg_pool.execute(
        "UPDATE sync.user_state SET retained_bundle_floor = 3 WHERE user_id = 'alice'"
    )
    before = await status_counter(server)
    for query, checkpoint in (
        ({"after_bundle_seq": 3}, 3),
        ({"after_bundle_seq": 1}, 1),
        ({"target_bundle_seq": 2}, 2),
        ({"after_bundle_seq": 4, "target_bundle_seq": 3}, 3),
    ):
        response = raw_pull(server, "alice", **query)
        assert response.status_code == 409, query
        assert response.json() == {
            "error": "history_pruned",
            "message": f"requested checkpoint {checkpoint} is older than retained history"
            " floor 3 for user alice",
        }
    assert await status_counter(server) == before + 4  # every history_pruned answer counts

    # after=0 is exempt: the retained bundles above the floor come back (the reference's gap).
    body = raw_pull(server, "alice").json()
    assert [b["bundle_seq"] for b in body["bundles"]] == [4, 5]
    assert raw_pull(server, "alice", after_bundle_seq=4).json()["bundles"][0]["bundle_seq"] == 5

    # ...unless the floor reaches the latest bundle: the ceiling itself is pruned.
    await pg_pool.execute(
        "UPDATE sync.user_state SET retained_bundle_floor = 5 WHERE user_id = 'alice'"
    )
    response = raw_pull(server, "alice")
    assert response.status_code == 409 and response.json()["error"] == "history_pruned"
    assert "checkpoint 5 is older than retained history floor 5" in response.json()["message"]
    assert await status_counter(server) == before + 5


async def test_pull_page_costs_the_same_statements_whatever_its_size(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    async with pg_pool.acquire() as conn:
        for count in (1, 40):
            await seed_bundle(conn, "alice", "dev-a", [user_row() for _ in range(count)])
        for _ in range(30):
            await seed_bundle(conn, "alice", "dev-b", [user_row(), user_row("DELETE")])

    async def statements(max_bundles: int) -> tuple[int, pulls.PagePlan, dict[str, Any]]:
        queries: list[Any] = []
        async with pg_pool.acquire() as conn:
            conn.add_query_logger(queries.append)
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                scope = await scopes.require_initialized(conn, "alice")
                plan = await pulls.plan_page(
                    conn,
                    scope,
                    after_bundle_seq=0,
                    max_bundles=max_bundles,
                    target_bundle_seq=0,
                    max_bytes=0,
                )
                body = b"".join([chunk async for chunk in pulls.page_chunks(conn, plan)])
            conn.remove_query_logger(queries.append)
        return len([q for q in queries if "sync." in q.query]), plan, json.loads(body)

    small_count, small, small_body = await statements(1)
    large_count, large, large_body = await statements(5000)
    assert len(small.bundles) == 1 and len(large.bundles) == 32
    assert len(small_body["bundles"]) == 1 and small_body["has_more"] is True
    assert len(large_body["bundles"]) == 32 and large_body["has_more"] is False
    assert [len(b["rows"]) for b in large_body["bundles"]] == [1, 40] + [2] * 30
    assert small_count == large_count <= 3
    total_rows = await pg_pool.fetchval("SELECT count(*) FROM sync.bundle_rows")
    assert total_rows == 1 + 40 + 60


async def test_a_page_stops_at_its_byte_budget_but_always_holds_one_bundle(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path, max_bytes_per_pull=2500)
    try:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
        sizes = []
        async with pool.acquire() as conn:
            for count in (4, 4, 4, 40, 4):  # ~250 bytes a row: 1 kB, 1 kB, 1 kB, 10 kB, 1 kB
                await seed_bundle(conn, "alice", "dev-a", [user_row() for _ in range(count)])
            sizes = [
                r[0] for r in await conn.fetch("SELECT byte_count FROM sync.bundle_log ORDER BY 1")
            ]
        await pool.close()
        assert sum(sizes[:2]) <= 2500 < sum(sizes[:3])
        pages = []
        after = 0
        while True:
            body = raw_pull(server, "alice", after_bundle_seq=after).json()
            pages.append([b["bundle_seq"] for b in body["bundles"]])
            if not body["has_more"]:
                break
            after = body["bundles"][-1]["bundle_seq"]
        # two small bundles fit; the 10 kB bundle is over budget on its own and still served
        assert pages == [[1, 2], [3], [4], [5]]
    finally:
        server.stop()


async def test_a_large_bundle_is_streamed_and_verifies(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    count = 3 * pulls.ROW_BATCH + 11
    async with pg_pool.acquire() as conn:
        seq, digest = await seed_bundle(
            conn, "alice", "dev-a", [user_row(name=f"n{i}") for i in range(count)]
        )
        await seed_bundle(conn, "alice", "dev-a", [user_row("DELETE")])
    headers = {"Authorization": f"Bearer {server.token('alice')}", "Oversync-Source-ID": "dev-x"}
    with httpx.stream(
        "GET", f"{server.base_url}/sync/pull", headers=headers, timeout=30.0
    ) as response:
        assert response.status_code == 200
        assert response.headers.get("transfer-encoding") == "chunked"  # streamed, not built whole
        chunks = list(response.iter_raw())
    body = json.loads(b"".join(chunks))
    first, second = body["bundles"]
    assert (first["bundle_seq"], first["row_count"], len(first["rows"])) == (seq, count, count)
    assert bundle_hash(first["rows"])[0] == digest
    assert [r["payload"]["name"] for r in first["rows"][:3]] == ["n0", "n1", "n2"]
    assert second["rows"][0]["op"] == "DELETE" and "payload" not in second["rows"][0]
    assert body["stable_bundle_seq"] == seq + 1 and body["has_more"] is False


async def test_a_page_closed_early_ends_its_next_statement_first(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    """The next batch's statement is already running when a chunk is handed out; closing the
    iterator then waits for it, so the connection is free for the transaction's end."""
    count = 2 * pulls.ROW_BATCH + 5
    async with pg_pool.acquire() as conn:
        await seed_bundle(conn, "alice", "dev-a", [user_row() for _ in range(count)])
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            scope = await scopes.require_initialized(conn, "alice")
            plan = await pulls.plan_page(
                conn, scope, after_bundle_seq=0, max_bundles=10, target_bundle_seq=0, max_bytes=0
            )
            chunks = pulls.page_chunks(conn, plan)
            first = await anext(chunks)
            assert first.startswith(b'{"stable_bundle_seq":1,"bundles":[{"bundle_seq":1,')
            await asyncio.sleep(0.01)  # as a send would: the next statement is under way
            await chunks.aclose()
            assert await conn.fetchval("SELECT 1") == 1  # no statement in progress


async def test_a_client_leaving_mid_page_leaves_no_open_transaction(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    count = 4 * pulls.ROW_BATCH
    async with pg_pool.acquire() as conn:
        for _ in range(3):
            await seed_bundle(conn, "alice", "dev-a", [user_row() for _ in range(count)])
    headers = {"Authorization": f"Bearer {server.token('alice')}", "Oversync-Source-ID": "dev-x"}
    with httpx.stream("GET", f"{server.base_url}/sync/pull", headers=headers) as response:
        assert response.status_code == 200
        next(response.iter_raw())  # then hang up
    idle_in_transaction = """
        SELECT count(*) FROM pg_stat_activity
        WHERE datname = current_database() AND state LIKE 'idle in transaction%'
    """
    for _ in range(200):
        if await pg_pool.fetchval(idle_in_transaction) == 0:
            break
        await asyncio.sleep(0.05)
    assert await pg_pool.fetchval(idle_in_transaction) == 0
    body = raw_pull(server, "alice").json()  # the server's connections still work
    assert [len(b["rows"]) for b in body["bundles"]] == [count] * 3
