"""Push sessions over HTTP against a real server: the happy path, paging, hashing, idempotency,
conflicts, cascades, concurrency and isolation (protocol.md §6.2-§6.6, §12)."""

from __future__ import annotations

import json
import threading
import uuid
from typing import Any

import asyncpg

from oversync_client.models import (
    CommittedBundleRowsResponse,
    ErrorResponse,
    PushCommitResponse,
)
from oversync_wire import bundle_hash
from protocol_helpers import attach, committed_rows, row
from push_support import (
    already,
    chunk,
    commit,
    committed,
    create,
    error,
    new_key,
    page,
    raw,
    rows_page,
    staging,
    upload,
    user_insert,
)
from serverproc import ServerProcess


def _wire_rows(rows: list[Any]) -> list[dict[str, Any]]:
    return [item.to_dict() for item in rows]


def push(
    client: Any, source: str, sbid: int, rows: list[Any], chunk_rows: int = 1000
) -> PushCommitResponse:
    push_id = staging(client, source, sbid, len(rows))
    for start in range(0, len(rows), chunk_rows):
        upload(client, source, push_id, start, rows[start : start + chunk_rows])
    return committed(client, source, push_id)


def test_push_commit_and_committed_rows_paging(server: ServerProcess) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        author, post, gone = new_key(), new_key(), new_key()
        rows = [
            # child before parent: FKs are deferred, upload order is kept
            row(
                "posts",
                "INSERT",
                post,
                {"id": post, "title": "T", "content": "C", "author_id": author},
            ),
            user_insert(author, "Ann"),
            user_insert(gone, "Gone"),
        ]
        first = push(client, "dev-a", 1, rows, chunk_rows=2)
        assert (first.bundle_seq, first.source_id, first.source_bundle_id) == (1, "dev-a", 1)
        assert first.row_count == 3
        delete_row = row("users", "DELETE", gone, base=1)
        second = push(client, "dev-a", 2, [delete_row])
        assert second.bundle_seq == 2 and second.row_count == 1

        full = page(client, "dev-a", 1)
        assert [r.to_dict()["key"]["id"] for r in full.rows] == [post, author, gone]
        assert [r.row_version for r in full.rows] == [1, 1, 1]
        assert full.next_row_ordinal == 2 and full.has_more is False
        payload = full.rows[1].to_dict()["payload"]
        # the committed after-image has every column (defaults included), never the scope column
        assert set(payload) == {"id", "name", "email", "created_at", "updated_at"}
        assert bundle_hash(_wire_rows(full.rows)) == (
            first.bundle_hash,
            bundle_hash(_wire_rows(full.rows))[1],
        )

        # paging: 0-based ordinals, `after` = last seen, next = last returned
        one = page(client, "dev-a", 1, max_rows=1)
        assert (len(one.rows), one.next_row_ordinal, one.has_more) == (1, 0, True)
        two = page(client, "dev-a", 1, after=0, max_rows=1)
        assert (two.rows[0].to_dict()["key"]["id"], two.next_row_ordinal, two.has_more) == (
            author,
            1,
            True,
        )
        last = page(client, "dev-a", 1, after=1, max_rows=5)
        assert (len(last.rows), last.next_row_ordinal, last.has_more) == (1, 2, False)
        empty = page(client, "dev-a", 1, after=2)
        assert (empty.rows, empty.next_row_ordinal, empty.has_more) == ([], 2, False)
        assert page(client, "dev-a", 1, max_rows=99999).next_row_ordinal == 2  # capped, not refused
        beyond = page(client, "dev-a", 1, after=2**63 - 1)
        assert (beyond.rows, beyond.next_row_ordinal, beyond.has_more) == ([], 2**63 - 1, False)
        # any source of the user may read the bundle; rows of all pages hash to bundle_hash
        assert (
            bundle_hash(_wire_rows(committed_rows(client, "dev-b", 1, max_rows=1)))[0]
            == first.bundle_hash
        )

    # the raw body: Go's shape (DELETE rows carry no payload key, trailing newline)
    response = raw(server, "alice", "GET", "/sync/committed-bundles/2/rows")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content.endswith(b"}\n")
    body = response.json()
    assert body["rows"] == [
        {
            "schema": "business",
            "table": "users",
            "key": {"id": gone},
            "op": "DELETE",
            "row_version": 2,
        }
    ]
    assert body["bundle_hash"] == second.bundle_hash


