"""Snapshot sessions over real HTTP (protocol.md §6.9-§6.11, server.md §6): a frozen image at an
exact bundle_seq, paged deterministically, with TTL, limits, ownership and fail-closed checks."""

from __future__ import annotations

import asyncio
import base64
import random
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from oversync_client.api.snapshot import delete_snapshot_session, get_snapshot_chunk
from oversync_client.models import SnapshotChunkResponse, SnapshotSession
from protocol_helpers import (
    attach,
    config_file,
    expect_error,
    insert_user,
    parsed,
    push_rows,
    row,
    snapshot_create,
    snapshot_rows,
    start_server,
)
from serverproc import ServerProcess


def _names(rows: list[Any]) -> dict[str, str]:
    return {r.key.to_dict()["id"]: r.payload.to_dict()["name"] for r in rows}


def _raw(server: ServerProcess, user: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token(user)}", "Oversync-Source-ID": "dev-x"}
    return httpx.request(method, server.base_url + path, headers=headers, **kwargs)


async def test_a_10000_row_snapshot_pages_to_the_end_while_pushes_commit(
    server: ServerProcess,
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        users = [insert_user(f"user{i}") for i in range(10_000)]
        push_rows(client, "dev-a", 1, users[:5000])
        push_rows(client, "dev-a", 2, users[5000:])
        created = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
    assert (created.snapshot_bundle_seq, created.row_count) == (2, 10_000)
    assert isinstance(created.byte_count, int) and created.byte_count > 0
    original = {u.key.to_dict()["id"]: u.payload.to_dict()["name"] for u in users}
    versions = {key: (1 if i < 5000 else 2) for i, key in enumerate(original)}

    # Another device keeps committing updates and deletes while the snapshot is read.
    stop = threading.Event()
    committed: list[int] = []

    def writer() -> None:
        rng = random.Random(7)
        keys = list(original)
        with server.client("alice") as client:
            source_bundle_id = 0
            while not stop.is_set():
                source_bundle_id += 1
                chosen = rng.sample(keys, 40)
                rows = [
                    row("users", "UPDATE", k, {"id": k, "name": "changed"}, base=versions[k])
                    for k in chosen[:30]
                ] + [row("users", "DELETE", k, base=versions[k]) for k in chosen[30:]]
                result = push_rows(client, "dev-b", source_bundle_id, rows)
                for k in chosen[:30]:
                    versions[k] = result.bundle_seq
                for k in chosen[30:]:
                    keys.remove(k)
                committed.append(result.bundle_seq)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        seen: list[Any] = []
        after = 0
        with server.client("alice") as client:
            while True:
                page = parsed(
                    await asyncio.to_thread(
                        get_snapshot_chunk.sync_detailed,
                        created.snapshot_id,
                        client=client,
                        oversync_source_id="dev-a",
                        after_row_ordinal=after,
                        max_rows=997,
                    ),
                    SnapshotChunkResponse,
                )
                assert page.snapshot_bundle_seq == 2
                assert page.next_row_ordinal == after + len(page.rows)
                seen.extend(page.rows)
                if not page.has_more:
                    break
                after = page.next_row_ordinal
                while len(committed) < after // 2000 and thread.is_alive():  # interleave
                    await asyncio.sleep(0.01)
    finally:
        stop.set()
        thread.join()
    assert len(committed) >= 4  # the pushes really ran during the read

    keys = [r.key.to_dict()["id"] for r in seen]
    assert len(seen) == 10_000 and len(set(keys)) == 10_000
    assert keys == sorted(keys, key=lambda k: uuid.UUID(k).bytes)  # (table_id, key bytes)
    assert _names(seen) == original  # the frozen image, untouched by later commits
    assert all(r.row_version in (1, 2) and r.table == "users" for r in seen)
    assert all("_sync_scope_id" not in r.payload.to_dict() for r in seen)

    with server.client("alice") as client:
        # a page larger than the maximum is capped at it (5000)
        page = parsed(
            get_snapshot_chunk.sync_detailed(
                created.snapshot_id, client=client, oversync_source_id="dev-a", max_rows=6000
            ),
            SnapshotChunkResponse,
        )
        assert len(page.rows) == 5000 and page.next_row_ordinal == 5000 and page.has_more
        # a later snapshot sees the later state
        later = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
        assert later.snapshot_bundle_seq == committed[-1]
        assert later.row_count == 10_000 - 10 * len(committed)


async def test_an_empty_scope_and_the_response_shape(server: ServerProcess) -> None:
    with server.client("bob") as client:
        attach(client, "dev-a")
    response = _raw(server, "bob", "POST", "/sync/snapshot-sessions")
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    body = response.json()
    assert list(body) == ["snapshot_id", "snapshot_bundle_seq", "row_count", "expires_at"]
    assert (body["snapshot_bundle_seq"], body["row_count"]) == (0, 0)  # byte_count omitted
    assert body["expires_at"].endswith("Z")
    chunk = _raw(server, "bob", "GET", f"/sync/snapshot-sessions/{body['snapshot_id']}")
    assert chunk.json() == {
        "snapshot_id": body["snapshot_id"],
        "snapshot_bundle_seq": 0,
        "rows": [],
        "next_row_ordinal": 0,
        "has_more": False,
    }
    for accepted in (b"{}", b"null"):
        again = _raw(server, "bob", "POST", "/sync/snapshot-sessions", content=accepted)
        assert again.status_code == 200, again.text


async def test_rows_of_every_table_in_table_id_then_key_order(server: ServerProcess) -> None:
    file_id, review_id, user_a, user_b = (str(uuid.uuid4()) for _ in range(4))
    data = base64.b64encode(bytes(range(256)) * 3).decode()
    with server.client("carol") as client:
        attach(client, "dev-a")
        push_rows(
            client,
            "dev-a",
            1,
            [
                row("users", "INSERT", user_a, {"id": user_a, "name": "A", "email": "a@x"}),
                row("users", "INSERT", user_b, {"id": user_b, "name": "B", "email": "b@x"}),
                row("files", "INSERT", file_id, {"id": file_id, "name": "f", "data": data}),
                row(
                    "file_reviews",
                    "INSERT",
                    review_id,
                    {"id": review_id, "review": "ok", "file_id": file_id},
                ),
            ],
        )
        push_rows(client, "dev-a", 2, [row("users", "DELETE", user_b, base=1)])
        created = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
        rows = snapshot_rows(client, "dev-a", created.snapshot_id, max_rows=1)
    assert created.snapshot_bundle_seq == 2 and created.row_count == 3
    # table ids: file_reviews=2, files=3, users=8 (bytewise-sorted schema.table)
    assert [(r.table, r.key.to_dict()["id"]) for r in rows] == [
        ("file_reviews", review_id),
        ("files", file_id),
        ("users", user_a),
    ]
    assert all(r.row_version == 1 for r in rows)
    assert rows[1].payload.to_dict()["data"] == data  # bytea as padded standard base64


async def test_pages_split_by_bytes_and_chunks_slice_multibyte_text(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    # 120 rows of ~60 KB of 1-4 byte UTF-8 each: over PAGE_BYTES, so the rows span two byte-
    # bounded pages, and chunks of every size must cut them exactly at row boundaries.
    text = "aé€😀" * 6000
    names = {str(uuid.uuid4()): f"{i}:{text}" for i in range(120)}
    with server.client("uma") as client:
        attach(client, "dev-a")
        keys = sorted(names)
        for bundle, start in enumerate(range(0, len(keys), 40), start=1):
            push_rows(
                client,
                "dev-a",
                bundle,
                [
                    row("users", "INSERT", k, {"id": k, "name": names[k], "email": "u@x"})
                    for k in keys[start : start + 40]
                ],
            )
        created = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
        pages = await pg_pool.fetch(
            "SELECT first_ordinal, row_count FROM sync.snapshot_pages WHERE snapshot_id = $1"
            " ORDER BY first_ordinal",
            uuid.UUID(created.snapshot_id),
        )
        assert len(pages) > 1 and sum(p["row_count"] for p in pages) == 120
        for max_rows in (1, 7, 5000):
            rows = snapshot_rows(client, "dev-a", created.snapshot_id, max_rows=max_rows)
            assert _names(rows) == names
            assert [r.key.to_dict()["id"] for r in rows] == keys


async def test_a_session_whose_pages_a_database_crash_emptied_answers_410(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    # sync.snapshot_pages is UNLOGGED: crash recovery (or a promoted standby) starts it empty
    # while the session row survives. Truncating it is what recovery does to it.
    with server.client("ursula") as client:
        attach(client, "dev-a")
        push_rows(client, "dev-a", 1, [insert_user() for _ in range(3)])
        created = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
        assert len(snapshot_rows(client, "dev-a", created.snapshot_id, max_rows=2)) == 3
        assert (
            await pg_pool.fetchval(
                "SELECT relpersistence FROM pg_class WHERE oid = 'sync.snapshot_pages'::regclass"
            )
            == b"u"
        )  # a "char"
        await pg_pool.execute("TRUNCATE sync.snapshot_pages")
        for after in (0, 2):
            lost = get_snapshot_chunk.sync_detailed(
                created.snapshot_id,
                client=client,
                oversync_source_id="dev-a",
                after_row_ordinal=after,
            )
            assert "lost its rows" in expect_error(lost, 410, "snapshot_session_expired").message
        past_the_end = get_snapshot_chunk.sync_detailed(
            created.snapshot_id, client=client, oversync_source_id="dev-a", after_row_ordinal=3
        )
        assert parsed(past_the_end, SnapshotChunkResponse).rows == []


async def test_a_session_the_go_server_wrote_is_served_from_snapshot_session_rows(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    # The reference stores one sync.snapshot_session_rows row per snapshot row.
    with server.client("gus") as client:
        attach(client, "dev-a")
        push_rows(client, "dev-a", 1, [insert_user()])
    keys = sorted(str(uuid.uuid4()) for _ in range(5))
    snapshot_id = uuid.uuid4()
    async with pg_pool.acquire() as conn:
        user_pk = await conn.fetchval("SELECT user_pk FROM sync.user_state WHERE user_id = 'gus'")
        table_id = await conn.fetchval(
            "SELECT table_id FROM sync.table_catalog WHERE table_name = 'users'"
        )
        await conn.execute(
            "INSERT INTO sync.snapshot_sessions (snapshot_id, user_pk, snapshot_bundle_seq,"
            " row_count, byte_count, expires_at) VALUES ($1, $2, 1, 5, 100, now() + interval '1h')",
            snapshot_id,
            user_pk,
        )
        await conn.executemany(
            "INSERT INTO sync.snapshot_session_rows (snapshot_id, row_ordinal, table_id,"
            " key_bytes, bundle_seq, payload_wire) VALUES ($1, $2, $3, $4, 1, $5::json)",
            [
                (snapshot_id, n, table_id, uuid.UUID(k).bytes, f'{{"id": "{k}", "name": "n{n}"}}')
                for n, k in enumerate(keys, start=1)
            ],
        )
    with server.client("gus") as client:
        rows = snapshot_rows(client, "dev-a", str(snapshot_id), max_rows=2)
    assert [(r.key.to_dict()["id"], r.payload.to_dict()["name"]) for r in rows] == [
        (k, f"n{n}") for n, k in enumerate(keys, start=1)
    ]


def _chunks(server: ServerProcess, user: str, snapshot_id: str, max_rows: int) -> list[bytes]:
    """Every chunk body of a session as raw bytes, its own id replaced by a placeholder."""
    bodies: list[bytes] = []
    after, more = 0, True
    while more:
        response = _raw(
            server,
            user,
            "GET",
            f"/sync/snapshot-sessions/{snapshot_id}",
            params={"after_row_ordinal": after, "max_rows": max_rows},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        after, more = body["next_row_ordinal"], body["has_more"]
        bodies.append(response.content.replace(snapshot_id.encode(), b"<id>"))
    return bodies


async def test_reference_storage_writes_snapshot_session_rows_served_byte_identically(
    server: ServerProcess, database_url: str, tmp_path: Path, pg_pool: asyncpg.Pool
) -> None:
    # `snapshot_storage: reference` writes the Go server's layout (so a Go server sharing the
    # database can page the session); our chunks of it are the bytes of a `pages` session.
    reference = ServerProcess(database_url, env={"OVERSYNC_SNAPSHOT_STORAGE": "reference"})
    reference.start(tmp_path)
    try:
        file_id, gone = str(uuid.uuid4()), str(uuid.uuid4())
        data = base64.b64encode(bytes(range(256)) * 3).decode()
        users = [insert_user(f"{i}:aé€😀") for i in range(1200)]  # over PAGE_ROWS: two pages
        with server.client("rita") as client:
            attach(client, "dev-a")
            push_rows(client, "dev-a", 1, users)
            push_rows(
                client,
                "dev-a",
                2,
                [
                    row("files", "INSERT", file_id, {"id": file_id, "name": "f", "data": data}),
                    row("users", "INSERT", gone, {"id": gone, "name": "g", "email": "g@x"}),
                ],
            )
            push_rows(client, "dev-a", 3, [row("users", "DELETE", gone, base=2)])
            paged = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
        with reference.client("rita") as client:
            attach(client, "dev-b")
            stored = parsed(snapshot_create(client, "dev-b"), SnapshotSession)
        assert stored.row_count == paged.row_count == 1201
        assert (stored.byte_count, stored.snapshot_bundle_seq) == (paged.byte_count, 3)
        stored_id = uuid.UUID(stored.snapshot_id)
        counts = await pg_pool.fetchrow(
            "SELECT (SELECT count(*) FROM sync.snapshot_session_rows WHERE snapshot_id = $1) AS rows,"
            " (SELECT min(row_ordinal) FROM sync.snapshot_session_rows WHERE snapshot_id = $1)"
            " AS first, (SELECT max(row_ordinal) FROM sync.snapshot_session_rows"
            " WHERE snapshot_id = $1) AS last,"
            " (SELECT count(*) FROM sync.snapshot_pages WHERE snapshot_id = $1) AS pages,"
            " (SELECT count(*) FROM sync.snapshot_session_rows WHERE snapshot_id = $2)"
            " AS paged_rows",
            stored_id,
            uuid.UUID(paged.snapshot_id),
        )
        assert dict(counts) == {"rows": 1201, "first": 1, "last": 1201, "pages": 0, "paged_rows": 0}
        for max_rows in (7, 1000, 5000):
            expected = _chunks(server, "rita", paged.snapshot_id, max_rows)
            assert _chunks(server, "rita", stored.snapshot_id, max_rows) == expected
            assert _chunks(reference, "rita", stored.snapshot_id, max_rows) == expected
    finally:
        reference.stop()


def test_a_bad_snapshot_storage_is_refused_at_startup(database_url: str, tmp_path: Path) -> None:
    for env, config, source in (
        ({"OVERSYNC_SNAPSHOT_STORAGE": "rows"}, None, "OVERSYNC_SNAPSHOT_STORAGE"),
        ({}, config_file(tmp_path, snapshot_storage="go"), "snapshot_storage"),
    ):
        process = ServerProcess(database_url, config=config, env=env)
        with pytest.raises(RuntimeError, match="server exited early") as raised:
            process.start(tmp_path)
        assert f"{source}: Input should be 'pages' or 'reference'" in str(raised.value)


async def test_limits_answer_413(database_url: str, tmp_path: Path) -> None:
    server = start_server(
        database_url,
        tmp_path,
        max_rows_per_snapshot_session=3,
        max_bytes_per_snapshot_session=2000,
    )
    try:
        with server.client("dave") as client:
            attach(client, "dev-a")
            push_rows(client, "dev-a", 1, [insert_user(f"u{i}") for i in range(3)])
            assert parsed(snapshot_create(client, "dev-a"), SnapshotSession).row_count == 3
            push_rows(client, "dev-a", 2, [insert_user("one too many")])
            error = expect_error(
                snapshot_create(client, "dev-a"), 413, "snapshot_session_too_large"
            )
            assert "row_count" in error.message
        with server.client("erin") as client:
            attach(client, "dev-a")
            big = str(uuid.uuid4())
            push_rows(
                client,
                "dev-a",
                1,
                [row("users", "INSERT", big, {"id": big, "name": "x" * 3000, "email": "e"})],
            )
            error = expect_error(
                snapshot_create(client, "dev-a"), 413, "snapshot_session_too_large"
            )
            assert "byte_count" in error.message
    finally:
        server.stop()


async def test_expired_sessions_are_gone(
    database_url: str, tmp_path: Path, pg_pool: asyncpg.Pool
) -> None:
    # The janitor is off here: expired sessions are its job, not a create's (test_janitor.py).
    server = start_server(
        database_url, tmp_path, snapshot_session_ttl_seconds=1, janitor_interval_seconds=0
    )
    try:
        with server.client("frank") as client:
            attach(client, "dev-a")
            push_rows(client, "dev-a", 1, [insert_user()])
            first = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
            # another source: a source's new session replaces its older one
            second = parsed(snapshot_create(client, "dev-b"), SnapshotSession)
            assert len(snapshot_rows(client, "dev-a", first.snapshot_id)) == 1
            time.sleep(1.2)
            expired = get_snapshot_chunk.sync_detailed(
                first.snapshot_id, client=client, oversync_source_id="dev-a"
            )
            expect_error(expired, 410, "snapshot_session_expired")
            # delete ignores expiry
            deleted = delete_snapshot_session.sync_detailed(
                first.snapshot_id, client=client, oversync_source_id="dev-a"
            )
            assert deleted.status_code == 204
            gone = get_snapshot_chunk.sync_detailed(
                first.snapshot_id, client=client, oversync_source_id="dev-a"
            )
            expect_error(gone, 404, "snapshot_session_not_found")
            # a create no longer cleans up other sessions: the expired one stays until the janitor
            parsed(snapshot_create(client, "dev-a"), SnapshotSession)
            still = get_snapshot_chunk.sync_detailed(
                second.snapshot_id, client=client, oversync_source_id="dev-a"
            )
            expect_error(still, 410, "snapshot_session_expired")
        async with pg_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM sync.snapshot_sessions") == 2
    finally:
        server.stop()


async def test_reading_does_not_extend_the_ttl(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    with server.client("gina") as client:
        attach(client, "dev-a")
        created = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
        async with pg_pool.acquire() as conn:
            before = await conn.fetchval("SELECT expires_at FROM sync.snapshot_sessions")
            snapshot_rows(client, "dev-a", created.snapshot_id)
            assert await conn.fetchval("SELECT expires_at FROM sync.snapshot_sessions") == before
    assert created.expires_at == before


async def test_sessions_belong_to_their_user(server: ServerProcess) -> None:
    with server.client("alice") as alice, server.client("bob") as bob:
        attach(alice, "dev-a")
        created = parsed(snapshot_create(alice, "dev-a"), SnapshotSession)
        expect_error(
            get_snapshot_chunk.sync_detailed(
                created.snapshot_id, client=bob, oversync_source_id="dev-b"
            ),
            403,
            "snapshot_session_forbidden",
        )
        expect_error(
            delete_snapshot_session.sync_detailed(
                created.snapshot_id, client=bob, oversync_source_id="dev-b"
            ),
            403,
            "snapshot_session_forbidden",
        )
        # any source of the owner may read and delete it
        snapshot_rows(alice, "dev-other", created.snapshot_id)
        deleted = delete_snapshot_session.sync_detailed(
            created.snapshot_id, client=alice, oversync_source_id="dev-other"
        )
        assert deleted.status_code == 204
        expect_error(
            delete_snapshot_session.sync_detailed(
                created.snapshot_id, client=alice, oversync_source_id="dev-a"
            ),
            404,
            "snapshot_session_not_found",
        )


async def test_request_errors(server: ServerProcess) -> None:
    with server.client("henry") as client:
        expect_error(snapshot_create(client, "dev-a"), 409, "scope_uninitialized")
        attach(client, "dev-a")
        created = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
    base = f"/sync/snapshot-sessions/{created.snapshot_id}"
    cases = [
        ("GET", "/sync/snapshot-sessions/not-a-uuid", {}, 404, "snapshot_session_not_found"),
        ("DELETE", "/sync/snapshot-sessions/not-a-uuid", {}, 404, "snapshot_session_not_found"),
        ("GET", f"/sync/snapshot-sessions/{uuid.uuid4()}", {}, 404, "snapshot_session_not_found"),
        ("GET", base, {"params": {"after_row_ordinal": -1}}, 400, "snapshot_chunk_invalid"),
        ("GET", base, {"params": {"max_rows": 0}}, 400, "snapshot_chunk_invalid"),
        ("GET", base, {"params": {"max_rows": "x"}}, 400, "snapshot_chunk_invalid"),
        ("POST", "/sync/snapshot-sessions", {"json": {"foo": 1}}, 400, "snapshot_session_invalid"),
        ("POST", "/sync/snapshot-sessions", {"content": b"{"}, 400, "snapshot_session_invalid"),
    ]
    for method, path, kwargs, status, code in cases:
        response = _raw(server, "henry", method, path, **kwargs)
        assert (response.status_code, response.json()["error"]) == (status, code), (path, kwargs)


async def test_business_rows_and_row_state_must_agree(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    with server.client("ivy") as client:
        attach(client, "dev-a")
        push_rows(client, "dev-a", 1, [insert_user(), insert_user()])
        async with pg_pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM sync.row_state WHERE ctid = (SELECT min(ctid) FROM sync.row_state)"
            )
        failed = snapshot_create(client, "dev-a")
        expect_error(failed, 500, "snapshot_session_create_failed")
        async with pg_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM sync.snapshot_sessions") == 0
            assert await conn.fetchval("SELECT count(*) FROM sync.snapshot_session_rows") == 0


async def test_a_column_added_while_the_server_runs_is_not_in_snapshots_until_a_restart(
    server: ServerProcess,
) -> None:
    with server.client("carol") as client:
        attach(client, "dev-a")
        push_rows(client, "dev-a", 1, [insert_user("c1")])
    conn = await asyncpg.connect(server.database_url)
    try:
        await conn.execute("ALTER TABLE business.users ADD COLUMN avatar bytea DEFAULT '\\x00ff'")
    finally:
        await conn.close()
    created = _raw(server, "carol", "POST", "/sync/snapshot-sessions").json()
    chunk = _raw(server, "carol", "GET", f"/sync/snapshot-sessions/{created['snapshot_id']}")
    (row,) = chunk.json()["rows"]
    assert row["payload"]["name"] == "c1" and "avatar" not in row["payload"]


_EVERY_TYPE_DDL = """
CREATE SCHEMA app;
CREATE DOMAIN app.email AS text;
CREATE TABLE app.t (
    _sync_scope_id text NOT NULL, id uuid NOT NULL, a text, bb varchar(10), zed char(4),
    i2 int2, i4 int4, i8 int8, n numeric, n2 numeric(10, 3), f4 float4, f8 float8, b bool,
    d date, tm time, ts timestamp, tz timestamptz, by bytea, j json, jb jsonb, dom app.email,
    a_longer_column_name text, PRIMARY KEY (_sync_scope_id, id)
);
INSERT INTO app.t VALUES
 ('u', gen_random_uuid(), E'a"b\\\\c\\n\\t\\u0001\\u001f\\u007f é 日本 😀', 'x', 'ab', -32768,
  2147483647, -9223372036854775808, 1.50, 12.300, 1.1, 0.1, true, '2026-01-02',
  '13:14:15.123456', '2026-01-02 03:04:05.5', '2026-01-02 03:04:05.123+05', '\\x00ff10',
  '{"a" : [1, 2.50, {"b":null}], "a":3}', '{"z": 1, "a": [1, "x"], "bb": {"c": true}}', 'e@x', 'l'),
 ('u', gen_random_uuid(), '', '', '', 0, 0, 0, 0, 0, 'NaN', 'Infinity', false, 'infinity',
  '00:00', '-infinity', 'infinity', '\\x', '[]', '"s"', '', ''),
 ('u', gen_random_uuid(), NULL, NULL, NULL, NULL, NULL, NULL, -1e-20, NULL, 3.4e38, 1e20, NULL,
  '0044-03-15 BC', NULL, '1999-12-31 23:59:59.999999', '1970-01-01 00:00:00+00',
  decode(repeat('ab', 200), 'hex'), 'null', 'null', NULL, NULL),
 ('u', gen_random_uuid(), NULL, NULL, NULL, NULL, NULL, NULL,
  123456789012345678901234567890.123456789, NULL, -0.0, 5e-324, NULL, NULL, NULL, NULL, NULL,
  NULL, '1e5', '1e5', NULL, NULL);
"""


async def test_payload_text_is_what_to_jsonb_prints(pg_pool: asyncpg.Pool) -> None:
    # Snapshot payloads are concatenated per column; the bytes must stay those of
    # `to_jsonb(row)` (bytea as base64), as sessions created before were, whatever the settings.
    from oversync_server.config import RegisteredTable, ServiceConfig
    from oversync_server.engine.catalog import quote_ident, quote_literal
    from oversync_server.engine.schema import load_catalog
    from oversync_server.engine.snapshots import payload_json_sql

    async with pg_pool.acquire() as conn:
        await conn.execute(_EVERY_TYPE_DDL)
        config = ServiceConfig(registered_tables=(RegisteredTable("app", "t", ("id",)),))
        (table,) = (await load_catalog(conn, config)).tables
        columns = ", ".join(quote_ident(c.name) for c in table.payload_columns)
        reference = "to_jsonb(src) || jsonb_build_object({}, {})".format(
            quote_literal("by"), "translate(encode(src.by, 'base64'), E'\\n', '')"
        )
        query = (
            f"SELECT ({reference})::text AS reference, {payload_json_sql(table)} AS rendered"
            f" FROM (SELECT {columns} FROM app.t) AS src"
        )
        for settings in ("TimeZone = 'UTC'", "TimeZone = 'Asia/Kolkata'", "DateStyle = 'German'"):
            await conn.execute(f"SET {settings}")
            rows = await conn.fetch(query)
            assert len(rows) == 4
            for row in rows:
                assert row["rendered"] == row["reference"]
