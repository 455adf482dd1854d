"""open() validates the managed tables against the database and fails closed."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sdk_helpers import business_config

from oversqlite import Client, ClientConfig, ConfigError, DatabaseInUseError, KeyKind, SyncTable
from oversqlite._schema import load_tables


def make_db(path: Path, ddl: str) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(ddl)
    conn.close()
    return path


def open_client(path: Path, *tables: SyncTable | str, schema: str = "business") -> Client:
    return Client(
        path, ClientConfig(schema=schema, tables=tables), base_url="http://x", token="t"
    ).open()


@pytest.mark.parametrize(
    ("ddl", "table", "message"),
    [
        ("CREATE TABLE t (id INTEGER PRIMARY KEY)", SyncTable("t"), "must be TEXT, UUID"),
        ("CREATE TABLE t (id TEXT PRIMARY KEY)", SyncTable("t"), "NOT NULL"),
        ("CREATE TABLE t (id TEXT NOT NULL, v TEXT)", SyncTable("t"), "PRIMARY KEY"),
        (
            "CREATE TABLE t (id TEXT NOT NULL, v TEXT NOT NULL, PRIMARY KEY (id, v))",
            SyncTable("t"),
            "single-column PRIMARY KEY",
        ),
        ("CREATE TABLE t (uid TEXT PRIMARY KEY NOT NULL)", SyncTable("t"), "no key column"),
        ("CREATE TABLE _sync_x (id TEXT PRIMARY KEY NOT NULL)", SyncTable("_sync_x"), "reserved"),
        ("CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL)", SyncTable("missing"), "no such table"),
        (
            "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, _sync_scope_id TEXT)",
            SyncTable("t"),
            "hidden scope column",
        ),
        (
            'CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, "Bad Name" TEXT)',
            SyncTable("t"),
            "letters, digits",
        ),
        (
            "CREATE TABLE t (id BLOB PRIMARY KEY NOT NULL)",
            SyncTable("t", key_kind=KeyKind.TEXT),
            "does not fit",
        ),
        (
            "CREATE TABLE t (id TEXT PRIMARY KEY NOT NULL, b TEXT)",
            SyncTable("t", uuid_columns=("b",)),
            "not a BLOB column",
        ),
        ("CREATE VIEW t AS SELECT 1 AS id", SyncTable("t"), "is a view"),
    ],
)
def test_invalid_tables_are_rejected(
    tmp_path: Path, ddl: str, table: SyncTable, message: str
) -> None:
    path = make_db(tmp_path / "x.db", ddl)
    with pytest.raises(ConfigError, match=message):
        open_client(path, table)
    # Nothing was installed: the failed open rolled back.
    conn = sqlite3.connect(path)
    assert (
        conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE '_sync_%' AND name != '_sync_x'"
        ).fetchone()[0]
        == 0
    )


def test_managed_set_must_be_fk_closed(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "x.db",
        """CREATE TABLE p (id TEXT PRIMARY KEY NOT NULL);
           CREATE TABLE c (id TEXT PRIMARY KEY NOT NULL, p_id TEXT REFERENCES p (id));""",
    )
    with pytest.raises(ConfigError, match="FK-closed"):
        open_client(path, "c")
    open_client(path, "c", "p").close()


def test_composite_foreign_keys_are_rejected(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "x.db",
        """CREATE TABLE p (id TEXT PRIMARY KEY NOT NULL, v TEXT, UNIQUE (id, v));
           CREATE TABLE c (id TEXT PRIMARY KEY NOT NULL, a TEXT, b TEXT,
                           FOREIGN KEY (a, b) REFERENCES p (id, v));""",
    )
    with pytest.raises(ConfigError, match="composite"):
        open_client(path, "c", "p")


def test_table_order_puts_parents_first_and_tolerates_cycles(db_path: Path) -> None:
    conn = sqlite3.connect(db_path)
    config = business_config()
    tables = load_tables(conn, config.sync_tables)
    order = list(tables)
    assert order.index("users") < order.index("posts")
    assert order.index("files") < order.index("file_reviews")
    assert set(order) == {t.name for t in config.sync_tables}
    # BLOB foreign keys to a BLOB uuid key travel as uuids; other blobs as base64.
    reviews = {c.wire_name: c for c in tables["file_reviews"].columns}
    assert reviews["file_id"].uuid_blob and reviews["id"].uuid_blob
    files = {c.wire_name: c for c in tables["files"].columns}
    assert files["data"].is_blob and not files["data"].uuid_blob
    assert tables["users"].key_kind is KeyKind.UUID
    assert tables["files"].key_kind is KeyKind.BLOB_UUID


def test_key_kind_is_inferred_from_the_declared_type(tmp_path: Path) -> None:
    path = make_db(
        tmp_path / "x.db",
        """CREATE TABLE a (id TEXT PRIMARY KEY NOT NULL);
           CREATE TABLE b (id UUID PRIMARY KEY NOT NULL);
           CREATE TABLE c (id BLOB PRIMARY KEY NOT NULL);
           CREATE TABLE d (id VARCHAR(36) PRIMARY KEY NOT NULL);""",
    )
    tables = load_tables(sqlite3.connect(path), [SyncTable(n) for n in "abcd"])
    kinds = {name: t.key_kind for name, t in tables.items()}
    assert kinds == {
        "a": KeyKind.TEXT,
        "b": KeyKind.UUID,
        "c": KeyKind.BLOB_UUID,
        "d": KeyKind.TEXT,
    }


def test_reopen_is_idempotent_and_keeps_source_id(db_path: Path) -> None:
    client = Client(db_path, business_config(), base_url="http://x", token="t").open()
    source = client.source_info().source_id
    client.close()
    conn = sqlite3.connect(db_path)
    triggers = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
    client = Client(db_path, business_config(), base_url="http://x", token="t").open()
    assert client.source_info().source_id == source
    assert (
        conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").fetchall()
        == triggers
    )
    assert len(triggers) == 6 * 8
    client.close()


def test_one_database_syncs_one_schema(db_path: Path) -> None:
    Client(db_path, business_config(), base_url="http://x", token="t").open().close()
    other = ClientConfig(schema="other", tables=business_config().tables)
    with pytest.raises(ConfigError, match="one server schema"):
        Client(db_path, other, base_url="http://x", token="t").open()


def test_dropping_a_table_from_the_config_drops_its_triggers(db_path: Path) -> None:
    Client(db_path, business_config(), base_url="http://x", token="t").open().close()
    smaller = ClientConfig(schema="business", tables=["files", "file_reviews"])
    with Client(db_path, smaller, base_url="http://x", token="t"):
        conn = sqlite3.connect(db_path)
        tables = {
            r[0] for r in conn.execute("SELECT tbl_name FROM sqlite_master WHERE type = 'trigger'")
        }
        assert tables == {"files", "file_reviews"}
        conn.execute("INSERT INTO users (id, name, email) VALUES ('u', 'n', 'e')")
        conn.commit()
        for state_table in ("_sync_capture_log", "_sync_dirty_rows"):
            assert conn.execute(f"SELECT COUNT(*) FROM {state_table}").fetchone()[0] == 0


def test_a_table_with_pending_rows_cannot_leave_the_config(db_path: Path) -> None:
    Client(db_path, business_config(), base_url="http://x", token="t").open().close()
    conn = sqlite3.connect(db_path)
    conn.execute(
        "INSERT INTO users (id, name, email) VALUES (?, 'n', 'e')",
        ("7b0c8c42-64b8-4f5e-9d43-0e8f2d1d7c11",),
    )
    conn.commit()
    smaller = ClientConfig(schema="business", tables=["files", "file_reviews"])
    with pytest.raises(ConfigError, match="unpushed"):
        Client(db_path, smaller, base_url="http://x", token="t").open()


def test_a_database_file_has_one_client_per_process(db_path: Path) -> None:
    first = Client(db_path, business_config(), base_url="http://x", token="t").open()
    with pytest.raises(DatabaseInUseError):
        Client(db_path, business_config(), base_url="http://x", token="t").open()
    first.close()
    Client(db_path, business_config(), base_url="http://x", token="t").open().close()


def test_config_values_are_validated() -> None:
    with pytest.raises(ValueError, match="schema"):
        ClientConfig(schema=" ", tables=["t"])
    with pytest.raises(ValueError, match="twice"):
        ClientConfig(schema="s", tables=["t", "T"])
    with pytest.raises(ValueError, match=r"1\.\.5000"):
        ClientConfig(schema="s", tables=["t"], upload_chunk_rows=6000)
