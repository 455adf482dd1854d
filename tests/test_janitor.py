"""Expired push and snapshot sessions are deleted by the background janitor, outside every user
lock, and snapshot sessions are bounded per source and per user (issue 9, item 8)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from oversync_client.api.snapshot import get_snapshot_chunk
from oversync_client.models import SnapshotSession
from oversync_client.types import Response
from oversync_server.janitor import Janitor
from protocol_helpers import (
    attach,
    expect_error,
    insert_user,
    parsed,
    push_rows,
    snapshot_create,
    snapshot_rows,
    start_server,
    started_runtime,
)
from push_support import chunk, error, staging, upload, user_insert
from serverproc import ServerProcess

_COUNTS = """
SELECT (SELECT count(*) FROM sync.push_sessions) AS push,
       (SELECT count(*) FROM sync.push_session_rows) AS push_rows,
       (SELECT count(*) FROM sync.snapshot_sessions) AS snapshot,
       (SELECT count(*) FROM sync.snapshot_session_rows)
         + (SELECT COALESCE(sum(row_count), 0) FROM sync.snapshot_pages) AS snapshot_rows
"""


async def _counts(database_url: str) -> dict[str, int]:
    conn = await asyncpg.connect(database_url)
    try:
        return dict(await conn.fetchrow(_COUNTS))
    finally:
        await conn.close()


def _sessions(server: ServerProcess, user: str) -> tuple[list[str], list[str]]:
    """Two push sessions (3 staged rows each) and two snapshot sessions (2 rows each) of `user`,
    from sources a and b; (push ids, snapshot ids)."""
    pushes, snapshots = [], []
    with server.client(user) as client:
        attach(client, "a")
        push_rows(client, "a", 1, [insert_user(), insert_user()])
        for source in ("a", "b"):
            push_id = staging(client, source, 2 if source == "a" else 1, 5)
            upload(client, source, push_id, 0, [user_insert() for _ in range(3)])
            pushes.append(push_id)
            snapshot = parsed(snapshot_create(client, source), SnapshotSession)
            snapshots.append(snapshot.snapshot_id)
    return pushes, snapshots


async def test_the_janitor_deletes_expired_sessions_in_the_background(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(
        database_url, tmp_path, janitor_interval_seconds=0.2, janitor_batch_size=2
    )
    try:
        (old_push, live_push), (old_snapshot, live_snapshot) = _sessions(server, "alice")
        conn = await asyncpg.connect(database_url)
        try:
            assert dict(await conn.fetchrow(_COUNTS)) == {
                "push": 2,
                "push_rows": 6,
                "snapshot": 2,
                "snapshot_rows": 4,
            }
            # Another server process holds alice's user lock the whole time: the janitor does
            # not need it.
            key = await conn.fetchval("SELECT hashtextextended('alice', 0)")
            await conn.execute("SELECT pg_advisory_lock($1)", key)
            await conn.execute(
                "UPDATE sync.push_sessions SET expires_at = now() - interval '1 second'"
                " WHERE push_id = $1",
                uuid.UUID(old_push),
            )
            await conn.execute(
                "UPDATE sync.snapshot_sessions SET expires_at = now() - interval '1 second'"
                " WHERE snapshot_id = $1",
                uuid.UUID(old_snapshot),
            )
            deadline = time.monotonic() + 10
            counts = dict(await conn.fetchrow(_COUNTS))
            while counts["push"] + counts["snapshot"] > 2 and time.monotonic() < deadline:
                time.sleep(0.1)
                counts = dict(await conn.fetchrow(_COUNTS))
        finally:
            await conn.close()
        assert counts == {"push": 1, "push_rows": 3, "snapshot": 1, "snapshot_rows": 2}
        with server.client("alice") as client:
            assert len(snapshot_rows(client, "a", live_snapshot)) == 2  # the live ones stay
            gone = chunk(client, "a", old_push, 3, [user_insert()])
            error(gone, 404, "push_session_not_found")
            upload(client, "b", live_push, 3, [user_insert()])
        assert "Traceback" not in server.log()
    finally:
        server.stop()


async def test_a_sweep_deletes_in_batches_and_skips_locked_sessions(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path, janitor_interval_seconds=0)  # janitor off
    try:
        _sessions(server, "alice")
        _sessions(server, "bob")
    finally:
        server.stop()
    async with started_runtime(database_url, janitor_batch_size=2) as runtime:
        janitor = Janitor(runtime)
        pool = runtime.pool
        await pool.execute("UPDATE sync.push_sessions SET expires_at = now() - interval '1 s'")
        await pool.execute("UPDATE sync.snapshot_sessions SET expires_at = now() - interval '1 s'")
        async with pool.acquire() as holder, holder.transaction():
            # A request holds one expired push session (e.g. a chunk upload about to refuse it).
            locked = await holder.fetchval(
                "SELECT push_id FROM sync.push_sessions ORDER BY push_id LIMIT 1 FOR UPDATE"
            )
            first = await janitor.sweep()
        assert (first.push_sessions, first.push_session_rows) == (3, 9)
        # this server's sessions keep their rows as pages (one page each here)
        assert (first.snapshot_sessions, first.snapshot_pages) == (4, 4)
        assert first.snapshot_session_rows == 0
        left = await pool.fetch("SELECT push_id FROM sync.push_sessions")
        assert [row["push_id"] for row in left] == [locked]
        second = await janitor.sweep()
        assert (second.push_sessions, second.push_session_rows) == (1, 3)
        assert second.snapshot_sessions == 0
        assert await _counts(database_url) == {
            "push": 0,
            "push_rows": 0,
            "snapshot": 0,
            "snapshot_rows": 0,
        }
        assert (await janitor.sweep()).total == 0


async def test_creates_leave_expired_sessions_to_the_janitor(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path, janitor_interval_seconds=0)
    try:
        _sessions(server, "alice")
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute("UPDATE sync.push_sessions SET expires_at = now() - interval '1 s'")
            await conn.execute(
                "UPDATE sync.snapshot_sessions SET expires_at = now() - interval '1 s'"
            )
            with server.client("bob") as client:  # another user's creates
                attach(client, "c")
                staging(client, "c", 1, 1)
                parsed(snapshot_create(client, "c"), SnapshotSession)
            counts = dict(await conn.fetchrow(_COUNTS))
        finally:
            await conn.close()
        assert counts == {"push": 3, "push_rows": 6, "snapshot": 3, "snapshot_rows": 4}
    finally:
        server.stop()


# ------------------------------------------------------------ snapshot sessions per source/user


def _too_many(response: Response[Any]) -> str:
    """The message of a 429 too_many_snapshot_sessions (the spec does not declare it yet, so the
    typed client leaves it unparsed)."""
    assert response.status_code == 429, response.content
    body = json.loads(response.content)
    assert body["error"] == "too_many_snapshot_sessions", body
    return str(body["message"])


async def test_a_sources_new_snapshot_session_replaces_its_older_one(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path, janitor_interval_seconds=0)
    try:
        with server.client("carol") as client:
            attach(client, "a")
            push_rows(client, "a", 1, [insert_user(), insert_user(), insert_user()])
            first = parsed(snapshot_create(client, "a"), SnapshotSession)
            other = parsed(snapshot_create(client, "b"), SnapshotSession)
            second = parsed(snapshot_create(client, "a"), SnapshotSession)
            assert len(snapshot_rows(client, "a", second.snapshot_id)) == 3
            assert len(snapshot_rows(client, "b", other.snapshot_id)) == 3
            replaced = get_snapshot_chunk.sync_detailed(
                first.snapshot_id, client=client, oversync_source_id="a"
            )
            expect_error(replaced, 404, "snapshot_session_not_found")
        counts = await _counts(database_url)
        assert (counts["snapshot"], counts["snapshot_rows"]) == (2, 6)
    finally:
        server.stop()


async def test_live_snapshot_sessions_are_capped_per_user(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(
        database_url, tmp_path, max_snapshot_sessions_per_user=2, janitor_interval_seconds=0
    )
    try:
        with server.client("dave") as client:
            attach(client, "a")
            parsed(snapshot_create(client, "a"), SnapshotSession)
            parsed(snapshot_create(client, "b"), SnapshotSession)
            refused = snapshot_create(client, "c")
            assert "max_snapshot_sessions_per_user 2" in _too_many(refused)
            assert refused.headers["retry-after"] == "1"
            parsed(snapshot_create(client, "a"), SnapshotSession)  # a replaces its own
            with server.client("erin") as other:  # the cap is per user
                attach(other, "c")
                parsed(snapshot_create(other, "c"), SnapshotSession)
            conn = await asyncpg.connect(database_url)
            try:
                await conn.execute(
                    "UPDATE sync.snapshot_sessions SET expires_at = now() - interval '1 s'"
                    " WHERE source_id = 'b'"
                )
            finally:
                await conn.close()
            parsed(snapshot_create(client, "c"), SnapshotSession)  # an expired one does not count
    finally:
        server.stop()


async def test_the_default_cap_is_four_and_a_refusal_stores_nothing(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    with server.client("fay") as client:
        attach(client, "a")
        push_rows(client, "a", 1, [insert_user()])
        for source in "abcd":
            parsed(snapshot_create(client, source), SnapshotSession)
        _too_many(snapshot_create(client, "e"))
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.snapshot_sessions") == 4
    assert await pg_pool.fetchval("SELECT sum(row_count) FROM sync.snapshot_pages") == 4
