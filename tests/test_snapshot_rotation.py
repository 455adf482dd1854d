"""Source rotation on snapshot create (protocol.md §6.9, server.md §6.3): retire the previous
source, reserve the new one, atomically with the snapshot; idempotent retries; refusals."""

from __future__ import annotations

from typing import Any

import asyncpg
import httpx

from oversync_client.api.push import (
    commit_push_session,
    create_push_session,
    upload_push_chunk,
)
from oversync_client.models import (
    PushChunkRequest,
    PushSessionAlreadyCommitted,
    PushSessionCreateRequest,
    PushSessionStaging,
    SnapshotSession,
)
from protocol_helpers import (
    attach,
    expect_error,
    insert_user,
    parsed,
    push_rows,
    snapshot_create,
    snapshot_rows,
)
from serverproc import ServerProcess

_SOURCES = """
SELECT source_id, state, max_committed_source_bundle_id, replaced_by_source_id, retirement_reason
FROM sync.source_state ORDER BY source_id
"""


async def _sources(pool: asyncpg.Pool) -> list[tuple[Any, ...]]:
    async with pool.acquire() as conn:
        return [tuple(row) for row in await conn.fetch(_SOURCES)]


async def test_rotation_retires_the_old_source_and_reserves_the_new_one(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-old")
        push_rows(client, "dev-old", 1, [insert_user("a")])
        push_rows(client, "dev-old", 2, [insert_user("b")])
        snapshot = parsed(
            snapshot_create(client, "dev-old", replace_with="dev-new", reason="history_pruned"),
            SnapshotSession,
        )
        assert (snapshot.snapshot_bundle_seq, snapshot.row_count) == (2, 2)
        assert len(snapshot_rows(client, "dev-new", snapshot.snapshot_id)) == 2
        assert await _sources(pg_pool) == [
            ("dev-new", "reserved", 0, "", ""),
            ("dev-old", "retired", 2, "dev-new", "history_pruned"),  # watermark kept
        ]

        # the old source is refused everywhere, with the structured body
        refused = create_push_session.sync_detailed(
            client=client,
            oversync_source_id="dev-old",
            body=PushSessionCreateRequest(source_bundle_id=3, planned_row_count=1),
        )
        error = expect_error(refused, 409, "source_retired")
        assert (error.source_id, error.replaced_by_source_id) == ("dev-old", "dev-new")
        assert error.message == "source dev-old for user alice was retired and replaced by dev-new"
        # ... except an idempotent replay of a retained tuple (checked first, as in Go)
        replay = create_push_session.sync_detailed(
            client=client,
            oversync_source_id="dev-old",
            body=PushSessionCreateRequest(source_bundle_id=2, planned_row_count=1),
        )
        assert parsed(replay, PushSessionAlreadyCommitted).bundle_seq == 2
        # a keep-source snapshot by the retired source is not blocked
        parsed(snapshot_create(client, "dev-old"), SnapshotSession)

        # the replacement starts at 1 and becomes active with its first bundle
        committed = push_rows(client, "dev-new", 1, [insert_user("c")])
        assert committed.bundle_seq == 3
    assert (await _sources(pg_pool))[0] == ("dev-new", "active", 1, "", "")


async def test_a_session_staged_before_the_rotation_cannot_commit(server: ServerProcess) -> None:
    with server.client("bob") as client:
        attach(client, "dev-old")
        staged = create_push_session.sync_detailed(
            client=client,
            oversync_source_id="dev-old",
            body=PushSessionCreateRequest(source_bundle_id=1, planned_row_count=1),
        )
        push_id = parsed(staged, PushSessionStaging).push_id
        chunk = upload_push_chunk.sync_detailed(
            push_id,
            client=client,
            oversync_source_id="dev-old",
            body=PushChunkRequest(start_row_ordinal=0, rows=[insert_user()]),
        )
        assert chunk.status_code == 200
        parsed(snapshot_create(client, "dev-old", replace_with="dev-new"), SnapshotSession)
        commit = commit_push_session.sync_detailed(
            push_id, client=client, oversync_source_id="dev-old"
        )
        error = expect_error(commit, 409, "source_retired")
        assert error.replaced_by_source_id == "dev-new"


async def test_retrying_a_rotation_is_idempotent(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    with server.client("carol") as client:
        attach(client, "dev-old")
        for _ in range(2):  # e.g. the first response was lost
            parsed(
                snapshot_create(client, "dev-old", replace_with="dev-new", reason="source_retired"),
                SnapshotSession,
            )
        assert await _sources(pg_pool) == [
            ("dev-new", "reserved", 0, "", ""),
            ("dev-old", "retired", 0, "dev-new", "source_retired"),  # never committed: 0
        ]
        push_rows(client, "dev-new", 1, [insert_user()])
        # still idempotent once the replacement is active
        parsed(snapshot_create(client, "dev-old", replace_with="dev-new"), SnapshotSession)
        assert len(await _sources(pg_pool)) == 2

        # a different replacement for an already retired source: the real one is named
        diverged = snapshot_create(client, "dev-old", replace_with="dev-third")
        error = expect_error(diverged, 409, "source_retired")
        assert (error.source_id, error.replaced_by_source_id) == ("dev-old", "dev-new")


async def test_unusable_replacements(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("dave") as client:
        attach(client, "dev-a")
        push_rows(client, "dev-b", 1, [insert_user()])
        known = snapshot_create(client, "dev-a", replace_with="dev-b")
        error = expect_error(known, 409, "source_replacement_invalid")
        assert error.message == "replacement source dev-b is already known for user dave"
        assert await _sources(pg_pool) == [("dev-b", "active", 1, "", "")]  # rolled back

        # dev-a -> dev-c, then dev-c -> dev-d: retrying dev-a -> dev-c finds dev-c retired
        parsed(snapshot_create(client, "dev-a", replace_with="dev-c"), SnapshotSession)
        parsed(snapshot_create(client, "dev-c", replace_with="dev-d"), SnapshotSession)
        retry = snapshot_create(client, "dev-a", replace_with="dev-c")
        error = expect_error(retry, 409, "source_replacement_invalid")
        assert error.message == "replacement source dev-c is not available for rotated rebuild"


async def test_invalid_replacement_requests(server: ServerProcess) -> None:
    with server.client("erin") as client:
        attach(client, "dev-a")

    def create(replacement: dict[str, Any]) -> httpx.Response:
        return httpx.post(
            f"{server.base_url}/sync/snapshot-sessions",
            json={"source_replacement": replacement},
            headers={
                "Authorization": f"Bearer {server.token('erin')}",
                "Oversync-Source-ID": "dev-a",
            },
        )

    cases = [
        (
            {"previous_source_id": "dev-z", "new_source_id": "n", "reason": "history_pruned"},
            "previous_source_id must match authenticated source_id",
        ),
        (
            {"previous_source_id": " dev-a ", "new_source_id": "  ", "reason": "history_pruned"},
            "new_source_id is required for source replacement",
        ),
        (
            {"previous_source_id": "dev-a", "new_source_id": "dev-a", "reason": "history_pruned"},
            "new_source_id must differ from previous_source_id",
        ),
        ({"previous_source_id": "dev-a", "new_source_id": "n", "reason": "bored"}, None),
        ({"previous_source_id": "dev-a", "new_source_id": "n"}, None),
    ]
    for replacement, message in cases:
        response = create(replacement)
        assert response.status_code == 400, (replacement, response.text)
        assert response.json()["error"] == "snapshot_session_invalid"
        if message:
            assert response.json()["message"] == message
