"""Every error of push create / chunk / commit / delete / committed rows (protocol.md §16),
provoked over HTTP against a real server, with the reference's messages where it has them."""

from __future__ import annotations

import uuid

import asyncpg

from oversync_client.models import ConnectResponse
from protocol_helpers import attach, connect_source, parsed, row
from push_support import (
    already,
    chunk,
    commit,
    committed,
    create,
    delete,
    error,
    new_key,
    raw,
    rows_page,
    staging,
    upload,
    user_insert,
)
from serverproc import ServerProcess


def _push(client: object, source: str, sbid: int, rows: list[object]) -> int:
    push_id = staging(client, source, sbid, len(rows))  # type: ignore[arg-type]
    upload(client, source, push_id, 0, rows)  # type: ignore[arg-type]
    return committed(client, source, push_id).bundle_seq  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ create


async def test_create_errors(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    bad_json = raw(server, "alice", "POST", "/sync/push-sessions", content=b'{"source_bundle_id":')
    assert (bad_json.status_code, bad_json.json()["error"]) == (400, "invalid_request")
    for body in (
        {"source_bundle_id": 0, "planned_row_count": 1},
        {"source_bundle_id": 1, "planned_row_count": 0},
    ):
        response = raw(server, "alice", "POST", "/sync/push-sessions", json=body)
        assert (response.status_code, response.json()["error"]) == (400, "push_session_invalid")
    with server.client("alice") as client:
        # no connect yet: the scope is uninitialized; an initialization_id there has expired
        message = error(create(client, "dev-a", 1, 1), 409, "scope_uninitialized").message
        assert message == "sync scope for user alice is not initialized"
        error(create(client, "dev-a", 1, 1, str(uuid.uuid4())), 410, "initialization_expired")
        attach(client, "dev-a")
        invalid = error(
            create(client, "dev-a", 1, 1, str(uuid.uuid4())), 400, "push_session_invalid"
        )
        assert invalid.message == "initialization_id must be absent once the scope is initialized"
        out_of_order = error(create(client, "dev-a", 2, 1), 409, "source_sequence_out_of_order")
        assert (
            out_of_order.message
            == "source dev-a for user alice expected next source_bundle_id 1, got 2"
        )
        _push(client, "dev-a", 1, [user_insert()])
        _push(client, "dev-a", 2, [user_insert()])
        assert already(create(client, "dev-a", 1, 1)).bundle_seq == 1
        # the retained floor moves past bundle 1: its tuple can no longer be replayed
        async with pg_pool.acquire() as conn:
            await conn.execute("UPDATE sync.user_state SET retained_bundle_floor = 1")
        pruned = error(create(client, "dev-a", 1, 1), 409, "history_pruned")
        assert pruned.message == (
            "source tuple (dev-a, 1) for user alice is older than retained duplicate history;"
            " max committed source_bundle_id is 2"
        )
        assert already(create(client, "dev-a", 2, 1)).bundle_seq == 2
        # a retired source: structured body; a retained tuple still replays
        async with pg_pool.acquire() as conn:
            await conn.execute(
                "UPDATE sync.source_state SET state = 'retired', replaced_by_source_id = 'dev-z',"
                " retirement_reason = 'source_replacement' WHERE source_id = 'dev-a'"
            )
        retired = error(create(client, "dev-a", 3, 1), 409, "source_retired")
        assert retired.message == "source dev-a for user alice was retired and replaced by dev-z"
        assert (retired.source_id, retired.replaced_by_source_id) == ("dev-a", "dev-z")
        assert already(create(client, "dev-a", 2, 1)).bundle_seq == 2


def test_create_errors_while_initializing(server: ServerProcess) -> None:
    with server.client("alice") as client:
        lease = parsed(connect_source(client, "dev-a", pending=True), ConnectResponse)
        init_id = str(lease.initialization_id)
        missing = error(create(client, "dev-a", 1, 1), 400, "push_session_invalid")
        assert missing.message == "initialization_id is required while the scope is initializing"
        error(create(client, "dev-a", 1, 1, str(uuid.uuid4())), 409, "initialization_stale")
        error(create(client, "dev-b", 1, 1, init_id), 409, "initialization_stale")
        # the seeding push initializes the scope
        push_id = staging(client, "dev-a", 1, 1, init_id)
        upload(client, "dev-a", push_id, 0, [user_insert()])
        assert committed(client, "dev-a", push_id).bundle_seq == 1
        assert (
            parsed(connect_source(client, "dev-b"), ConnectResponse).resolution
            == "remote_authoritative"
        )
        error(create(client, "dev-a", 2, 1, init_id), 400, "push_session_invalid")


async def test_create_failure_is_a_500(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        async with pg_pool.acquire() as conn:
            await conn.execute("ALTER TABLE sync.push_sessions RENAME TO push_sessions_away")
        failed = error(create(client, "dev-a", 1, 1), 500, "push_session_create_failed")
        assert failed.message == "Failed to create push session"


# ------------------------------------------------------------------------------------ chunks


def test_chunk_row_validation(server: ServerProcess) -> None:
    key = new_key()
    cases = [
        (
            row("users", "INSERT", key, {"name": "x"}, schema="Bad-Schema"),
            'invalid schema name "bad-schema"',
        ),
        (row("users;", "INSERT", key, {}), 'invalid table name "users;"'),
        (row("nope", "INSERT", key, {}), "table business.nope is not registered"),
        (row("users", "UPSERT", key, {}), 'invalid op "UPSERT"'),
        (
            row("users", "INSERT", key.upper(), {}),
            "row key business.users.id must use canonical dashed lowercase UUID text",
        ),
        (
            row("users", "DELETE", key, {"name": "x"}),
            "DELETE for business.users must not include payload",
        ),
        (row("users", "INSERT", key), "INSERT for business.users requires payload"),
        (
            row("users", "INSERT", key, {"_sync_scope_id": "bob"}),
            'payload for business.users must not include hidden scope column "_sync_scope_id"',
        ),
        (
            row("users", "INSERT", key, {"id": new_key()}),
            "payload key business.users.id must match request key",
        ),
        (
            row("users", "INSERT", key, {"na-me": 1}),
            'payload for business.users contains invalid column "na-me"',
        ),
        (
            row("users", "INSERT", key, {"nickname": "x"}),
            'payload for business.users contains unknown column "nickname"',
        ),
        (
            row("users", "INSERT", key, {"Name": "x"}),
            'payload for business.users contains unknown column "Name" (column names are lowercase)',
        ),
        (
            row("files", "INSERT", key, {"name": "f", "data": 12}),
            "payload binary field business.files.data must be a base64 string",
        ),
        (
            row("files", "INSERT", key, {"name": "f", "data": "AQI"}),
            "payload binary field business.files.data must be valid base64",
        ),
    ]
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 5)
        for bad, message in cases:
            problem = error(chunk(client, "dev-a", push_id, 0, [bad]), 400, "push_chunk_invalid")
            assert problem.message == message, bad
        twice = [user_insert(key), row("users", "UPDATE", key, {"name": "y"}, base=1)]
        problem = error(chunk(client, "dev-a", push_id, 0, twice), 400, "push_chunk_invalid")
        assert problem.message == f"duplicate target row in push request: business.users {key}"
        # value types are checked against the column types at upload, naming the column
        bad_value = row("typed_rows", "INSERT", key, {"name": "n", "enabled_flag": "yes"})
        problem = error(chunk(client, "dev-a", push_id, 0, [bad_value]), 400, "push_chunk_invalid")
        assert (
            'business.typed_rows has an invalid value for column "enabled_flag" (bigint)'
            in problem.message
        )
        bad_time = row(
            "typed_rows", "INSERT", key, {"name": "n", "enabled_flag": 1, "created_at": "soon"}
        )
        problem = error(chunk(client, "dev-a", push_id, 0, [bad_time]), 400, "push_chunk_invalid")
        assert '"created_at"' in problem.message
        # nothing of a refused chunk was staged
        assert upload(client, "dev-a", push_id, 0, [user_insert()]) == 1


def test_chunk_request_errors(server: ServerProcess) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 2)
        path = f"/sync/push-sessions/{push_id}/chunks"
        bad_json = raw(server, "alice", "POST", path, content=b"[")
        assert (bad_json.status_code, bad_json.json()["error"]) == (400, "invalid_request")
        for body in ({"start_row_ordinal": -1, "rows": []}, {"start_row_ordinal": 0, "rows": []}):
            response = raw(server, "alice", "POST", path, json=body)
            assert (response.status_code, response.json()["error"]) == (400, "push_chunk_invalid")
        too_many = [user_insert() for _ in range(5001)]
        problem = error(chunk(client, "dev-a", push_id, 0, too_many), 400, "push_chunk_invalid")
        assert problem.message == "rows length 5001 exceeds max_rows_per_push_chunk 5000"
        problem = error(
            chunk(client, "dev-a", push_id, 0, [user_insert() for _ in range(3)]),
            400,
            "push_chunk_invalid",
        )
        assert problem.message == "chunk exceeds planned_row_count"
        assert upload(client, "dev-a", push_id, 0, [user_insert()]) == 1
        # a resent chunk (lost response) is out of order
        resent = error(
            chunk(client, "dev-a", push_id, 0, [user_insert()]), 409, "push_chunk_out_of_order"
        )
        assert resent.message == f"push session {push_id} expected start_row_ordinal 1, got 0"
        unknown = str(uuid.uuid4())
        missing = error(
            chunk(client, "dev-a", unknown, 0, [user_insert()]), 404, "push_session_not_found"
        )
        assert missing.message == f"push session {unknown} was not found"
        error(
            chunk(client, "dev-a", "not-a-uuid", 0, [user_insert()]), 404, "push_session_not_found"
        )
        # validation comes before the session look-up
        error(
            chunk(client, "dev-a", unknown, 0, [row("nope", "INSERT", new_key(), {})]),
            400,
            "push_chunk_invalid",
        )
    with server.client("bob") as bob:
        forbidden = error(
            chunk(bob, "dev-a", push_id, 1, [user_insert()]), 403, "push_session_forbidden"
        )
        assert (
            forbidden.message == f"push session {push_id} does not belong to the authenticated user"
        )