def test_create_staging_response_omits_zero_ordinal(server: ServerProcess) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    response = raw(
        server,
        "alice",
        "POST",
        "/sync/push-sessions",
        json={"source_bundle_id": 1, "planned_row_count": 2},
    )
    body = response.json()
    assert response.status_code == 200
    assert set(body) == {"push_id", "status", "planned_row_count"}
    assert body["status"] == "staging" and body["planned_row_count"] == 2
    uuid.UUID(body["push_id"])


def test_idempotent_retry_after_lost_responses(server: ServerProcess) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        # a lost create response: creating the same tuple again replaces the first session
        lost = staging(client, "dev-a", 1, 1)
        push_id = staging(client, "dev-a", 1, 1)
        assert push_id != lost
        error(chunk(client, "dev-a", lost, 0, [user_insert()]), 404, "push_session_not_found")
        upload(client, "dev-a", push_id, 0, [user_insert()])
        result = committed(client, "dev-a", push_id)
        # a lost commit response: the session is gone, the tuple answers already_committed
        error(commit(client, "dev-a", push_id), 404, "push_session_not_found")
        replay = already(create(client, "dev-a", 1, 1))
        assert (replay.bundle_seq, replay.row_count, replay.bundle_hash, replay.source_id) == (
            result.bundle_seq,
            result.row_count,
            result.bundle_hash,
            "dev-a",
        )
        assert replay.source_bundle_id == 1
        assert (
            bundle_hash(_wire_rows(committed_rows(client, "dev-a", replay.bundle_seq)))[0]
            == replay.bundle_hash
        )
        # the next tuple continues normally
        assert push(client, "dev-a", 2, [user_insert()]).bundle_seq == 2


def test_conflict_round_trip_with_insert_over_tombstone(server: ServerProcess) -> None:
    key = new_key()
    with server.client("alice") as client:
        attach(client, "dev-a")
        v1 = push(client, "dev-a", 1, [user_insert(key, "Ann")]).bundle_seq
        v2 = push(
            client, "dev-a", 2, [row("users", "UPDATE", key, {"name": "Bea"}, base=v1)]
        ).bundle_seq

        # stale update: 409 with the live server row, nothing applied
        stale = row("users", "UPDATE", key, {"name": "Cid"}, base=v1)
        other = user_insert()
        push_id = staging(client, "dev-a", 3, 2)
        upload(client, "dev-a", push_id, 0, [other, stale])
        conflict = error(commit(client, "dev-a", push_id), 409, "push_conflict")
        assert (
            conflict.message
            == f"update conflict on business.users {key}: expected version {v2}, got {v1}"
        )
        details = conflict.to_dict()["conflict"]
        assert details["schema"] == "business" and details["table"] == "users"
        assert details["key"] == {"id": key} and details["op"] == "UPDATE"
        assert (details["base_row_version"], details["server_row_version"]) == (v1, v2)
        assert details["server_row_deleted"] is False
        assert (
            details["server_row"]["name"] == "Bea" and "_sync_scope_id" not in details["server_row"]
        )
        # the session survives a conflict; the resolved retry reuses the tuple
        retry = staging(client, "dev-a", 3, 2)
        upload(
            client,
            "dev-a",
            retry,
            0,
            [other, row("users", "UPDATE", key, {"name": "Cid"}, base=v2)],
        )
        v3 = committed(client, "dev-a", retry).bundle_seq

        # insert over a live row
        push_id = staging(client, "dev-a", 4, 1)
        upload(client, "dev-a", push_id, 0, [user_insert(key)])
        live = error(commit(client, "dev-a", push_id), 409, "push_conflict")
        assert (
            live.message
            == f"insert conflict on business.users {key}: expected base_row_version {v3}, got 0"
        )
        push_id = staging(client, "dev-a", 4, 1)
        upload(
            client,
            "dev-a",
            push_id,
            0,
            [row("users", "INSERT", key, {"name": "D", "email": "d"}, base=v3)],
        )
        exists = error(commit(client, "dev-a", push_id), 409, "push_conflict")
        assert (
            exists.message
            == f"insert conflict on business.users {key}: row already exists at version {v3}"
        )

        # delete, then insert over the tombstone: base 0 conflicts, base = tombstone version wins
        v4 = push(client, "dev-a", 4, [row("users", "DELETE", key, base=v3)]).bundle_seq
        push_id = staging(client, "dev-a", 5, 1)
        upload(client, "dev-a", push_id, 0, [user_insert(key, "Eve")])
        tomb = error(commit(client, "dev-a", push_id), 409, "push_conflict")
        tomb_conflict = tomb.to_dict()["conflict"]
        assert tomb_conflict["server_row_deleted"] is True and tomb_conflict["server_row"] is None
        assert tomb_conflict["server_row_version"] == v4
        push_id = staging(client, "dev-a", 5, 1)
        upload(
            client,
            "dev-a",
            push_id,
            0,
            [row("users", "INSERT", key, {"name": "Eve", "email": "e"}, base=v4)],
        )
        v5 = committed(client, "dev-a", push_id)
        assert page(client, "dev-a", v5.bundle_seq).rows[0].op == "INSERT"

        # update / delete of a row that does not exist
        missing = new_key()
        push_id = staging(client, "dev-a", 6, 1)
        upload(client, "dev-a", push_id, 0, [row("users", "DELETE", missing, base=0)])
        gone = error(commit(client, "dev-a", push_id), 409, "push_conflict")
        assert gone.message == f"delete conflict on business.users {missing}: row does not exist"
        assert gone.to_dict()["conflict"]["server_row"] is None


