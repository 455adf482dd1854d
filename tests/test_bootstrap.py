"""Bootstrap of the sync schema: creation, idempotence, and fail-closed validation with one test
per rule (server.md §1.2-§1.6). Every refusal names the table, the rule and the fix."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from oversync_server.config import ConfigError, RegisteredTable, ServiceConfig, load_config
from oversync_server.engine.catalog import KeyKind
from oversync_server.engine.ddl import EXTRA_TABLES, SYNC_TABLES
from oversync_server.engine.schema import UnsupportedSchemaError, bootstrap

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "business"


async def _example(pool: asyncpg.Pool) -> ServiceConfig:
    async with pool.acquire() as conn:
        await conn.execute((EXAMPLE / "schema.sql").read_text())
    return load_config(EXAMPLE / "config.yaml")


def _config(*names: str, key: str = "id") -> ServiceConfig:
    return ServiceConfig(
        registered_tables=tuple(RegisteredTable("app", name, (key,)) for name in names)
    )


async def _refused(pool: asyncpg.Pool, ddl: str, config: ServiceConfig, *fragments: str) -> str:
    async with pool.acquire() as conn:
        await conn.execute("CREATE SCHEMA IF NOT EXISTS app;" + ddl)
    with pytest.raises(UnsupportedSchemaError) as raised:
        await bootstrap(pool, config)
    message = str(raised.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


GOOD_PARENT = "CREATE TABLE app.parent (_sync_scope_id TEXT NOT NULL, id UUID NOT NULL, PRIMARY KEY (_sync_scope_id, id));"


# ------------------------------------------------------------------------------ creation


async def test_bootstrap_creates_layout_and_catalog(pg_pool: asyncpg.Pool) -> None:
    config = await _example(pg_pool)
    catalog = await bootstrap(pg_pool, config)
    assert [t.qualified_name for t in catalog.tables] == [
        "business.categories",
        "business.file_reviews",
        "business.files",
        "business.posts",
        "business.team_members",
        "business.teams",
        "business.typed_rows",
        "business.users",
    ]
    users = catalog.by_name("business", "users")
    assert users is not None and (users.table_id, users.key_kind) == (8, KeyKind.UUID)
    async with pg_pool.acquire() as conn:
        meta = await conn.fetch("SELECT * FROM sync.meta")
        assert [tuple(r) for r in meta] == [(True, "v1", "server_postgres_sync_v1")]
        rows = await conn.fetch("SELECT * FROM sync.table_catalog ORDER BY table_id")
        assert tuple(rows[0]) == (1, "business", "categories", "id", 1)
        for table in SYNC_TABLES + EXTRA_TABLES:
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", table), table
        for sequence in (
            "accepted_push_replay_seq",
            "rejected_registered_write_seq",
            "history_pruned_error_seq",
        ):
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"sync.{sequence}")
        for index in (
            "rs_user_live_snapshot_idx",
            "bcs_tx_user_ordinal_idx",
            "ps_expires_at_idx",
            "ss_expires_at_idx",
        ):
            assert await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"sync.{index}")
        # what the reference's tests say must not exist
        for absent in (
            "sync.applied_pushes",
            "sync.br_user_bundle_key_idx",
            "sync.rs_user_table_bundle_idx",
        ):
            assert await conn.fetchval("SELECT to_regclass($1) IS NULL", absent)
        columns = {
            (r["table_name"], r["column_name"]): (r["data_type"], r["is_nullable"])
            for r in await conn.fetch(
                "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
                " WHERE table_schema = 'sync'"
            )
        }
        assert columns[("bundle_rows", "payload_wire")] == ("json", "YES")
        assert columns[("bundle_capture_stage", "payload_db")] == ("jsonb", "YES")
        assert columns[("bundle_log", "bundle_hash")] == ("bytea", "NO")
        assert columns[("scope_state", "state_code")] == ("smallint", "NO")
        assert ("snapshot_sessions", "last_accessed_at") not in columns
        assert ("user_state", "updated_at") not in columns
        assert ("scope_state", "state") not in columns
        triggers = await conn.fetch(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'business.users'::regclass AND NOT tgisinternal"
        )
        assert sorted(t[0] for t in triggers) == [
            "oversync_bundle_capture_row",
            "oversync_bundle_owner_guard",
        ]
    again = await bootstrap(pg_pool, config)  # idempotent against a matching layout
    assert again.catalog_rows() == catalog.catalog_rows()


async def test_a_layout_without_snapshot_pages_gets_the_table(pg_pool: asyncpg.Pool) -> None:
    """A database the Go server (or an older oversync-py) bootstrapped has no sync.snapshot_pages:
    bootstrap adds it, its wire bytes stored uncompressed out of line (sliced reads)."""
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute("DROP TABLE sync.snapshot_pages")
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        storage = await conn.fetchval(
            "SELECT attstorage FROM pg_attribute"
            " WHERE attrelid = 'sync.snapshot_pages'::regclass AND attname = 'rows_wire'"
        )
    assert storage == b"e"  # attstorage is a "char"


async def test_a_logged_snapshot_pages_table_is_made_unlogged(pg_pool: asyncpg.Pool) -> None:
    """An older oversync-py created sync.snapshot_pages logged; bootstrap converts it, keeping
    its pages."""
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    persistence = "SELECT relpersistence FROM pg_class WHERE oid = 'sync.snapshot_pages'::regclass"
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval(persistence) == b"u"
        await conn.execute("ALTER TABLE sync.snapshot_pages SET LOGGED")
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval(persistence) == b"u"


# Every foreign key of the reference layout (server.md §1.4; the Go DDL names the bundle_log one
# of bundle_rows `bundle_rows_bundle_fk`, the others are inline): (table, definition).
REFERENCE_FOREIGN_KEYS = sorted(
    [(table, "FOREIGN KEY (user_pk) REFERENCES sync.user_state(user_pk) ON DELETE CASCADE")
     for table in ("scope_state", "source_state", "row_state", "bundle_capture_stage",
                   "bundle_log", "bundle_rows", "push_sessions", "snapshot_sessions")]
    + [(table, "FOREIGN KEY (table_id) REFERENCES sync.table_catalog(table_id)")
       for table in ("row_state", "bundle_capture_stage", "bundle_rows", "push_session_rows",
                     "snapshot_session_rows")]
    + [
        ("bundle_rows", "FOREIGN KEY (user_pk, bundle_seq) REFERENCES"
         " sync.bundle_log(user_pk, bundle_seq) ON DELETE CASCADE"),
        ("push_session_rows", "FOREIGN KEY (push_id) REFERENCES"
         " sync.push_sessions(push_id) ON DELETE CASCADE"),
        ("snapshot_session_rows", "FOREIGN KEY (snapshot_id) REFERENCES"
         " sync.snapshot_sessions(snapshot_id) ON DELETE CASCADE"),
    ]
)  # fmt: skip
# Every constraint of the reference's sync.bundle_rows, by kind and definition.
REFERENCE_BUNDLE_ROWS = sorted(
    [
        ("p", "PRIMARY KEY (user_pk, bundle_seq, row_ordinal)"),
        ("f", "FOREIGN KEY (user_pk) REFERENCES sync.user_state(user_pk) ON DELETE CASCADE"),
        ("f", "FOREIGN KEY (table_id) REFERENCES sync.table_catalog(table_id)"),
        ("f", "FOREIGN KEY (user_pk, bundle_seq) REFERENCES sync.bundle_log(user_pk, bundle_seq)"
              " ON DELETE CASCADE"),
        ("c", "CHECK ((op_code = ANY (ARRAY[1, 2, 3])))"),
        ("c", "CHECK ((((op_code = 3) AND (payload_wire IS NULL)) OR ((op_code = ANY (ARRAY[1, 2]))"
              " AND (payload_wire IS NOT NULL))))"),
    ]
)  # fmt: skip
_CONSTRAINTS_SQL = """
SELECT c.relname AS table_name, con.conname AS name, con.contype::text AS kind,
       pg_get_constraintdef(con.oid) AS definition
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
WHERE c.relnamespace = 'sync'::regnamespace
ORDER BY 1, 2
"""


async def test_sync_foreign_keys_and_bundle_rows_match_the_reference(
    pg_pool: asyncpg.Pool,
) -> None:
    await bootstrap(pg_pool, await _example(pg_pool))
    async with pg_pool.acquire() as conn:
        await conn.execute("SET search_path = public")  # definitions name sync.* qualified
        constraints = await conn.fetch(_CONSTRAINTS_SQL)
    foreign_keys = sorted(
        (r["table_name"], r["definition"]) for r in constraints if r["kind"] == "f"
    )
    # plus our extra table's: every session delete, the Go server's too, takes its pages along
    ours = ("snapshot_pages", "FOREIGN KEY (snapshot_id) REFERENCES"
            " sync.snapshot_sessions(snapshot_id) ON DELETE CASCADE")  # fmt: skip
    assert foreign_keys == sorted([*REFERENCE_FOREIGN_KEYS, ours])
    bundle_rows = [r for r in constraints if r["table_name"] == "bundle_rows"]
    assert sorted((r["kind"], r["definition"]) for r in bundle_rows) == REFERENCE_BUNDLE_ROWS
    names = {r["name"] for r in bundle_rows if r["kind"] == "f"}
    assert names == {
        "bundle_rows_user_pk_fkey",
        "bundle_rows_table_id_fkey",
        "bundle_rows_bundle_fk",
    }


async def test_a_layout_without_the_bundle_rows_user_fk_is_still_served(
    pg_pool: asyncpg.Pool,
) -> None:
    """A database bootstrapped before bundle_rows referenced user_state (the FK is implied by the
    bundle_log one) passes validation as it is: bootstrap never alters an existing layout's FKs."""
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "ALTER TABLE sync.bundle_rows DROP CONSTRAINT bundle_rows_user_pk_fkey;"
            " ALTER TABLE sync.bundle_rows RENAME CONSTRAINT bundle_rows_bundle_fk"
            " TO bundle_rows_user_pk_bundle_seq_fkey"
        )
    again = await bootstrap(pg_pool, config)
    assert len(again.tables) == 8
    async with pg_pool.acquire() as conn:
        kept = await conn.fetchval(
            "SELECT count(*) FROM pg_constraint WHERE conrelid = 'sync.bundle_rows'::regclass"
            " AND contype = 'f'"
        )
    assert kept == 2