async def test_chunk_expiry_and_ttl(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 2)
        async with pg_pool.acquire() as conn:
            before = await conn.fetchval("SELECT expires_at FROM sync.push_sessions")
            upload(client, "dev-a", push_id, 0, [user_insert()])
            after = await conn.fetchval("SELECT expires_at FROM sync.push_sessions")
            assert after > before  # every accepted chunk refreshes the TTL
            await conn.execute(
                "UPDATE sync.push_sessions SET expires_at = now() - interval '1 second'"
            )
        expired = error(
            chunk(client, "dev-a", push_id, 1, [user_insert()]), 410, "push_session_expired"
        )
        assert expired.message == f"push session {push_id} has expired; start a new push session"
        error(commit(client, "dev-a", push_id), 410, "push_session_expired")
        error(delete(client, "dev-a", push_id), 410, "push_session_expired")
    with server.client("bob") as bob:
        attach(bob, "dev-b")
        staging(bob, "dev-b", 1, 1)  # another user's create leaves it to the janitor
    async with pg_pool.acquire() as conn:  # (tests/test_janitor.py deletes it)
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM sync.push_sessions WHERE push_id = $1", uuid.UUID(push_id)
            )
            == 1
        )


async def test_seeding_session_lease_checks(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        lease = parsed(connect_source(client, "dev-a", pending=True), ConnectResponse)
        push_id = staging(client, "dev-a", 1, 2, str(lease.initialization_id))
        upload(client, "dev-a", push_id, 0, [user_insert()])
        async with pg_pool.acquire() as conn:
            await conn.execute(
                "UPDATE sync.scope_state SET lease_expires_at = now() - interval '1 second'"
            )
        stale = error(
            chunk(client, "dev-a", push_id, 1, [user_insert()]), 409, "initialization_stale"
        )
        assert stale.message == "scope is no longer initializing"
        async with pg_pool.acquire() as conn:
            await conn.execute(
                "UPDATE sync.scope_state SET lease_expires_at = now() + interval '1 hour'"
            )
        upload(client, "dev-a", push_id, 1, [user_insert()])
        async with pg_pool.acquire() as conn:
            await conn.execute(
                "UPDATE sync.scope_state SET lease_expires_at = now() - interval '1 second'"
            )
        error(commit(client, "dev-a", push_id), 409, "initialization_stale")


async def test_chunk_failure_is_a_500(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 1)
        async with pg_pool.acquire() as conn:
            await conn.execute("ALTER TABLE sync.push_session_rows RENAME TO psr_away")
        failed = error(
            chunk(client, "dev-a", push_id, 0, [user_insert()]), 500, "push_chunk_failed"
        )
        assert failed.message == "Failed to upload push chunk"


# ------------------------------------------------------------------------------------ commit


async def test_commit_validation_errors(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    key = new_key()
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 2)
        upload(client, "dev-a", push_id, 0, [user_insert(key)])
        incomplete = error(commit(client, "dev-a", push_id), 400, "push_commit_invalid")
        assert incomplete.message == "staged row count 1 does not match planned_row_count 2"
        upload(client, "dev-a", push_id, 1, [row("users", "UPDATE", key, {"name": "x"})])
        duplicate = error(commit(client, "dev-a", push_id), 400, "push_commit_invalid")
        assert (
            duplicate.message
            == f"duplicate target row in staged push session: business.users {key}"
        )

        # database errors caused by the client's values are 400s naming the table and column
        push_id = staging(client, "dev-a", 1, 1)
        upload(client, "dev-a", push_id, 0, [row("users", "INSERT", key, {"email": "no-name@x"})])
        not_null = error(commit(client, "dev-a", push_id), 400, "push_commit_invalid")
        assert 'table business.users column "name"' in not_null.message
        push_id = staging(client, "dev-a", 1, 1)
        post = row(
            "posts", "INSERT", new_key(), {"title": "t", "content": "c", "author_id": new_key()}
        )
        upload(client, "dev-a", push_id, 0, [post])
        fk = error(commit(client, "dev-a", push_id), 400, "push_commit_invalid")
        assert 'constraint "posts_author_id_fkey"' in fk.message and "business.posts" in fk.message

        # an update whose business row vanished captures nothing
        version = _push(client, "dev-a", 1, [user_insert(key)])
        async with pg_pool.acquire() as conn, conn.transaction():
            await conn.execute("SET LOCAL session_replication_role = replica")  # no triggers
            await conn.execute("DELETE FROM business.users")
        push_id = staging(client, "dev-a", 2, 1)
        upload(
            client, "dev-a", push_id, 0, [row("users", "UPDATE", key, {"name": "y"}, base=version)]
        )
        empty = error(commit(client, "dev-a", push_id), 400, "push_commit_invalid")
        assert empty.message == "push session produced no captured business-table effects"
        # nothing of a failed commit remains, and the session can be committed later
        async with pg_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM sync.bundle_log") == 1
            assert await conn.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0


async def test_commit_source_errors(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 1)
        upload(client, "dev-a", push_id, 0, [user_insert()])
        async with pg_pool.acquire() as conn:  # another commit of this source landed meanwhile
            await conn.execute(
                "INSERT INTO sync.source_state (user_pk, source_id, state, max_committed_source_bundle_id)"
                " SELECT user_pk, 'dev-a', 'active', 1 FROM sync.user_state"
            )
        changed = error(commit(client, "dev-a", push_id), 409, "source_sequence_changed")
        assert changed.message == (
            "source dev-a for user alice changed expected next source_bundle_id from staged 1 to 2"
            " before commit"
        )
        push_id = staging(client, "dev-a", 2, 1)
        upload(client, "dev-a", push_id, 0, [user_insert()])
        async with pg_pool.acquire() as conn:
            await conn.execute(
                "UPDATE sync.source_state SET state = 'retired', replaced_by_source_id = 'dev-b',"
                " retirement_reason = 'source_replacement'"
            )
        retired = error(commit(client, "dev-a", push_id), 409, "source_retired")
        assert (retired.source_id, retired.replaced_by_source_id) == ("dev-a", "dev-b")


async def test_commit_session_errors(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        error(commit(client, "dev-a", str(uuid.uuid4())), 404, "push_session_not_found")
        push_id = staging(client, "dev-a", 1, 1)
        upload(client, "dev-a", push_id, 0, [user_insert()])
        with server.client("bob") as bob:
            error(commit(bob, "dev-a", push_id), 403, "push_session_forbidden")
        # any source of the same user may commit it (sessions belong to users)
        assert committed(client, "dev-z", push_id).source_id == "dev-a"
        error(commit(client, "dev-a", push_id), 404, "push_session_not_found")
        push_id = staging(client, "dev-a", 2, 1)
        upload(client, "dev-a", push_id, 0, [user_insert()])
        async with pg_pool.acquire() as conn:
            await conn.execute("ALTER TABLE sync.bundle_log RENAME TO bundle_log_away")
        failed = error(commit(client, "dev-a", push_id), 500, "push_session_commit_failed")
        assert failed.message == "Failed to commit push session"


# ------------------------------------------------------------------------------------ delete


async def test_delete_session(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 2)
        upload(client, "dev-a", push_id, 0, [user_insert()])
        with server.client("bob") as bob:
            forbidden = error(delete(bob, "dev-a", push_id), 403, "push_session_forbidden")
            assert "does not belong" in forbidden.message
        response = delete(client, "dev-b", push_id)
        assert response.status_code == 204 and response.content == b""
        error(delete(client, "dev-a", push_id), 404, "push_session_not_found")
        error(delete(client, "dev-a", "nope"), 404, "push_session_not_found")
        error(chunk(client, "dev-a", push_id, 1, [user_insert()]), 404, "push_session_not_found")
        async with pg_pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM sync.push_session_rows") == 0
        push_id = staging(client, "dev-a", 1, 1)
        async with pg_pool.acquire() as conn:
            await conn.execute("ALTER TABLE sync.user_state RENAME TO user_state_away")
        error(delete(client, "dev-a", push_id), 500, "push_session_delete_failed")


# ------------------------------------------------------------------------------------ committed rows


async def test_committed_rows_errors(server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        for sbid in (1, 2):
            _push(client, "dev-a", sbid, [user_insert()])
        for params, message in (
            ({"max_rows": 0}, "max_rows"),
            ({"after_row_ordinal": -1}, "after_row_ordinal"),
            ({"max_rows": "x"}, "max_rows must be an integer"),
        ):
            response = raw(server, "alice", "GET", "/sync/committed-bundles/1/rows", params=params)
            assert (response.status_code, response.json()["error"]) == (
                400,
                "committed_bundle_chunk_invalid",
            )
            assert message in response.json()["message"]
        for seq in ("0", "x"):
            response = raw(server, "alice", "GET", f"/sync/committed-bundles/{seq}/rows")
            assert (response.status_code, response.json()["error"]) == (
                400,
                "committed_bundle_chunk_invalid",
            )
        missing = error(rows_page(client, "dev-a", 9), 404, "committed_bundle_not_found")
        assert missing.message == "committed bundle 9 was not found"
        async with pg_pool.acquire() as conn:
            await conn.execute("UPDATE sync.user_state SET retained_bundle_floor = 1")
        pruned = error(rows_page(client, "dev-a", 1), 409, "history_pruned")
        assert (
            pruned.message
            == "requested checkpoint 1 is older than retained history floor 1 for user alice"
        )
        assert len(parsed(rows_page(client, "dev-a", 2), object).rows) == 1  # type: ignore[attr-defined]
        async with pg_pool.acquire() as conn:
            await conn.execute("ALTER TABLE sync.bundle_rows RENAME TO bundle_rows_away")
        failed = error(rows_page(client, "dev-a", 2), 500, "committed_bundle_rows_failed")
        assert failed.message == "Failed to fetch committed bundle rows"