def test_fk_cascade_is_captured_in_one_bundle(server: ServerProcess) -> None:
    file_id, review_a, review_b = new_key(), new_key(), new_key()
    with server.client("alice") as client:
        attach(client, "dev-a")
        created = push(
            client,
            "dev-a",
            1,
            [
                row("files", "INSERT", file_id, {"name": "f", "data": "AAEC"}),
                row("file_reviews", "INSERT", review_a, {"review": "ok", "file_id": file_id}),
                row("file_reviews", "INSERT", review_b, {"review": "meh", "file_id": file_id}),
            ],
        )
        removed = push(
            client, "dev-a", 2, [row("files", "DELETE", file_id, base=created.bundle_seq)]
        )
        assert removed.row_count == 3  # the two cascaded review deletes travel in the same bundle
        rows = page(client, "dev-a", removed.bundle_seq).rows
        assert sorted((r.table, r.op) for r in rows) == [
            ("file_reviews", "DELETE"),
            ("file_reviews", "DELETE"),
            ("files", "DELETE"),
        ]
        assert bundle_hash(_wire_rows(rows))[0] == removed.bundle_hash
        # the cascaded rows are tombstoned: re-inserting a review needs the tombstone version
        push_id = staging(client, "dev-a", 3, 1)
        upload(
            client,
            "dev-a",
            push_id,
            0,
            [row("file_reviews", "UPDATE", review_a, {"review": "x"}, base=1)],
        )
        error(commit(client, "dev-a", push_id), 409, "push_conflict")


def test_partial_update_and_key_injection(server: ServerProcess) -> None:
    key = new_key()
    with server.client("alice") as client:
        attach(client, "dev-a")
        push(client, "dev-a", 1, [row("users", "INSERT", key, {"name": "Ann", "email": "a@x"})])
        other = new_key()
        push(client, "dev-a", 2, [row("users", "INSERT", other, {"name": "Bob", "email": "b@x"})])
        # two updates of one table with different column sets in one bundle
        result = push(
            client,
            "dev-a",
            3,
            [
                row("users", "UPDATE", key, {"name": "Ann2"}, base=1),
                row("users", "UPDATE", other, {"email": "b2@x"}, base=2),
            ],
        )
        payloads = {
            r.to_dict()["key"]["id"]: r.to_dict()["payload"]
            for r in page(client, "dev-a", result.bundle_seq).rows
        }
        assert (payloads[key]["name"], payloads[key]["email"]) == ("Ann2", "a@x")
        assert (payloads[other]["name"], payloads[other]["email"]) == ("Bob", "b2@x")