async def test_concurrent_bootstraps_serialise(pg_pool: asyncpg.Pool) -> None:
    config = await _example(pg_pool)
    catalogs = await asyncio.gather(*(bootstrap(pg_pool, config) for _ in range(3)))
    assert len({tuple(c.catalog_rows()) for c in catalogs}) == 1
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sync.meta") == 1


async def test_registered_tables_refuse_writes_outside_a_bundle(pg_pool: asyncpg.Pool) -> None:
    await bootstrap(pg_pool, await _example(pg_pool))
    async with pg_pool.acquire() as conn:
        with pytest.raises(
            asyncpg.RaiseError,
            match=r"write to registered table business\.users requires oversync sync bundle context",
        ):
            await conn.execute(
                "INSERT INTO business.users (_sync_scope_id, id, name, email)"
                " VALUES ('alice', gen_random_uuid(), 'a', 'b')"
            )
        # counted even though the write rolled back
        assert await conn.fetchval("SELECT last_value FROM sync.rejected_registered_write_seq") == 1


async def test_text_keys_and_a_key_other_than_the_primary_key_are_accepted(
    pg_pool: asyncpg.Pool,
) -> None:
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA app;"
            "CREATE TABLE app.notes (_sync_scope_id TEXT NOT NULL, slug TEXT NOT NULL, body TEXT,"
            " PRIMARY KEY (_sync_scope_id, slug));"
            "CREATE TABLE app.docs (_sync_scope_id TEXT NOT NULL, id BIGINT NOT NULL, external_id UUID NOT NULL,"
            " note_slug TEXT, PRIMARY KEY (_sync_scope_id, id), UNIQUE (_sync_scope_id, external_id),"
            " FOREIGN KEY (_sync_scope_id, note_slug) REFERENCES app.notes (_sync_scope_id, slug)"
            " DEFERRABLE INITIALLY IMMEDIATE);"
        )
    config = ServiceConfig(
        registered_tables=(
            RegisteredTable("app", "notes", ("slug",)),
            RegisteredTable("app", "docs", ("external_id",)),
        )
    )
    catalog = await bootstrap(pg_pool, config)
    assert [(t.table, t.key_column, t.key_kind) for t in catalog.tables] == [
        ("docs", "external_id", KeyKind.UUID),
        ("notes", "slug", KeyKind.TEXT),
    ]


