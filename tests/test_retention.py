"""Retention (server.md §7, protocol.md §13): the per-user floor advances with each commit, pruned
history answers 409 history_pruned on pull, committed-rows fetch and re-created tuples, and a
snapshot recovers."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from oversync_client.api.push import create_push_session, get_committed_bundle_rows
from oversync_client.models import (
    CommittedBundleRowsResponse,
    PullResponse,
    PushSessionAlreadyCommitted,
    PushSessionCreateRequest,
    SnapshotSession,
)
from oversync_server.config import load_config
from oversync_server.engine.retention import apply_retention
from protocol_helpers import (
    EXAMPLE_CONFIG,
    attach,
    expect_error,
    insert_user,
    parsed,
    pull_page,
    pull_to_stable,
    push_rows,
    seed_bundle,
    snapshot_create,
    snapshot_rows,
    start_server,
    user_row,
)

_COUNTER = (
    "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM sync.history_pruned_error_seq"
)
_STATE = "SELECT next_bundle_seq - 1, retained_bundle_floor FROM sync.user_state WHERE user_id = $1"


async def _retained(conn: asyncpg.Connection, user: str) -> list[int]:
    rows = await conn.fetch(
        "SELECT b.bundle_seq FROM sync.bundle_log b JOIN sync.user_state u USING (user_pk)"
        " WHERE u.user_id = $1 ORDER BY 1",
        user,
    )
    return [row[0] for row in rows]


async def test_pruning_then_history_pruned_everywhere_then_snapshot_recovery(
    database_url: str, tmp_path: Path, pg_pool: asyncpg.Pool
) -> None:
    server = start_server(database_url, tmp_path, retained_bundles_per_user=2)
    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
            keys = []
            for source_bundle_id in range(1, 6):
                user = insert_user(f"u{source_bundle_id}")
                keys.append(user.key.to_dict()["id"])
                push_rows(client, "dev-a", source_bundle_id, [user])
            async with pg_pool.acquire() as conn:
                assert tuple(await conn.fetchrow(_STATE, "alice")) == (5, 3)
                assert await _retained(conn, "alice") == [4, 5]
                # bundle rows went with their bundles; row_state and watermarks stay
                assert await conn.fetchval("SELECT min(bundle_seq) FROM sync.bundle_rows") == 4
                assert await conn.fetchval("SELECT count(*) FROM sync.row_state") == 5
                assert (
                    await conn.fetchval(
                        "SELECT max_committed_source_bundle_id FROM sync.source_state"
                    )
                    == 5
                )
                counter_before = await conn.fetchval(_COUNTER)

            # pull: a checkpoint (or target) at or below the floor is pruned; above it is served
            for query in ({"after": 3}, {"after": 4, "target": 3}, {"after": 0, "target": 2}):
                error = expect_error(pull_page(client, "dev-b", **query), 409, "history_pruned")
            assert error.message == (
                "requested checkpoint 2 is older than retained history floor 3 for user alice"
            )
            page = parsed(pull_page(client, "dev-b", after=4), PullResponse)
            assert [b.bundle_seq for b in page.bundles] == [5]
            # after=0 is never pruned by itself: it silently starts above the floor (as in Go)
            page = parsed(pull_page(client, "dev-b", after=0), PullResponse)
            assert [b.bundle_seq for b in page.bundles] == [4, 5]

            # committed-bundle rows: pruned -> 409, retained -> 200
            pruned = get_committed_bundle_rows.sync_detailed(
                2, client=client, oversync_source_id="dev-a"
            )
            expect_error(pruned, 409, "history_pruned")
            kept = get_committed_bundle_rows.sync_detailed(
                4, client=client, oversync_source_id="dev-a"
            )
            assert parsed(kept, CommittedBundleRowsResponse).source_bundle_id == 4

            # re-creating tuples: pruned (proven by the watermark) -> 409, retained -> replay
            recreated = create_push_session.sync_detailed(
                client=client,
                oversync_source_id="dev-a",
                body=PushSessionCreateRequest(source_bundle_id=2, planned_row_count=1),
            )
            expect_error(recreated, 409, "history_pruned")
            replay = create_push_session.sync_detailed(
                client=client,
                oversync_source_id="dev-a",
                body=PushSessionCreateRequest(source_bundle_id=5, planned_row_count=1),
            )
            assert parsed(replay, PushSessionAlreadyCommitted).bundle_seq == 5

            async with pg_pool.acquire() as conn:
                counter_after = await conn.fetchval(_COUNTER)
            assert counter_after >= counter_before + 3  # every pull refusal was counted

            # recovery: a snapshot at the latest bundle, then incremental pulls from there
            snapshot = parsed(snapshot_create(client, "dev-b"), SnapshotSession)
            assert (snapshot.snapshot_bundle_seq, snapshot.row_count) == (5, 5)
            rows = snapshot_rows(client, "dev-b", snapshot.snapshot_id)
            assert sorted(r.key.to_dict()["id"] for r in rows) == sorted(keys)

            # more commits prune past the snapshot; the open snapshot stays readable
            push_rows(client, "dev-a", 6, [insert_user("u6")])
            push_rows(client, "dev-a", 7, [insert_user("u7")])
            assert len(snapshot_rows(client, "dev-b", snapshot.snapshot_id)) == 5
            expect_error(
                pull_page(client, "dev-b", after=snapshot.snapshot_bundle_seq),
                409,
                "history_pruned",
            )
            fresh = parsed(snapshot_create(client, "dev-b"), SnapshotSession)
            stable, bundles = pull_to_stable(client, "dev-b", after=fresh.snapshot_bundle_seq)
            assert (stable, bundles) == (7, [])
    finally:
        server.stop()


async def test_retention_off_keeps_every_bundle(
    database_url: str, tmp_path: Path, pg_pool: asyncpg.Pool
) -> None:
    server = start_server(database_url, tmp_path, retained_bundles_per_user=0)
    try:
        with server.client("bob") as client:
            attach(client, "dev-a")
            for source_bundle_id in range(1, 4):
                push_rows(client, "dev-a", source_bundle_id, [insert_user()])
            _, bundles = pull_to_stable(client, "dev-b")
        assert [b.bundle_seq for b in bundles] == [1, 2, 3]
        async with pg_pool.acquire() as conn:
            assert tuple(await conn.fetchrow(_STATE, "bob")) == (3, 0)
    finally:
        server.stop()


async def test_the_prune_step_is_batched_and_never_moves_backwards(
    database_url: str, tmp_path: Path, pg_pool: asyncpg.Pool
) -> None:
    start_server(database_url, tmp_path).stop()  # creates the example and sync schemas
    async with pg_pool.acquire() as conn:
        for _ in range(10):
            await seed_bundle(conn, "carol", "dev-a", [user_row()])
        user_pk = await conn.fetchval("SELECT user_pk FROM sync.user_state")
        config = load_config(EXAMPLE_CONFIG).with_changes(
            retained_bundles_per_user=3, retention_prune_batch_size=2
        )
        floors = []
        for _ in range(5):
            async with conn.transaction():
                floors.append(await apply_retention(conn, user_pk=user_pk, config=config))
        assert floors == [2, 4, 6, 7, 7]  # latest 10 - keep 3 = 7, at most 2 per step
        assert await _retained(conn, "carol") == [8, 9, 10]

        # a floor raised by hand (the dev endpoint) is never lowered by the policy
        await conn.execute("UPDATE sync.user_state SET retained_bundle_floor = 9")
        async with conn.transaction():
            assert await apply_retention(conn, user_pk=user_pk, config=config) == 9
        off = config.with_changes(retained_bundles_per_user=0)
        assert await apply_retention(conn, user_pk=user_pk, config=off) is None
        assert await _retained(conn, "carol") == [8, 9, 10]  # off: nothing deleted
