"""The push commit's direct capture (`engine.push_commit`, `schema.direct_apply_condition`):
rows its INSERT and UPDATE statements write are staged by the statements themselves, while
everything else a push sets off, and every write outside it, still goes through the reference
trigger functions."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from oversync_server.engine import push_commit
from oversync_server.engine.schema import UnsupportedSchemaError, require_temporary_tables
from oversync_wire import bundle_hash
from protocol_helpers import attach, committed_rows, insert_user, push_rows, row
from serverproc import ServerProcess

HOST_TRIGGERS = """
CREATE FUNCTION business.welcome_post() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO business.posts (id, title, content, author_id)
    VALUES (gen_random_uuid(), 'welcome ' || NEW.name, 'first post', NEW.id);
    RETURN NULL;
END $$;
CREATE TRIGGER welcome AFTER INSERT ON business.users
    FOR EACH ROW EXECUTE FUNCTION business.welcome_post();
CREATE FUNCTION business.shout() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.name := upper(NEW.name);
    RETURN NEW;
END $$;
CREATE TRIGGER shout BEFORE UPDATE ON business.users
    FOR EACH ROW EXECUTE FUNCTION business.shout();
"""

BUNDLE_ROWS = """
SELECT c.table_name, r.op_code, r.payload_wire::text AS payload
FROM sync.bundle_rows r JOIN sync.table_catalog c USING (table_id)
JOIN sync.user_state u USING (user_pk)
WHERE u.user_id = $1 AND r.bundle_seq = $2 ORDER BY r.row_ordinal
"""


async def test_host_trigger_effects_of_pushed_rows_are_captured(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    await pg_pool.execute(HOST_TRIGGERS)
    ada, bob = str(uuid.uuid4()), str(uuid.uuid4())
    with server.client("alice") as client:
        attach(client, "dev-a")
        first = push_rows(
            client, "dev-a", 1, [insert_user("ada", user_id=ada), insert_user("bob", user_id=bob)]
        )
        payload = {"name": "ada lovelace"}
        second = push_rows(
            client, "dev-a", 2, [row("users", "UPDATE", ada, payload, base=first.bundle_seq)]
        )
    inserted = await pg_pool.fetch(BUNDLE_ROWS, "alice", first.bundle_seq)
    # the pushed rows first (one statement), then what the AFTER trigger wrote for each
    assert [(r["table_name"], r["op_code"]) for r in inserted] == [
        ("users", 1),
        ("users", 1),
        ("posts", 1),
        ("posts", 1),
    ]
    assert first.row_count == 4
    assert sorted(
        '"welcome ada"' in r["payload"] or '"welcome bob"' in r["payload"] for r in inserted[2:]
    ) == [True, True]
    updated = await pg_pool.fetch(BUNDLE_ROWS, "alice", second.bundle_seq)
    assert len(updated) == 1 and updated[0]["op_code"] == 2
    assert '"name":"ADA LOVELACE"' in updated[0]["payload"]  # the BEFORE trigger's after-image
    leftovers = await pg_pool.fetchval("SELECT count(*) FROM sync.bundle_capture_stage")
    assert leftovers == 0


async def test_the_direct_setting_does_not_open_registered_tables(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    table_id = await pg_pool.fetchval(
        "SELECT table_id FROM sync.table_catalog WHERE table_name = 'users'"
    )
    async with pg_pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT set_config('oversync.capture_direct', $1, true)", str(table_id))
        with pytest.raises(asyncpg.RaiseError, match="requires oversync sync bundle context"):
            await conn.execute(
                "INSERT INTO business.users (_sync_scope_id, id, name, email)"
                " VALUES ('alice', gen_random_uuid(), 'x', 'x')"
            )


async def test_bootstrap_needs_the_temporary_privilege(
    pg_pool: asyncpg.Pool, database_url: str
) -> None:
    role = f"no_temp_{uuid.uuid4().hex[:8]}"
    database = await pg_pool.fetchval("SELECT current_database()")
    await pg_pool.execute(f'CREATE ROLE "{role}" LOGIN')
    try:
        await pg_pool.execute(f'REVOKE TEMPORARY ON DATABASE "{database}" FROM PUBLIC')
        conn = await asyncpg.connect(database_url, user=role)
        try:
            with pytest.raises(UnsupportedSchemaError, match="GRANT TEMPORARY ON DATABASE"):
                await require_temporary_tables(conn)
        finally:
            await conn.close()
        async with pg_pool.acquire() as admin:
            await require_temporary_tables(admin)  # a superuser may
    finally:
        await pg_pool.execute(f'GRANT TEMPORARY ON DATABASE "{database}" TO PUBLIC')
        await pg_pool.execute(f'DROP ROLE "{role}"')


async def test_a_large_push_stages_in_the_temporary_table_with_the_same_bundle_shape(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    ids = {name: str(uuid.uuid4()) for name in ("u0", "c1", "c2", "c3", "t1", "m1")}
    with server.client("alice") as client:
        attach(client, "dev-a")
        seeded = push_rows(
            client,
            "dev-a",
            1,
            [
                insert_user("u0", user_id=ids["u0"]),
                row("categories", "INSERT", ids["c1"], {"id": ids["c1"], "name": "root"}),
                row(
                    "categories",
                    "INSERT",
                    ids["c2"],
                    {"id": ids["c2"], "name": "mid", "parent_id": ids["c1"]},
                ),
                row(
                    "categories",
                    "INSERT",
                    ids["c3"],
                    {"id": ids["c3"], "name": "leaf", "parent_id": ids["c2"]},
                ),
                row("teams", "INSERT", ids["t1"], {"id": ids["t1"], "name": "team"}),
                row(
                    "team_members",
                    "INSERT",
                    ids["m1"],
                    {"id": ids["m1"], "name": "m", "team_id": ids["t1"]},
                ),
            ],
        )
        base = seeded.bundle_seq
        new_users = [insert_user(f"n{i}") for i in range(push_commit.DIRECT_STAGE_MIN_ROWS)]
        big = push_rows(
            client,
            "dev-a",
            2,
            [
                *new_users,
                row("users", "UPDATE", ids["u0"], {"name": "u0 again"}, base=base),
                row("categories", "DELETE", ids["c1"], base=base),
                row("teams", "DELETE", ids["t1"], base=base),
            ],
        )
        fetched = committed_rows(client, "dev-a", big.bundle_seq)
    stored = await pg_pool.fetch(
        "SELECT c.table_name, r.op_code, encode(r.key_bytes, 'hex') AS k"
        " FROM sync.bundle_rows r JOIN sync.table_catalog c USING (table_id)"
        " JOIN sync.user_state u USING (user_pk)"
        " WHERE u.user_id = 'alice' AND r.bundle_seq = $1 ORDER BY r.row_ordinal",
        big.bundle_seq,
    )
    hexed = {name: uuid.UUID(value).hex for name, value in ids.items()}
    expected = [("users", 1, uuid.UUID(r.to_dict()["key"]["id"]).hex) for r in new_users] + [
        ("users", 2, hexed["u0"]),
        ("categories", 3, hexed["c1"]),
        ("categories", 3, hexed["c2"]),  # cascades follow the statement's own rows
        ("categories", 3, hexed["c3"]),
        ("teams", 3, hexed["t1"]),
        ("team_members", 3, hexed["m1"]),
    ]
    assert [(r["table_name"], r["op_code"], r["k"]) for r in stored] == expected
    assert big.row_count == len(expected)
    assert (
        bundle_hash([r.to_dict() for r in fetched])[0] == big.bundle_hash
    )  # what a client verifies
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0


async def _push_large_without_deletes(
    server: ServerProcess,
) -> tuple[list[str], int, str, list[str]]:
    """A push of DIRECT_STAGE_MIN_ROWS inserts and an update of an earlier row (no deletes: the
    apply statements return their rows, `Staging.RETURNED`); the pushed user keys in order, the
    bundle's seq and hash, and the hash a client computes from the committed rows."""
    earlier = str(uuid.uuid4())
    with server.client("alice") as client:
        attach(client, "dev-a")
        seeded = push_rows(client, "dev-a", 1, [insert_user("old", user_id=earlier)])
        new_users = [insert_user(f"n{i}") for i in range(push_commit.DIRECT_STAGE_MIN_ROWS)]
        update = row("users", "UPDATE", earlier, {"name": "old again"}, base=seeded.bundle_seq)
        big = push_rows(client, "dev-a", 2, [*new_users, update])
        fetched = committed_rows(client, "dev-a", big.bundle_seq)
    keys = [r.to_dict()["key"]["id"] for r in new_users] + [earlier]
    fetched_hash = bundle_hash([r.to_dict() for r in fetched])[0]
    return keys, big.bundle_seq, big.bundle_hash, [fetched_hash]