def test_inserts_and_updates_with_mixed_column_sets_in_several_tables(
    server: ServerProcess,
) -> None:
    """Rows of one table that name different columns each apply with their own columns (the rest
    take column defaults or keep their value), in INSERT and UPDATE groups of several tables."""
    ada, bob, cyd = new_key(), new_key(), new_key()
    post_a, post_b = new_key(), new_key()
    stamp = "2024-01-02T03:04:05Z"
    with server.client("alice") as client:
        attach(client, "dev-a")
        first = push(
            client,
            "dev-a",
            1,
            [
                row("users", "INSERT", ada, {"name": "Ada", "email": "ada@x"}),
                row("posts", "INSERT", post_a, {"title": "t", "content": "c", "author_id": ada}),
                row("users", "INSERT", bob, {"name": "Bob", "email": "b@x", "created_at": stamp}),
                row("posts", "INSERT", post_b, {"title": "u", "content": "d"}),
                row("users", "INSERT", cyd, {"name": "Cyd", "email": "c@x"}),
            ],
        )
        assert first.row_count == 5
        second = push(
            client,
            "dev-a",
            2,
            [
                row("users", "UPDATE", ada, {"email": "ada2@x"}, base=1),
                row("posts", "UPDATE", post_a, {"title": "t2"}, base=1),
                row("users", "UPDATE", bob, {"name": "Bobby", "created_at": stamp}, base=1),
                row("posts", "UPDATE", post_b, {"content": "d2", "author_id": bob}, base=1),
            ],
        )
        assert second.row_count == 4
        served = {}
        for bundle_seq in (first.bundle_seq, second.bundle_seq):
            for item in page(client, "dev-a", bundle_seq).rows:
                data = item.to_dict()
                served[data["key"]["id"]] = data["payload"]
    assert (served[ada]["name"], served[ada]["email"]) == ("Ada", "ada2@x")
    assert (served[bob]["name"], served[bob]["email"]) == ("Bobby", "b@x")
    assert served[bob]["created_at"].startswith("2024-01-02T03:04:05")
    assert served[cyd]["created_at"] is not None  # the column default filled it
    assert (served[post_a]["title"], served[post_a]["content"]) == ("t2", "c")
    assert served[post_a]["author_id"] == ada
    assert (served[post_b]["title"], served[post_b]["content"]) == ("u", "d2")
    assert served[post_b]["author_id"] == bob


def test_two_devices_of_one_user_interleave(server: ServerProcess) -> None:
    shared = new_key()
    with server.client("alice") as client:
        attach(client, "dev-a")
        attach(client, "dev-b")
        base = push(client, "dev-a", 1, [user_insert(shared)]).bundle_seq
        a = staging(client, "dev-a", 2, 1)
        b = staging(client, "dev-b", 1, 2)
        upload(client, "dev-b", b, 0, [user_insert()])
        upload(client, "dev-a", a, 0, [row("users", "UPDATE", shared, {"name": "A"}, base=base)])
        upload(client, "dev-b", b, 1, [row("users", "UPDATE", shared, {"name": "B"}, base=base)])
        assert committed(client, "dev-a", a).bundle_seq == 2
        # B's second row is now stale: nothing of B's bundle applies
        conflict = error(commit(client, "dev-b", b), 409, "push_conflict")
        assert conflict.to_dict()["conflict"]["server_row"]["name"] == "A"
        retry = staging(client, "dev-b", 1, 1)
        upload(client, "dev-b", retry, 0, [row("users", "UPDATE", shared, {"name": "B"}, base=2)])
        result = committed(client, "dev-b", retry)
        assert (result.bundle_seq, result.source_id, result.source_bundle_id, result.row_count) == (
            3,
            "dev-b",
            1,
            1,
        )


def test_two_users_interleave_and_are_isolated(server: ServerProcess) -> None:
    with server.client("alice") as alice, server.client("bob") as bob:
        attach(alice, "dev-a")
        attach(bob, "dev-a")
        alice_push = staging(alice, "dev-a", 1, 1)
        bob_push = staging(bob, "dev-a", 1, 1)
        shared_key = new_key()  # the same key in two scopes is two different rows
        upload(alice, "dev-a", alice_push, 0, [user_insert(shared_key, "Alice")])
        upload(bob, "dev-a", bob_push, 0, [user_insert(shared_key, "Bob")])
        # bob cannot touch alice's session
        error(chunk(bob, "dev-a", alice_push, 1, [user_insert()]), 403, "push_session_forbidden")
        error(commit(bob, "dev-a", alice_push), 403, "push_session_forbidden")
        assert raw(server, "bob", "DELETE", f"/sync/push-sessions/{alice_push}").status_code == 403
        assert committed(bob, "dev-a", bob_push).bundle_seq == 1
        assert committed(alice, "dev-a", alice_push).bundle_seq == 1
        assert page(alice, "dev-a", 1).rows[0].to_dict()["payload"]["name"] == "Alice"
        assert page(bob, "dev-a", 1).rows[0].to_dict()["payload"]["name"] == "Bob"
        assert push(alice, "dev-a", 2, [user_insert()]).bundle_seq == 2
        # bob has no bundle 2, and never sees alice's
        error(rows_page(bob, "dev-a", 2), 404, "committed_bundle_not_found")
        error(rows_page(server.client("carol"), "dev-a", 1), 404, "committed_bundle_not_found")


