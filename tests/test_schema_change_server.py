"""Schema changes on the server (issue 12, docs/schema-changes.md): a restart with the new config
registers new tables and columns and nothing else; breaking table changes stop the start with
the fix; `oversync-server schema check` classifies every change; capabilities carry the version
gate. Real PostgreSQL throughout, a real server process where the wire matters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from oversync_client.models import PullResponse, SnapshotSession
from oversync_conformance import JsonBody, load_sessions
from oversync_conformance.cli import DEFAULT_SESSIONS_DIR
from oversync_conformance.matching import match
from oversync_server.config import ConfigError, RegisteredTable, ServiceConfig, load_config
from oversync_server.engine.catalog import ColumnInfo
from oversync_server.engine.schema import UnsupportedSchemaError, bootstrap
from oversync_server.engine.schema_changes import (
    CatalogEntry,
    column_changes,
    plan_table_ids,
)
from oversync_server.localpg import free_port
from oversync_server.schema_check import Report, run_check
from oversync_server.services.discovery import capabilities
from protocol_helpers import (
    EXAMPLE_CONFIG,
    attach,
    committed_rows,
    config_file,
    parsed,
    pull_page,
    push_rows,
    row,
    snapshot_create,
    snapshot_rows,
)
from serverproc import REPO_ROOT, ServerProcess

EXAMPLE_SCHEMA = REPO_ROOT / "examples" / "business" / "schema.sql"
EXAMPLE_TABLES: list[dict[str, Any]] = yaml.safe_load(EXAMPLE_CONFIG.read_text())[
    "registered_tables"
]
# Sorts before every example table: with recomputed positions every stored id would shift.
NOTES_DDL = """
CREATE TABLE business.aaa_notes (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    body TEXT,
    PRIMARY KEY (_sync_scope_id, id)
)
"""
NOTES = {"schema": "business", "table": "aaa_notes", "sync_key_columns": ["id"]}


def _tables(*extra: dict[str, Any], without: str = "") -> list[dict[str, Any]]:
    return [t for t in EXAMPLE_TABLES if t["table"] != without] + list(extra)


def _schema_check(config: Path, database_url: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, **env}
    environment.pop("DATABASE_URL", None)
    command = [sys.executable, "-m", "oversync_server.cli", "schema", "check", "--config"]
    command += [str(config), *(["--database-url", database_url] if database_url else [])]
    return subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd=REPO_ROOT, timeout=120
    )


def _capabilities(server: ServerProcess) -> dict[str, Any]:
    response = httpx.get(
        f"{server.base_url}/sync/capabilities",
        headers={"Authorization": f"Bearer {server.token('alice')}", "Oversync-Source-ID": "d"},
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _pull_all(server: ServerProcess, source: str) -> list[dict[str, Any]]:
    with server.client("alice") as client:
        attach(client, source)
        page = parsed(pull_page(client, source), PullResponse)
        assert not page.has_more
        return [bundle.to_dict() for bundle in page.bundles]


# ------------------------------------------------------------------------------ end to end


async def test_a_restart_registers_a_new_table_and_column_and_old_bundles_still_pull(
    database_url: str, pg_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    user_id, post_id = str(uuid.uuid4()), str(uuid.uuid4())
    server = ServerProcess(
        database_url, config=config_file(tmp_path), extra_args=("--example-schema",)
    ).start(tmp_path)
    try:
        body = _capabilities(server)
        assert body["features"]["client_schema_version_gate"] is True
        assert body["client_schema_versions"] == {"min_supported": 0, "max_supported": 0}
        with server.client("alice") as client:
            attach(client, "dev-a")
            first = push_rows(
                client,
                "dev-a",
                1,
                [
                    row("users", "INSERT", user_id, {"id": user_id, "name": "Ada", "email": "a@x"}),
                    row(
                        "posts",
                        "INSERT",
                        post_id,
                        {"id": post_id, "title": "t", "content": "c", "author_id": user_id},
                    ),
                ],
            )
            rows_before = [r.to_dict() for r in committed_rows(client, "dev-a", first.bundle_seq)]
        bundles_before = _pull_all(server, "dev-b")
    finally:
        server.stop()

    # The change: a defaulted column on a registered table, a new table sorting first.
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "ALTER TABLE business.users ADD COLUMN pinned boolean NOT NULL DEFAULT false;"
            + NOTES_DDL
        )
    new_config = config_file(
        tmp_path,
        registered_tables=_tables(NOTES),
        min_client_schema_version=2,
        max_client_schema_version=5,
    )
    checked = _schema_check(new_config, database_url)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    lines = checked.stdout.splitlines()
    assert (
        "additive  business.aaa_notes: new table: registered as table_id 9 with its triggers at"
        " the next start"
    ) in lines
    assert any(
        line.startswith("additive  business.users: new column pinned boolean NOT NULL DEFAULT")
        for line in lines
    ), lines
    assert any("the Go reference server" in line for line in lines), lines  # it sorts first
    assert lines[-1] == "schema check: 2 additive, 0 breaking"

    server = ServerProcess(database_url, config=new_config, extra_args=("--example-schema",)).start(
        tmp_path
    )
    try:
        body = _capabilities(server)
        assert body["client_schema_versions"] == {"min_supported": 2, "max_supported": 5}
        assert body["registered_tables"][0] == "business.aaa_notes"
        # Old bundles: the same bundles, hashes and rows, and the committed rows of the first
        # bundle still name business.users (its stored table_id 8, not a recomputed 9).
        assert _pull_all(server, "dev-c") == bundles_before
        note_id, old_user, new_user = (str(uuid.uuid4()) for _ in range(3))
        with server.client("alice") as client:
            assert [
                r.to_dict() for r in committed_rows(client, "dev-a", first.bundle_seq)
            ] == rows_before
            # A push to the new table, an old client's insert without the new column, and a new
            # client's insert with it.
            pushed = push_rows(
                client,
                "dev-a",
                2,
                [
                    row("aaa_notes", "INSERT", note_id, {"id": note_id, "body": "hello"}),
                    row("users", "INSERT", old_user, {"id": old_user, "name": "O", "email": "o"}),
                    row(
                        "users",
                        "INSERT",
                        new_user,
                        {"id": new_user, "name": "N", "email": "n", "pinned": True},
                    ),
                ],
            )
            served = committed_rows(client, "dev-a", pushed.bundle_seq)
            payloads = {r.key.to_dict()["id"]: r.payload.to_dict() for r in served if r.payload}
            assert payloads[note_id] == {"id": note_id, "body": "hello"}
            assert payloads[old_user]["pinned"] is False  # the column default
            assert payloads[new_user]["pinned"] is True
            assert ("business", "aaa_notes") in {(r.schema, r.table) for r in served}
            snapshot = parsed(snapshot_create(client, "dev-a"), SnapshotSession)
            rows = snapshot_rows(client, "dev-a", snapshot.snapshot_id)
            by_key = {r.key.to_dict()["id"]: r for r in rows}
            assert by_key[user_id].payload.to_dict()["pinned"] is False  # filled by the ALTER
            assert by_key[note_id].table == "aaa_notes"
        pulled = _pull_all(server, "dev-d")
        assert pulled[: len(bundles_before)] == bundles_before
        assert pulled[-1]["bundle_seq"] == pushed.bundle_seq
    finally:
        server.stop()

    async with pg_pool.acquire() as conn:
        ids = dict(
            await conn.fetch("SELECT table_name, table_id FROM sync.table_catalog ORDER BY 2")
        )
        assert (ids["categories"], ids["users"], ids["aaa_notes"]) == (1, 8, 9)
        stored = await conn.fetch(
            "SELECT table_id, count(*) FROM sync.bundle_rows WHERE bundle_seq = $1 GROUP BY 1",
            pushed.bundle_seq,
        )
        assert dict(stored) == {9: 1, 8: 2}
        args = await conn.fetchval(
            "SELECT tgargs FROM pg_trigger WHERE tgrelid = 'business.aaa_notes'::regclass"
            " AND tgname = 'oversync_bundle_capture_row'"
        )
        assert bytes(args).split(b"\x00")[:3] == [b"id", b"1", b"9"]
        recorded = await conn.fetchval(
            "SELECT array_agg(column_name ORDER BY ordinal) FROM sync.registered_columns"
            " WHERE table_id = 8"
        )
        assert recorded[-1] == "pinned"
    again = _schema_check(new_config, database_url)
    assert (again.returncode, again.stdout.splitlines()[-1]) == (0, "schema check: no changes")


def test_a_removed_table_stops_the_start_with_the_fix(database_url: str, tmp_path: Path) -> None:
    ServerProcess(database_url, extra_args=("--example-schema",)).start(tmp_path).stop()
    fewer = config_file(tmp_path, registered_tables=_tables(without="categories"))
    with pytest.raises(RuntimeError, match="server exited early") as raised:
        ServerProcess(database_url, config=fewer, extra_args=("--example-schema",)).start(tmp_path)
    log = str(raised.value)
    assert "breaking  business.categories: registered table removed or renamed" in log
    assert "fix: put business.categories back into registered_tables" in log
    # one line on stderr, no traceback
    assert "oversync-server: error: " in log and "Traceback" not in log
    # the unchanged configuration still starts: nothing was written
    ServerProcess(database_url, extra_args=("--example-schema",)).start(tmp_path).stop()


# ------------------------------------------------------------------------------ bootstrap


async def _example(pool: asyncpg.Pool) -> ServiceConfig:
    async with pool.acquire() as conn:
        await conn.execute(EXAMPLE_SCHEMA.read_text())
    return load_config(EXAMPLE_CONFIG)


def _with(config: ServiceConfig, *tables: RegisteredTable) -> ServiceConfig:
    return config.with_changes(registered_tables=config.registered_tables + tables)


async def test_new_tables_get_the_next_free_ids_and_a_fresh_catalog_the_reference_ones(
    pg_pool: asyncpg.Pool,
) -> None:
    config = await _example(pg_pool)
    catalog = await bootstrap(pg_pool, config)
    assert [t.table_id for t in catalog.tables] == list(range(1, 9))
    assert {t.qualified_name: t.table_id for t in catalog.tables} == config.table_ids()
    async with pg_pool.acquire() as conn:
        await conn.execute(
            NOTES_DDL + "; CREATE TABLE business.zz (_sync_scope_id TEXT, k TEXT,"
            " PRIMARY KEY (_sync_scope_id, k))"
        )
    # A table sorting last gets the id the reference would compute: Go keeps serving it.
    last = _with(config, RegisteredTable("business", "zz", ("k",)))
    grown = await bootstrap(pg_pool, last)
    assert {t.qualified_name: t.table_id for t in grown.tables} == last.table_ids()
    # One sorting first does not: every stored id stays, the new table gets the next one.
    first = _with(last, RegisteredTable("business", "aaa_notes"))
    extended = await bootstrap(pg_pool, first)
    ids = {t.qualified_name: t.table_id for t in extended.tables}
    assert (ids["business.categories"], ids["business.users"], ids["business.zz"]) == (1, 8, 9)
    assert ids["business.aaa_notes"] == 10 != first.table_ids()["business.aaa_notes"]
    assert extended.by_id(10).qualified_name == "business.aaa_notes"
    again = await bootstrap(pg_pool, first)  # idempotent
    assert again.catalog_rows() == extended.catalog_rows()


async def test_a_table_that_never_synced_can_be_unregistered(
    database_url: str, pg_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    """The escape hatch the refusal names: the sync foreign keys guard it."""
    async with pg_pool.acquire() as conn:
        await conn.execute(EXAMPLE_SCHEMA.read_text() + ";" + NOTES_DDL)
    with_notes = config_file(tmp_path, registered_tables=_tables(NOTES))
    server = ServerProcess(database_url, config=with_notes).start(tmp_path)
    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
            key = str(uuid.uuid4())
            push_rows(client, "dev-a", 1, [row("users", "INSERT", key, {"id": key, "name": "A",
                                                                     "email": "a"})])  # fmt: skip
    finally:
        server.stop()
    delete = "DELETE FROM sync.table_catalog WHERE table_name = $1"
    async with pg_pool.acquire() as conn:
        with pytest.raises(asyncpg.ForeignKeyViolationError):
            await conn.execute(delete, "users")
        await conn.execute(delete, "aaa_notes")  # table_id 1: it was registered from the start
    without = config_file(tmp_path)
    ServerProcess(database_url, config=without).start(tmp_path).stop()
    async with pg_pool.acquire() as conn:
        recorded = await conn.fetchval(
            "SELECT array_agg(DISTINCT table_id) FROM sync.registered_columns"
        )
        assert sorted(recorded) == list(range(2, 10))  # the stale record of table_id 1 is gone


async def test_a_refused_start_writes_nothing(pg_pool: asyncpg.Pool) -> None:
    """A new table whose foreign key breaks a rule is refused before the catalog is extended,
    so taking it out of the configuration again is not a removal."""
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE business.tags (_sync_scope_id TEXT, id UUID, user_id UUID,"
            " PRIMARY KEY (_sync_scope_id, id), FOREIGN KEY (_sync_scope_id, user_id)"
            " REFERENCES business.users (_sync_scope_id, id))"
        )
    with pytest.raises(UnsupportedSchemaError, match="non-deferrable FK"):
        await bootstrap(pg_pool, _with(config, RegisteredTable("business", "tags")))
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sync.table_catalog") == 8
    await bootstrap(pg_pool, config)


async def test_changed_sync_keys_and_renames_are_refused_with_the_fix(
    pg_pool: asyncpg.Pool,
) -> None:
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA app;"
            "CREATE TABLE app.docs (_sync_scope_id TEXT, id UUID, slug TEXT, body TEXT,"
            " PRIMARY KEY (_sync_scope_id, id), UNIQUE (_sync_scope_id, slug));"
            "CREATE TABLE app.notes (_sync_scope_id TEXT, id UUID, PRIMARY KEY (_sync_scope_id, id))"
        )
    docs, notes = RegisteredTable("app", "docs"), RegisteredTable("app", "notes")
    await bootstrap(pg_pool, ServiceConfig(registered_tables=(docs, notes)))
    by_slug = RegisteredTable("app", "docs", ("slug",))
    with pytest.raises(UnsupportedSchemaError) as raised:
        await bootstrap(pg_pool, ServiceConfig(registered_tables=(by_slug, notes)))
    message = str(raised.value)
    assert "breaking  app.docs: sync key changed from id (uuid) to slug (text)" in message
    assert "fix: restore sync_key_columns: [id]" in message

    async with pg_pool.acquire() as conn:
        await conn.execute("ALTER TABLE app.docs RENAME TO articles")
    articles = RegisteredTable("app", "articles")
    with pytest.raises(UnsupportedSchemaError) as raised:
        await bootstrap(pg_pool, ServiceConfig(registered_tables=(articles, notes)))
    message = str(raised.value)
    assert "app.docs: registered table removed or renamed (newly registered app.articles has" in (
        message
    )
    assert "DELETE FROM sync.table_catalog WHERE table_id = 1" in message


async def test_a_layout_without_the_column_record_gets_one(pg_pool: asyncpg.Pool) -> None:
    """A database bootstrapped by the Go server (or an older oversync-py) has no
    sync.registered_columns: bootstrap adds it and records the columns, logging no change."""
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute("DROP TABLE sync.registered_columns")
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        count = await conn.fetchval("SELECT count(DISTINCT table_id) FROM sync.registered_columns")
    assert count == 8


async def test_bootstrap_logs_the_column_changes_since_the_last_start(
    pg_pool: asyncpg.Pool, caplog: pytest.LogCaptureFixture
) -> None:
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "ALTER TABLE business.users ADD COLUMN pinned boolean NOT NULL DEFAULT false;"
            "ALTER TABLE business.posts DROP COLUMN updated_at"
        )
    with caplog.at_level("INFO", logger="oversync_server"):
        catalog = await bootstrap(pg_pool, config)
    users = catalog.by_name("business", "users")
    assert users is not None and users.column("pinned") is not None  # push validation sees it
    messages = [record.getMessage() for record in caplog.records]
    assert any(
        m.startswith("schema change: additive  business.users: new column pinned") for m in messages
    )
    assert any(
        m.startswith("schema change: breaking  business.posts: column updated_at") for m in messages
    )
    caplog.clear()
    with caplog.at_level("INFO", logger="oversync_server"):
        await bootstrap(pg_pool, config)
    assert not [r for r in caplog.records if r.getMessage().startswith("schema change")]


# ------------------------------------------------------------------------------ schema check


def _whats(report: Report) -> list[tuple[str, str, str]]:
    return [(c.kind, c.subject, c.what) for c in report.changes]


async def test_schema_check_classifies_breaking_changes(
    database_url: str, pg_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    config = await _example(pg_pool)
    await bootstrap(pg_pool, config)
    unchanged = await run_check(config, database_url)
    assert unchanged.changes == [] and unchanged.lines()[-1] == "schema check: no changes"
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "ALTER TABLE business.users ADD COLUMN nick text NOT NULL;"
            "ALTER TABLE business.users ADD COLUMN bio text;"
            "ALTER TABLE business.posts DROP COLUMN updated_at;"
            "ALTER TABLE business.teams ALTER COLUMN name TYPE integer USING 0;"
            "ALTER TABLE business.typed_rows ADD COLUMN span interval;"
            "ALTER TABLE business.typed_rows ALTER COLUMN count_value TYPE numeric;"
            "ALTER TABLE business.files ALTER COLUMN name TYPE varchar(300);" + NOTES_DDL
        )
    kept = [t for t in config.registered_tables if t.table != "categories"]
    config = config.with_changes(
        registered_tables=(*kept, RegisteredTable("business", "aaa_notes"))
    )
    report = await run_check(config, database_url)
    lines = report.lines()
    changes = {(c.kind, c.subject): c for c in report.changes}
    assert report.breaking
    removed = changes["breaking", "business.categories"]
    assert removed.what.startswith("registered table removed or renamed")
    assert "put business.categories back" in removed.fix
    new_table = changes["additive", "business.aaa_notes"]
    assert new_table.what.startswith("new table: registered as table_id 9")
    assert (
        "breaking  business.users: new column nick text NOT NULL without a default: inserts"
        " pushed by app versions without it omit it and are refused (400 push_commit_invalid);"
        " fix: add a DEFAULT (ALTER TABLE business.users ALTER COLUMN nick SET DEFAULT ...) or"
        " make it nullable (ALTER TABLE business.users ALTER COLUMN nick DROP NOT NULL)"
    ) in lines
    assert any(line.startswith("additive  business.users: new column bio text:") for line in lines)
    assert any(
        line.startswith("breaking  business.posts: column updated_at timestamp with time zone")
        and "removed" in line
        for line in lines
    )
    assert (
        "breaking",
        "business.teams",
        "column name changed type from text to integer: the wire type changes from text to integer",
    ) in _whats(report)
    typed = [c for c in report.changes if c.subject == "business.typed_rows"]
    assert [c.kind for c in typed] == ["breaking"]  # the rule; columns are compared once it passes
    assert typed[0].what.startswith("column 'span' has unsupported type interval")
    files = [c for c in report.changes if c.subject == "business.files"]
    assert [c.kind for c in files] == ["breaking"]  # text -> varchar(300) may not fit

    # the CLI: the same lines, exit status 1
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "registered_tables": [
                    {
                        "schema": t.schema,
                        "table": t.table,
                        "sync_key_columns": list(t.sync_key_columns),
                    }
                    for t in config.registered_tables
                ]
            }
        )
    )
    result = _schema_check(path, database_url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == lines


async def test_schema_check_on_a_fresh_database_and_widened_columns(
    database_url: str, pg_pool: asyncpg.Pool
) -> None:
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "CREATE SCHEMA app; CREATE TABLE app.w (_sync_scope_id TEXT, id UUID, n INTEGER,"
            " label VARCHAR(20), PRIMARY KEY (_sync_scope_id, id))"
        )
    config = ServiceConfig(registered_tables=(RegisteredTable("app", "w"),))
    fresh = await run_check(config, database_url)  # no sync schema yet
    assert _whats(fresh) == [
        ("additive", "app.w", "new table: registered as table_id 1 with its triggers at the next"
         " start")
    ]  # fmt: skip
    assert "no sync schema yet: the next start creates it" in fresh.notes
    await bootstrap(pg_pool, config)
    async with pg_pool.acquire() as conn:
        await conn.execute(
            "ALTER TABLE app.w ALTER COLUMN n TYPE bigint, ALTER COLUMN label TYPE varchar(40);"
            "CREATE INDEX w_label_idx ON app.w (label)"  # a plain index is no change at all
        )
    report = await run_check(config, database_url)
    assert _whats(report) == [
        ("additive", "app.w", "column n changed type from integer to bigint (widened, same wire"
         " type)"),
        ("additive", "app.w", "column label changed type from character varying(20) to character"
         " varying(40) (widened, same wire type)"),
    ]  # fmt: skip
    assert not report.breaking


def test_schema_check_usage_errors_exit_2(database_url: str, tmp_path: Path) -> None:
    config = config_file(tmp_path)
    no_url = _schema_check(config, "")
    assert no_url.returncode == 2 and "--database-url or set DATABASE_URL" in no_url.stderr
    down = _schema_check(config, f"postgresql://nobody@127.0.0.1:{free_port()}/x")
    assert down.returncode == 2 and "cannot connect to the database" in down.stderr
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"registered_tables": []}))
    bad = _schema_check(broken, database_url)
    assert bad.returncode == 2 and "registered_tables must be a non-empty list" in bad.stderr
    missing = subprocess.run(
        [sys.executable, "-m", "oversync_server.cli", "schema", "check"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert missing.returncode == 2 and "--config" in missing.stderr


# ------------------------------------------------------------------------------ pure parts


def test_table_ids_keep_the_stored_ones() -> None:
    def entry(table_id: int, name: str, key: str = "id", kind: int | None = 1) -> CatalogEntry:
        return CatalogEntry(table_id, "s", name, key, kind)

    fresh = plan_table_ids([entry(0, "b"), entry(0, "a")], [])
    assert fresh.ids == {"s.a": 1, "s.b": 2} and fresh.added == ("s.a", "s.b")
    grown = plan_table_ids(
        [entry(0, "a"), entry(0, "b"), entry(0, "c")], [entry(1, "b"), entry(2, "c")]
    )
    assert grown.ids == {"s.b": 1, "s.c": 2, "s.a": 3} and grown.problems() == []
    changed = plan_table_ids([entry(0, "b", "slug", 2)], [entry(1, "b")])
    assert [c.subject for c in changed.problems()] == ["s.b"]
    unknown_kind = plan_table_ids([entry(0, "b", kind=None)], [entry(1, "b")])
    assert unknown_kind.problems() == []  # the table rules report a missing key column


def _column(name: str, sql_type: str, type_name: str, **flags: bool) -> ColumnInfo:
    return ColumnInfo(name, type_name, sql_type, **flags)


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (None, _column("c", "text", "text"), "additive"),
        (None, _column("c", "boolean", "bool", not_null=True, has_default=True), "additive"),
        (None, _column("c", "bigint", "int8", not_null=True, generated=True), "additive"),
        (None, _column("c", "text", "text", not_null=True), "breaking"),
        (_column("c", "text", "text"), None, "breaking"),
        (_column("c", "integer", "int4"), _column("c", "bigint", "int8"), "additive"),
        (_column("c", "bigint", "int8"), _column("c", "integer", "int4"), "breaking"),
        (_column("c", "real", "float4"), _column("c", "double precision", "float8"), "additive"),
        (_column("c", "character varying(20)", "varchar"), _column("c", "text", "text"), "additive"),
        (
            _column("c", "character varying(20)", "varchar"),
            _column("c", "character varying(40)", "varchar"),
            "additive",
        ),
        (
            _column("c", "character varying(40)", "varchar"),
            _column("c", "character varying(20)", "varchar"),
            "breaking",
        ),
        (_column("c", "numeric(10,2)", "numeric"), _column("c", "numeric(12,2)", "numeric"), "additive"),
        (_column("c", "numeric(10,2)", "numeric"), _column("c", "numeric(10,3)", "numeric"), "breaking"),
        (_column("c", "bigint", "int8"), _column("c", "text", "text"), "breaking"),
        (_column("c", "character(5)", "bpchar"), _column("c", "text", "text"), "breaking"),
        (
            _column("c", "timestamp(3) with time zone", "timestamptz"),
            _column("c", "timestamp with time zone", "timestamptz"),
            "additive",
        ),
        (_column("c", "text", "text"), _column("c", "text", "text", not_null=True), "breaking"),
        (_column("c", "text", "text", not_null=True), _column("c", "text", "text"), "breaking"),
        (
            _column("c", "text", "text", not_null=True, has_default=True),
            _column("c", "text", "text", not_null=True),
            "breaking",
        ),
        (_column("c", "text", "text"), _column("c", "text", "text", has_default=True), None),
    ],
)  # fmt: skip
def test_column_changes_are_classified(
    before: ColumnInfo | None, after: ColumnInfo | None, kind: str | None
) -> None:
    key = _column("id", "uuid", "uuid", not_null=True)
    changes = column_changes(
        "s.t", [key, *([before] if before else [])], [key, *([after] if after else [])]
    )
    assert [c.kind for c in changes] == ([kind] if kind else []), [c.line() for c in changes]
    for change in changes:
        assert change.breaking == bool(change.fix), change.line()  # a breaking one says the fix


def test_the_version_gate_settings_are_validated() -> None:
    tables = (RegisteredTable("app", "t"),)
    with pytest.raises(ConfigError, match="min_client_schema_version must be <= max"):
        ServiceConfig(tables, min_client_schema_version=3, max_client_schema_version=2)
    open_ended = ServiceConfig(tables, min_client_schema_version=3)  # max 0: no upper bound
    assert capabilities(open_ended).client_schema_versions is not None
    assert capabilities(open_ended).client_schema_versions.model_dump() == {
        "min_supported": 3,
        "max_supported": 0,
    }
    with pytest.raises(ConfigError, match="must be >= 0"):
        ServiceConfig(tables, min_client_schema_version=-1)


def test_the_capabilities_session_passes_with_and_without_the_extensions() -> None:
    """The corpus runs against the Go server too, which sends neither extension field."""
    session = next(s for s in load_sessions([DEFAULT_SESSIONS_DIR]) if s.name == "capabilities")
    expected = session.steps[0].expect.body
    assert isinstance(expected, JsonBody)
    ours = capabilities(load_config(EXAMPLE_CONFIG)).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )
    assert match(expected.value, ours, {}).ok
    go = json.loads(json.dumps(ours))
    del go["client_schema_versions"], go["features"]["client_schema_version_gate"]
    assert match(expected.value, go, {}).ok
    broken = json.loads(json.dumps(ours))
    broken["client_schema_versions"]["min_supported"] = -1
    assert not match(expected.value, broken, {}).ok