async def test_a_large_push_without_deletes_keeps_the_bundle_shape(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    keys, seq, digest, (fetched_hash,) = await _push_large_without_deletes(server)
    stored = await pg_pool.fetch(
        "SELECT r.op_code, encode(r.key_bytes, 'hex') AS k, r.payload_wire::text AS payload"
        " FROM sync.bundle_rows r JOIN sync.user_state u USING (user_pk)"
        " WHERE u.user_id = 'alice' AND r.bundle_seq = $1 ORDER BY r.row_ordinal",
        seq,
    )
    expected = [(1, uuid.UUID(k).hex) for k in keys[:-1]] + [(2, uuid.UUID(keys[-1]).hex)]
    assert [(r["op_code"], r["k"]) for r in stored] == expected
    assert '"name":"old again"' in stored[-1]["payload"]
    assert fetched_hash == digest  # what a client verifies
    states = await pg_pool.fetchval(
        "SELECT count(*) FROM sync.row_state s JOIN sync.user_state u USING (user_pk)"
        " WHERE u.user_id = 'alice' AND s.bundle_seq = $1 AND NOT s.deleted",
        seq,
    )
    assert states == len(keys)
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0


async def test_a_large_push_without_deletes_captures_host_trigger_effects(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    await pg_pool.execute(HOST_TRIGGERS)
    keys, seq, digest, (fetched_hash,) = await _push_large_without_deletes(server)
    stored = await pg_pool.fetch(BUNDLE_ROWS, "alice", seq)
    inserts = len(keys) - 1
    # the statement's own rows first, the AFTER trigger's posts after them, then the update
    # (whose after-image the BEFORE trigger changed)
    assert [(r["table_name"], r["op_code"]) for r in stored] == (
        [("users", 1)] * inserts + [("posts", 1)] * inserts + [("users", 2)]
    )
    assert '"name":"OLD AGAIN"' in stored[-1]["payload"]
    assert fetched_hash == digest
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.bundle_capture_stage") == 0