# ------------------------------------------------------------------------------ §1.2 table rules


def test_exactly_one_sync_key_column_is_required() -> None:
    with pytest.raises(ConfigError, match="exactly one sync key column"):
        ServiceConfig(registered_tables=(RegisteredTable("app", "t", ()),))
    with pytest.raises(ConfigError, match="exactly one sync key column"):
        ServiceConfig(registered_tables=(RegisteredTable("app", "t", ("a", "b")),))


def test_the_sync_key_cannot_be_the_scope_column() -> None:
    with pytest.raises(ConfigError, match="cannot be _sync_scope_id"):
        ServiceConfig(registered_tables=(RegisteredTable("app", "t", ("_sync_scope_id",)),))


async def test_missing_table(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "",
        _config("ghost"),
        "registered table app.ghost",
        "could not load column metadata",
        "fix: create app.ghost",
    )


async def test_scope_column_must_exist_as_text(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (id UUID PRIMARY KEY);",
        _config("t"),
        "registered table app.t",
        "must define _sync_scope_id TEXT",
        "ADD COLUMN _sync_scope_id TEXT NOT NULL",
    )


async def test_scope_column_of_another_type(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id VARCHAR(40), id UUID, PRIMARY KEY (_sync_scope_id, id));",
        _config("t"),
        "must define _sync_scope_id TEXT",
    )


