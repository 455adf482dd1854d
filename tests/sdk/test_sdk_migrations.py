"""Local migrations run by open(): ordering, transactions, capture, failures, version records.

No server is needed: open() is offline. The end-to-end stories (re-hydration from a real
server, the version gate) are in test_sdk_schema_change.py.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sdk_helpers import app_connection, business_config, fold, new_id

from oversqlite import (
    Client,
    ClientConfig,
    ConfigError,
    Migration,
    MigrationError,
    UpgradeRequiredError,
)
from oversqlite._migrate import split_statements

PINNED = Migration(2, sql="ALTER TABLE posts ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")


def open_client(path: Path, config: ClientConfig) -> Client:
    return Client(path, config, base_url="http://unused", token="t").open()


def dirty(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    fold(conn)
    return conn.execute(
        "SELECT table_name, pk FROM _sync_dirty_rows ORDER BY dirty_ordinal"
    ).fetchall()


def triggers(conn: sqlite3.Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", (table,)
    )
    return {row[0] for row in rows}


def add_user(conn: sqlite3.Connection) -> str:
    uid = new_id()
    conn.execute("INSERT INTO users (id, name, email) VALUES (?, 'u', 'e')", (uid,))
    return uid


def test_config_derives_and_checks_the_schema_version() -> None:
    assert business_config().schema_version == 1
    three = Migration(3, sql="SELECT 1")
    assert business_config(migrations=[PINNED, three]).schema_version == 3
    assert business_config(schema_version=5).schema_version == 5
    with pytest.raises(ValueError, match="must match"):
        business_config(migrations=[PINNED], schema_version=3)
    with pytest.raises(ValueError, match="strictly increasing"):
        business_config(migrations=[three, PINNED])
    with pytest.raises(ValueError, match="start at 2"):
        Migration(1, sql="SELECT 1")
    with pytest.raises(ValueError, match="exactly one"):
        Migration(2)
    with pytest.raises(ValueError, match="exactly one"):
        Migration(2, sql="SELECT 1", apply=lambda conn: None)


def test_migrations_run_once_in_order_with_capture_suspended(db_path: Path) -> None:
    open_client(db_path, business_config()).close()
    app = app_connection(db_path)
    uid = add_user(app)
    fold(app)
    app.execute("DELETE FROM _sync_dirty_rows")  # as if synced
    seen: list[int] = []

    def backfill(conn: sqlite3.Connection) -> None:
        seen.append(3)
        conn.execute("UPDATE users SET name = 'migrated'")  # the migration's writes: not pushed

    config = business_config(
        migrations=[
            Migration(2, sql="ALTER TABLE users ADD COLUMN nick TEXT; -- a comment\n"),
            Migration(3, apply=backfill),
        ]
    )
    client = open_client(db_path, config)
    assert seen == [3]
    status = client.status()
    assert status.local_schema_version == 3
    assert status.tables_to_rehydrate == ("users",)
    assert dirty(app) == []
    assert app.execute("SELECT name FROM users").fetchone() == ("migrated",)
    # Capture is back, for the new shape (the new column included).
    app.execute("UPDATE users SET nick = 'n' WHERE id = ?", (uid,))
    assert dirty(app) == [("users", uid)]
    assert len(triggers(app, "users")) == 6
    client.close()
    open_client(db_path, config).close()  # nothing left to run
    assert seen == [3]
    assert app.execute("SELECT schema_version FROM _sync_state").fetchone() == (3,)


def test_a_failing_migration_rolls_back_and_names_its_version(db_path: Path) -> None:
    open_client(db_path, business_config()).close()
    broken = Migration(3, sql="CREATE TABLE half (id TEXT); INSERT INTO nowhere VALUES (1)")
    with pytest.raises(MigrationError, match="version 3") as caught:
        open_client(db_path, business_config(migrations=[PINNED, broken]))
    assert caught.value.version == 3
    app = app_connection(db_path)
    assert app.execute("SELECT schema_version FROM _sync_state").fetchone() == (2,)
    assert app.execute("SELECT name FROM sqlite_master WHERE name = 'half'").fetchone() is None
    columns = [row[1] for row in app.execute("PRAGMA table_info(posts)")]
    assert "pinned" in columns  # migration 2 stays applied
    # Writes are still captured, although open() failed.
    uid = add_user(app)
    assert ("users", uid) in dirty(app)
    fixed = Migration(3, sql="CREATE TABLE half (id TEXT)")
    client = open_client(db_path, business_config(migrations=[PINNED, fixed]))
    assert client.status().local_schema_version == 3
    client.close()


def test_a_migration_must_not_commit_or_break_foreign_keys(db_path: Path) -> None:
    open_client(db_path, business_config()).close()
    app = app_connection(db_path)
    uid = add_user(app)
    app.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)", (new_id(), uid)
    )

    def commits(conn: sqlite3.Connection) -> None:
        conn.commit()

    with pytest.raises(MigrationError, match="must not commit"):
        open_client(db_path, business_config(migrations=[Migration(2, apply=commits)]))
    orphan = Migration(2, sql="DELETE FROM users")
    with pytest.raises(MigrationError, match="foreign key violations"):
        open_client(db_path, business_config(migrations=[orphan]))
    assert app.execute("SELECT COUNT(*) FROM users").fetchone() == (1,)


def test_a_table_rebuild_keeps_children_and_triggers(db_path: Path) -> None:
    """The 12-step rebuild (create, copy, drop, rename) works: FKs are checked at the end."""
    open_client(db_path, business_config()).close()
    app = app_connection(db_path)
    uid = add_user(app)
    pid = new_id()
    app.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)", (pid, uid)
    )
    rebuild = Migration(
        2,
        sql="""
        CREATE TABLE users_new (
            id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
            created_at TEXT, updated_at TEXT);
        INSERT INTO users_new SELECT id, name, email, created_at, updated_at FROM users;
        DROP TABLE users;
        ALTER TABLE users_new RENAME TO users;
        CREATE TRIGGER app_touch AFTER UPDATE ON posts BEGIN SELECT 1; END;
        """,
    )
    client = open_client(db_path, business_config(migrations=[rebuild]))
    assert app.execute("SELECT id FROM posts").fetchall() == [(pid,)]
    assert len(triggers(app, "users")) == 6 and "app_touch" in triggers(app, "posts")
    assert client.status().tables_to_rehydrate == ()  # same shape: nothing to refetch
    client.close()


def test_a_downgraded_app_is_refused(db_path: Path) -> None:
    open_client(db_path, business_config(migrations=[PINNED])).close()
    with pytest.raises(ConfigError, match="newer than this app"):
        open_client(db_path, business_config())


def test_databases_of_an_older_sdk_open(db_path: Path) -> None:
    open_client(db_path, business_config()).close()
    app = app_connection(db_path)
    app.execute("ALTER TABLE _sync_state DROP COLUMN schema_version")
    app.execute("ALTER TABLE _sync_managed_tables DROP COLUMN columns")
    app.execute("DROP TABLE _sync_rehydrate")
    client = open_client(db_path, business_config(migrations=[PINNED]))
    assert client.status().local_schema_version == 2
    assert client.status().tables_to_rehydrate == ("posts",)
    client.close()


def test_changes_after_the_migration_are_baselined(db_path: Path) -> None:
    open_client(db_path, business_config()).close()
    app = app_connection(db_path)
    uid = add_user(app)
    pid = new_id()
    app.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)", (pid, uid)
    )
    open_client(db_path, business_config(migrations=[PINNED])).close()
    app.execute("UPDATE posts SET pinned = 1 WHERE id = ?", (pid,))
    inserted = new_id()
    app.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)", (inserted, uid)
    )
    baselines = dict(app.execute("SELECT pk, baseline FROM _sync_rehydrate_rows").fetchall())
    assert baselines == {pid: '{"pinned":"0"}', inserted: None}
    app.execute("UPDATE users SET name = 'x'")  # users was not reshaped: no baseline
    assert app.execute("SELECT COUNT(*) FROM _sync_rehydrate_rows").fetchone() == (2,)


def test_split_statements_keeps_trigger_bodies_whole() -> None:
    script = """
    CREATE TABLE t (a TEXT); -- one; two
    CREATE TRIGGER t1 AFTER INSERT ON t BEGIN UPDATE t SET a = 'x;y'; SELECT 1; END;
    INSERT INTO t VALUES ('a;b')
    """
    statements = split_statements(script)
    assert len(statements) == 3
    assert "SELECT 1; END;" in statements[1]
    assert statements[2].strip() == "INSERT INTO t VALUES ('a;b')"


def test_upgrade_required_explains_both_directions() -> None:
    old = UpgradeRequiredError("sync", 1, 2, 0)
    assert "supported: 2..any newer" in str(old) and "update the app" in str(old)
    new = UpgradeRequiredError("sync", 4, 1, 3)
    assert "upgrade the server" in str(new) and "Pending changes are kept" in str(new)
