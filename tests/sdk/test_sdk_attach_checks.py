"""attach() checks the token's user and the managed tables against the server, before anything
is sent; open()/attach() warn (or refuse) when SQLite foreign keys are not enforced."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest
from sdk_helpers import Backend, Device, business_config, business_db, new_id

from oversqlite import (
    Client,
    ConfigError,
    ForeignKeyCheck,
    ServerSchemaMismatchError,
    SyncTable,
    TokenUserMismatchError,
)


def test_a_token_of_another_user_is_refused(backend: Backend) -> None:
    a = backend.device("a", user="carol")
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'n', 'e')", new_id())
    with pytest.raises(TokenUserMismatchError, match="authenticates user 'carol'") as raised:
        a.client.attach("dave")
    assert (raised.value.requested_user_id, raised.value.token_user_id) == ("dave", "carol")
    assert not a.client.status().attached and a.client.pending_row_count() == 1
    assert a.client.attach("carol").attached


def test_every_schema_difference_is_listed_in_one_error(backend: Backend, tmp_path: Path) -> None:
    path = business_db(tmp_path / "extra.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE attachments (id TEXT PRIMARY KEY NOT NULL, name TEXT)")
        conn.execute("ALTER TABLE users ADD COLUMN nickname TEXT")
        conn.execute("ALTER TABLE posts ADD COLUMN draft INTEGER")
    config = business_config(tables=[*business_config().tables, SyncTable("attachments")])
    device = Device(path, base_url=backend.base_url(), token=backend.token("alice"), config=config)
    backend.devices.append(device)
    with pytest.raises(ServerSchemaMismatchError) as raised:
        device.client.attach("alice")
    differences = raised.value.differences
    assert len(differences) == 3, differences
    text = str(raised.value)
    assert "business.attachments is managed locally but the server does not register it" in text
    assert "local column 'nickname' does not exist on the server" in text
    assert "local column 'draft'" in text
    assert not device.client.status().attached


def test_server_only_columns_are_allowed(backend: Backend, tmp_path: Path) -> None:
    path = tmp_path / "narrow.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT, email TEXT)")
    config = business_config(tables=[SyncTable("users")])
    device = Device(path, base_url=backend.base_url(), token=backend.token("a"), config=config)
    backend.devices.append(device)
    assert device.client.attach("a").attached  # created_at, updated_at: server-only


def loose_violation(path: Path) -> None:
    conn = sqlite3.connect(path)  # foreign keys off (SQLite's default)
    conn.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
        (new_id(), new_id()),
    )
    conn.commit()
    conn.close()


def test_foreign_key_violations_warn_or_refuse(
    backend: Backend, db_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loose_violation(db_path)
    url, token = backend.base_url(), backend.token("alice")
    with caplog.at_level(logging.WARNING, logger="oversqlite"):
        Client(db_path, business_config(), base_url=url, token=token).open().close()
    assert "managed rows violate their foreign keys (posts: 1)" in caplog.text
    refusing = business_config(foreign_keys=ForeignKeyCheck.REFUSE)
    with pytest.raises(ConfigError, match=r"posts: 1.*PRAGMA foreign_keys = ON"):
        Client(db_path, refusing, base_url=url, token=token).open()
    caplog.clear()
    quiet = business_config(foreign_keys="ignore")
    with caplog.at_level(logging.WARNING, logger="oversqlite"):
        Client(db_path, quiet, base_url=url, token=token).open().close()
    assert caplog.text == ""


def test_foreign_keys_off_by_default_are_reported_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = business_db(tmp_path / "clean.db")
    with caplog.at_level(logging.INFO, logger="oversqlite"):
        for _ in range(2):
            Client(path, business_config(), base_url="http://unused", token="t").open().close()
    assert caplog.text.count("SQLite does not enforce foreign keys") == 1