async def test_sync_key_must_exist(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, PRIMARY KEY (_sync_scope_id, id));",
        _config("t", key="uid"),
        "sync key column 'uid' does not exist",
    )


async def test_sync_key_must_be_uuid_or_text(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id BIGINT, PRIMARY KEY (_sync_scope_id, id));",
        _config("t"),
        "uses unsupported sync key column type bigint",
        "allows only uuid and text",
        "fix: make 'id' a uuid or text column",
    )


async def test_unique_index_required(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID);",
        _config("t"),
        "must provide unique indexes or constraints for scope-aware identity",
        "PRIMARY KEY (_sync_scope_id, id)",
    )


async def test_unique_indexes_must_begin_with_the_scope_column(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, email TEXT UNIQUE, PRIMARY KEY (_sync_scope_id, id));",
        _config("t"),
        "unique index t_email_key (email) does not begin with _sync_scope_id",
        "fix: recreate it as (_sync_scope_id, email)",
    )


async def test_partial_unique_index_is_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, email TEXT, PRIMARY KEY (_sync_scope_id, id));"
        "CREATE UNIQUE INDEX t_email ON app.t (_sync_scope_id, email) WHERE email IS NOT NULL;",
        _config("t"),
        "unique index t_email is a partial or expression unique index",
    )


async def test_expression_unique_index_is_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, email TEXT, PRIMARY KEY (_sync_scope_id, id));"
        "CREATE UNIQUE INDEX t_email ON app.t (_sync_scope_id, lower(email));",
        _config("t"),
        "partial or expression unique index",
    )


async def test_scope_key_identity_is_required(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, n INT, PRIMARY KEY (_sync_scope_id, id, n));",
        _config("t"),
        "must provide unique identity (_sync_scope_id, id)",
        "UNIQUE (_sync_scope_id, id)",
    )


async def test_unsupported_column_types_are_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, span INTERVAL, PRIMARY KEY (_sync_scope_id, id));",
        _config("t"),
        "column 'span' has unsupported type interval",
        "supported: bool, bpchar, bytea, date, float4",
    )


async def test_array_columns_are_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, tags TEXT[], PRIMARY KEY (_sync_scope_id, id));",
        _config("t"),
        "column 'tags' has unsupported type text[]",
    )


async def test_uppercase_column_names_are_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        'CREATE TABLE app.t (_sync_scope_id TEXT, id UUID, "Name" TEXT, PRIMARY KEY (_sync_scope_id, id));',
        _config("t"),
        "column 'Name' is not a lowercase [a-z0-9_] name",
    )


# ------------------------------------------------------------------------------ §1.3 FK rules


async def test_registered_set_must_be_fk_closed(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        GOOD_PARENT
        + "CREATE TABLE app.child (_sync_scope_id TEXT, id UUID, parent_id UUID, PRIMARY KEY (_sync_scope_id, id),"
        " CONSTRAINT child_parent FOREIGN KEY (_sync_scope_id, parent_id) REFERENCES app.parent DEFERRABLE);",
        _config("child"),
        "registered tables are not FK-closed: app.child -> app.parent (child_parent)",
        "register the parent tables too",
    )


async def test_single_column_fk_is_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.parent (_sync_scope_id TEXT, id UUID UNIQUE, PRIMARY KEY (_sync_scope_id, id));",
        _config("parent"),
        "unique index parent_id_key (id) does not begin with _sync_scope_id",
    )
    async with pg_pool.acquire() as conn:
        await conn.execute("DROP SCHEMA app CASCADE")
    await _refused(
        pg_pool,
        GOOD_PARENT
        + "CREATE TABLE app.other (_sync_scope_id TEXT, id UUID, PRIMARY KEY (_sync_scope_id, id));"
        "CREATE TABLE app.child (_sync_scope_id TEXT, id UUID, parent_scope TEXT, PRIMARY KEY (_sync_scope_id, id),"
        " CONSTRAINT child_parent FOREIGN KEY (parent_scope, id) REFERENCES app.parent DEFERRABLE);",
        _config("child", "parent", "other"),
        "registered child FKs must be scope-inclusive",
        "app.child -> app.parent (child_parent) (parent_scope, id)",
    )


