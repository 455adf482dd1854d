"""Capture triggers: one coalesced dirty row per key; the op and payload come at freeze time."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest
from sdk_helpers import app_connection, business_config, fold, new_id

from oversqlite import Client
from oversqlite._outbox import Outbox, freeze
from oversqlite._schema import load_tables
from oversqlite._store import apply_transaction, atomic


@pytest.fixture
def db(db_path: Path) -> sqlite3.Connection:
    Client(db_path, business_config(), base_url="http://x", token="t").open().close()
    return app_connection(db_path)


def dirty(db: sqlite3.Connection) -> list[tuple[str, str, int]]:
    fold(db)
    return db.execute(
        "SELECT table_name, pk, base_row_version FROM _sync_dirty_rows ORDER BY dirty_ordinal"
    ).fetchall()


def mark_synced(
    db: sqlite3.Connection, table: str, pk: str, version: int, deleted: bool = False
) -> None:
    fold(db)
    db.execute(
        "INSERT OR REPLACE INTO _sync_row_state VALUES (?, ?, ?, ?)",
        (table, pk, version, int(deleted)),
    )
    db.execute("DELETE FROM _sync_dirty_rows")


def frozen(db: sqlite3.Connection) -> Outbox | None:
    tables = load_tables(db, business_config().sync_tables)
    return freeze(db, tables, "source", 1)


def test_insert_then_updates_stay_one_insert_with_the_latest_row(db: sqlite3.Connection) -> None:
    uid = new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (uid,))
    db.execute("UPDATE users SET name = 'b' WHERE id = ?", (uid,))
    db.execute("UPDATE users SET name = 'c' WHERE id = ?", (uid,))
    assert dirty(db) == [("users", uid, 0)]
    outbox = frozen(db)
    assert outbox is not None
    [row] = outbox.rows
    assert (row.op, row.base_row_version, row.payload) == (
        "INSERT",
        0,
        {"id": uid, "name": "c", "email": "a@x", "created_at": None, "updated_at": None},
    )
    assert dirty(db) == []


def test_insert_then_delete_of_a_never_synced_row_leaves_nothing(db: sqlite3.Connection) -> None:
    uid = new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (uid,))
    db.execute("DELETE FROM users WHERE id = ?", (uid,))
    assert dirty(db) == []
    assert frozen(db) is None


def test_synced_row_update_then_delete_is_a_delete_on_the_synced_base(
    db: sqlite3.Connection,
) -> None:
    uid = new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (uid,))
    mark_synced(db, "users", uid, 5)
    db.execute("UPDATE users SET name = 'b' WHERE id = ?", (uid,))
    assert dirty(db) == [("users", uid, 5)]
    db.execute("DELETE FROM users WHERE id = ?", (uid,))
    assert dirty(db) == [("users", uid, 5)]
    outbox = frozen(db)
    assert outbox is not None
    assert [(r.op, r.base_row_version, r.payload) for r in outbox.rows] == [("DELETE", 5, None)]


def test_synced_row_delete_then_insert_becomes_an_update(db: sqlite3.Connection) -> None:
    uid = new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (uid,))
    mark_synced(db, "users", uid, 3)
    db.execute("DELETE FROM users WHERE id = ?", (uid,))
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'z', 'z@x')", (uid,))
    outbox = frozen(db)
    assert outbox is not None
    [row] = outbox.rows
    assert (row.op, row.base_row_version, row.payload and row.payload["name"]) == ("UPDATE", 3, "z")


def test_reinserting_a_tombstoned_key_is_an_insert_on_the_tombstone(db: sqlite3.Connection) -> None:
    uid = new_id()
    mark_synced(db, "users", uid, 9, deleted=True)
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (uid,))
    outbox = frozen(db)
    assert outbox is not None
    assert [(r.op, r.base_row_version) for r in outbox.rows] == [("INSERT", 9)]


def test_key_change_is_a_delete_of_the_old_key_and_an_insert(db: sqlite3.Connection) -> None:
    old, new = new_id(), new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (old,))
    mark_synced(db, "users", old, 2)
    db.execute("UPDATE users SET id = ? WHERE id = ?", (new, old))
    outbox = frozen(db)
    assert outbox is not None
    assert sorted((r.pk, r.op) for r in outbox.rows) == sorted([(old, "DELETE"), (new, "INSERT")])


def test_cascaded_deletes_are_captured(db: sqlite3.Connection) -> None:
    team, member = new_id(), new_id()
    db.execute("INSERT INTO teams (id, name) VALUES (?, 't')", (team,))
    db.execute("INSERT INTO team_members (id, name, team_id) VALUES (?, 'm', ?)", (member, team))
    mark_synced(db, "teams", team, 1)
    mark_synced(db, "team_members", member, 1)
    db.execute("DELETE FROM teams WHERE id = ?", (team,))
    assert sorted(d[0] for d in dirty(db)) == ["team_members", "teams"]


def test_app_insert_or_replace_is_captured_once(db: sqlite3.Connection) -> None:
    uid = new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (uid,))
    db.execute("INSERT OR REPLACE INTO users (id, name, email) VALUES (?, 'b', 'b@x')", (uid,))
    assert dirty(db) == [("users", uid, 0)]


def test_authoritative_writes_are_not_captured(db: sqlite3.Connection) -> None:
    uid = new_id()
    with apply_transaction(db):
        db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (uid,))
    assert dirty(db) == []
    assert db.execute("SELECT apply_mode FROM _sync_state").fetchone() == (0,)
    db.execute("UPDATE users SET name = 'b' WHERE id = ?", (uid,))
    assert len(dirty(db)) == 1


def test_keys_that_cannot_be_sent_are_refused_at_write_time(db: sqlite3.Connection) -> None:
    with pytest.raises(sqlite3.IntegrityError, match="16-byte UUID BLOB"):
        db.execute("INSERT INTO files (id, name, data) VALUES (?, 'f', x'00')", (b"short",))
    with pytest.raises(sqlite3.IntegrityError, match="16-byte UUID BLOB"):
        db.execute(
            "INSERT INTO files (id, name, data) VALUES (?, 'f', x'00')", (str(uuid.uuid4()),)
        )
    with pytest.raises(sqlite3.IntegrityError, match="lowercase dashed UUID"):
        db.execute("INSERT INTO users (id, name, email) VALUES ('not-a-uuid', 'a', 'b')")
    with pytest.raises(sqlite3.IntegrityError, match="BLOB column"):
        db.execute(
            "INSERT INTO files (id, name, data) VALUES (?, 'f', 'text')", (uuid.uuid4().bytes,)
        )
    fid = uuid.uuid4().bytes
    db.execute("INSERT INTO files (id, name, data) VALUES (?, 'f', x'00')", (fid,))
    with pytest.raises(sqlite3.IntegrityError, match="16-byte UUID BLOB"):
        db.execute(
            "INSERT INTO file_reviews (id, review, file_id) VALUES (?, 'r', ?)",
            (uuid.uuid4().bytes, fid[:8]),
        )
    assert [d[0] for d in dirty(db)] == ["files"]


def test_writes_are_refused_while_a_remote_replace_is_staging(db: sqlite3.Connection) -> None:
    db.execute("UPDATE _sync_state SET operation = 'remote_replace'")
    with pytest.raises(sqlite3.IntegrityError, match="remote replace"):
        db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'b')", (new_id(),))
    db.execute("UPDATE _sync_state SET operation = 'none'")
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'b')", (new_id(),))


def test_rows_existing_before_install_are_captured_once(tmp_path: Path) -> None:
    from sdk_helpers import business_db

    path = business_db(tmp_path / "pre.db")
    conn = app_connection(path)
    ids = sorted(new_id() for _ in range(3))
    for uid in ids:
        conn.execute("INSERT INTO users (id, name, email) VALUES (?, 'n', 'e')", (uid,))
    fid = uuid.uuid4().bytes
    conn.execute("INSERT INTO files (id, name, data) VALUES (?, 'f', x'01')", (fid,))
    Client(path, business_config(), base_url="http://x", token="t").open().close()
    assert sorted(pk for _, pk, _ in dirty(conn)) == sorted([*ids, fid.hex()])
    Client(path, business_config(), base_url="http://x", token="t").open().close()
    assert len(dirty(conn)) == 4


def test_existing_rows_with_unsendable_keys_fail_the_open(tmp_path: Path) -> None:
    from sdk_helpers import business_db

    from oversqlite import ConfigError

    path = business_db(tmp_path / "bad.db")
    conn = app_connection(path)
    conn.execute("INSERT INTO files (id, name, data) VALUES (x'0102', 'f', x'01')")
    with pytest.raises(ConfigError, match="cannot be synced"):
        Client(path, business_config(), base_url="http://x", token="t").open()


class CoalescingModel:
    """Per-write coalescing as the capture contract states it (``oversqlite._triggers``)."""

    def __init__(self) -> None:
        self.dirty: dict[str, tuple[int, int]] = {}  # pk -> (base_row_version, dirty_ordinal)
        self.row_state: dict[str, tuple[int, bool]] = {}
        self.outbox: set[str] = set()

    def touch(self, pk: str) -> None:
        if pk not in self.dirty:
            ordinal = max((o for _, o in self.dirty.values()), default=0) + 1
            self.dirty[pk] = (self.row_state.get(pk, (0, False))[0], ordinal)

    def delete_intent(self, pk: str) -> None:
        state = self.row_state.get(pk)
        if (state is not None and not state[1]) or pk in self.outbox:
            self.touch(pk)
        else:
            self.dirty.pop(pk, None)

    def expected(self) -> list[tuple[str, str, int]]:
        ordered = sorted(self.dirty.items(), key=lambda item: item[1][1])
        return [("users", pk, base) for pk, (base, _) in ordered]


@pytest.mark.parametrize("seed", range(6))
def test_the_folded_log_matches_per_write_coalescing(db_path: Path, seed: int) -> None:
    """Random app writes, SDK transactions that change row state and the outbox in between,
    and status reads at every step: the fold and the read-only count agree with the model."""
    import random

    client = Client(db_path, business_config(), base_url="http://x", token="t").open()
    db = app_connection(db_path)
    rnd = random.Random(seed)
    keys = [new_id() for _ in range(8)]
    live: set[str] = set()
    model = CoalescingModel()
    for step in range(400):
        action = rnd.random()
        pk = rnd.choice(keys)
        if action < 0.55:  # an app write
            if pk not in live:
                db.execute("INSERT INTO users (id, name, email) VALUES (?, 'n', 'e')", (pk,))
                live.add(pk)
                model.touch(pk)
            elif action < 0.25:
                db.execute("DELETE FROM users WHERE id = ?", (pk,))
                live.discard(pk)
                model.delete_intent(pk)
            elif action < 0.35 and (free := [k for k in keys if k not in live]):
                new = rnd.choice(free)
                db.execute("UPDATE users SET id = ? WHERE id = ?", (new, pk))
                live.discard(pk)
                live.add(new)
                model.delete_intent(pk)
                model.touch(new)
            else:
                db.execute("UPDATE users SET name = ? WHERE id = ?", (f"n{step}", pk))
                model.touch(pk)
        else:  # an SDK transaction: it folds, then changes what a later delete is judged by
            with atomic(db):
                if action < 0.75:
                    deleted = rnd.random() < 0.3
                    db.execute(
                        "INSERT OR REPLACE INTO _sync_row_state VALUES ('users', ?, ?, ?)",
                        (pk, step, int(deleted)),
                    )
                    model.row_state[pk] = (step, deleted)
                elif action < 0.85:
                    db.execute(
                        "INSERT OR IGNORE INTO _sync_outbox_rows (table_name, pk, op, "
                        "base_row_version) VALUES ('users', ?, 'UPDATE', 0)",
                        (pk,),
                    )
                    model.outbox.add(pk)
                elif action < 0.95:
                    db.execute("DELETE FROM _sync_outbox_rows WHERE pk = ?", (pk,))
                    model.outbox.discard(pk)
                else:
                    db.execute("DELETE FROM _sync_row_state WHERE pk = ?", (pk,))
                    model.row_state.pop(pk, None)
        assert client.pending_row_count() == len(model.dirty) + len(model.outbox), step
        if rnd.random() < 0.1:
            assert dirty(db) == model.expected(), step
    assert dirty(db) == model.expected()
    assert db.execute("SELECT COUNT(*) FROM _sync_capture_log").fetchone() == (0,)
    client.close()


def test_a_database_of_the_previous_sdk_keeps_its_pending_rows(db_path: Path) -> None:
    """The previous SDK wrote dirty rows from its triggers and had no capture log."""
    Client(db_path, business_config(), base_url="http://x", token="t").open().close()
    db = app_connection(db_path)
    old = new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", (old,))
    fold(db)
    for (name,) in db.execute(
        "SELECT name FROM sqlite_master WHERE type = 'trigger' AND name LIKE '_sync_a%'"
    ).fetchall():
        db.execute(f'DROP TRIGGER "{name}"')
    db.execute("DROP TABLE _sync_capture_log")
    assert db.execute("SELECT pk FROM _sync_dirty_rows").fetchall() == [(old,)]
    with Client(db_path, business_config(), base_url="http://x", token="t") as client:
        assert client.pending_row_count() == 1
        new = new_id()
        db.execute("INSERT INTO users (id, name, email) VALUES (?, 'b', 'b@x')", (new,))
        assert client.pending_row_count() == 2
    assert dirty(db) == [("users", old, 0), ("users", new, 0)]