def test_concurrent_commits_of_one_user_get_gapless_bundle_seqs(server: ServerProcess) -> None:
    with server.client("alice") as client:
        attach(client, "dev-0")
    results: list[int] = []
    failures: list[BaseException] = []

    def device(index: int) -> None:
        try:
            with server.client("alice") as client:
                for sbid in range(1, 4):
                    results.append(push(client, f"dev-{index}", sbid, [user_insert()]).bundle_seq)
        except BaseException as exc:  # surfaced below
            failures.append(exc)

    threads = [threading.Thread(target=device, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert sorted(results) == list(range(1, 13))


async def test_rows_of_many_tables_and_big_bundles(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        rows = [user_insert(name=f"u{i}") for i in range(2500)]
        teams = [(new_key(), new_key()) for _ in range(300)]
        for team, member in teams:  # a FK cycle: teams <-> team_members
            rows.append(row("teams", "INSERT", team, {"name": "t", "captain_member_id": member}))
            rows.append(row("team_members", "INSERT", member, {"name": "m", "team_id": team}))
        result = push(client, "dev-a", 1, rows, chunk_rows=1000)
        assert result.row_count == len(rows)
        fetched = committed_rows(client, "dev-a", 1, max_rows=700)
        assert len(fetched) == len(rows)
        assert bundle_hash(_wire_rows(fetched))[0] == result.bundle_hash
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM business.users") == 2500
        assert await conn.fetchval("SELECT count(*) FROM sync.row_state") == len(rows)
        assert await conn.fetchval("SELECT count(*) FROM sync.push_sessions") == 0
        assert await conn.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0


async def test_stored_state_matches_the_reference_layout(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    key = new_key()
    with server.client("alice") as client:
        attach(client, "dev-a")
        result = push(client, "dev-a", 1, [user_insert(key)])
    async with pg_pool.acquire() as conn:
        log = await conn.fetchrow("SELECT * FROM sync.bundle_log")
        assert log["bundle_hash"] == bytes.fromhex(result.bundle_hash)
        assert (log["bundle_seq"], log["source_id"], log["source_bundle_id"], log["row_count"]) == (
            1,
            "dev-a",
            1,
            1,
        )
        stored = await conn.fetchrow("SELECT * FROM sync.bundle_rows")
        assert (stored["row_ordinal"], stored["op_code"], bytes(stored["key_bytes"])) == (
            1,
            1,
            uuid.UUID(key).bytes,
        )
        payload = json.loads(stored["payload_wire"])
        assert "_sync_scope_id" not in payload and payload["id"] == key
        state = await conn.fetchrow("SELECT bundle_seq, deleted FROM sync.row_state")
        assert tuple(state) == (1, False)
        source = await conn.fetchrow(
            "SELECT state, max_committed_source_bundle_id FROM sync.source_state"
        )
        assert tuple(source) == ("active", 1)
        assert (
            await conn.fetchval(
                "SELECT next_bundle_seq FROM sync.user_state WHERE user_id = 'alice'"
            )
            == 2
        )
        assert await conn.fetchval("SELECT _sync_scope_id FROM business.users") == "alice"


def test_error_bodies_are_error_responses(server: ServerProcess) -> None:
    response = raw(server, "alice", "POST", "/sync/push-sessions", content=b"{not json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_request"
    parsed_error = ErrorResponse.from_dict(response.json())
    assert parsed_error.message
    assert CommittedBundleRowsResponse  # imported for typing of pages elsewhere