async def test_reversed_fk_columns_are_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.parent (_sync_scope_id TEXT, id UUID, PRIMARY KEY (_sync_scope_id, id), UNIQUE (_sync_scope_id, id));"
        "CREATE UNIQUE INDEX parent_rev ON app.parent (_sync_scope_id, id);"
        "ALTER TABLE app.parent ADD CONSTRAINT parent_rev_key UNIQUE (id, _sync_scope_id);",
        _config("parent"),
        "does not begin with _sync_scope_id",
    )


async def test_non_deferrable_fk_is_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        GOOD_PARENT
        + "CREATE TABLE app.child (_sync_scope_id TEXT, id UUID, parent_id UUID, PRIMARY KEY (_sync_scope_id, id),"
        " CONSTRAINT child_parent FOREIGN KEY (_sync_scope_id, parent_id) REFERENCES app.parent);",
        _config("child", "parent"),
        "registered schema contains non-deferrable FK constraints: app.child -> app.parent (child_parent)",
        "make these constraints DEFERRABLE before bootstrap",
    )


async def test_match_full_fk_is_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        GOOD_PARENT
        + "CREATE TABLE app.child (_sync_scope_id TEXT, id UUID, parent_id UUID, PRIMARY KEY (_sync_scope_id, id),"
        " CONSTRAINT child_parent FOREIGN KEY (_sync_scope_id, parent_id) REFERENCES app.parent"
        " MATCH FULL DEFERRABLE);",
        _config("child", "parent"),
        "unsupported registered FK options: app.child -> app.parent (child_parent) uses MATCH FULL",
        "use MATCH SIMPLE",
    )


async def test_fk_to_a_column_other_than_the_parent_key_is_refused(pg_pool: asyncpg.Pool) -> None:
    await _refused(
        pg_pool,
        "CREATE TABLE app.parent (_sync_scope_id TEXT, id UUID, code TEXT, PRIMARY KEY (_sync_scope_id, id),"
        " UNIQUE (_sync_scope_id, code));"
        "CREATE TABLE app.child (_sync_scope_id TEXT, id UUID, parent_code TEXT, PRIMARY KEY (_sync_scope_id, id),"
        " CONSTRAINT child_parent FOREIGN KEY (_sync_scope_id, parent_code) REFERENCES app.parent (_sync_scope_id, code)"
        " DEFERRABLE);",
        _config("child", "parent"),
        "reference (_sync_scope_id, parent_sync_key)",
    )


# ------------------------------------------------------------------------------ §1.5 layout


async def test_legacy_sync_schema_is_refused(pg_pool: asyncpg.Pool) -> None:
    config = await _example(pg_pool)
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA sync; CREATE TABLE sync.user_state (user_id TEXT PRIMARY KEY)"
        )
    with pytest.raises(
        UnsupportedSchemaError, match="existing sync schema uses unsupported layout"
    ):
        await bootstrap(pg_pool, config)


async def test_missing_marker_table_is_refused(pg_pool: asyncpg.Pool) -> None:
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute("DROP TABLE sync.meta")
    with pytest.raises(UnsupportedSchemaError, match="missing required marker tables"):
        await bootstrap(pg_pool, config)


async def test_foreign_layout_marker_is_refused(pg_pool: asyncpg.Pool) -> None:
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute("UPDATE sync.meta SET layout_name = 'server_postgres_sync_v0'")
    with pytest.raises(UnsupportedSchemaError, match="this database uses another sync layout"):
        await bootstrap(pg_pool, config)


async def test_a_removed_registered_table_is_refused(pg_pool: asyncpg.Pool) -> None:
    """Unlike the reference, new tables extend the catalog (tests/test_schema_change_server.py);
    a removed one stays fail-closed, saying what breaks and how to proceed."""
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    fewer = config.with_changes(registered_tables=config.registered_tables[1:])
    with pytest.raises(UnsupportedSchemaError) as raised:
        await bootstrap(pg_pool, fewer)
    message = str(raised.value)
    assert "breaking  business.categories: registered table removed or renamed" in message
    assert "sync.table_catalog lists it as table_id 1" in message
    assert "fix: put business.categories back into registered_tables" in message
    assert "expand/contract, docs/schema-changes.md" in message
