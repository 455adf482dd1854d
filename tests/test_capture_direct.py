"""The push commit's direct capture (`engine.push_commit`, `schema.direct_apply_condition`):
rows its INSERT and UPDATE statements write are staged by the statements themselves, while
everything else a push sets off, and every write outside it, still goes through the reference
trigger functions."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from oversync_server.engine.schema import UnsupportedSchemaError, require_temporary_tables
from protocol_helpers import attach, insert_user, push_rows, row
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
