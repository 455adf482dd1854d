"""Freezing: upserts parents first, deletes children first; the frozen bundle is durable."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from sdk_helpers import app_connection, business_config, fold, new_id

from oversqlite import Client
from oversqlite._outbox import freeze, load, unfreeze
from oversqlite._schema import load_tables
from oversqlite._store import atomic


def setup(db_path: Path) -> sqlite3.Connection:
    Client(db_path, business_config(), base_url="http://x", token="t").open().close()
    return app_connection(db_path)


def test_upserts_go_parents_first_and_deletes_children_first(db_path: Path) -> None:
    db = setup(db_path)
    tables = load_tables(db, business_config().sync_tables)
    # Children written before their parents, deletes interleaved.
    gone_user, gone_post = new_id(), new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'g', 'g')", (gone_user,))
    db.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
        (gone_post, gone_user),
    )
    fold(db)  # as if synced: the SDK folds before it writes row state
    for table, pk in (("users", gone_user), ("posts", gone_post)):
        db.execute("INSERT INTO _sync_row_state VALUES (?, ?, 1, 0)", (table, pk))
    db.execute("DELETE FROM _sync_dirty_rows")
    fid = uuid.uuid4().bytes
    db.execute("BEGIN")
    db.execute("PRAGMA defer_foreign_keys = ON")
    db.execute(
        "INSERT INTO file_reviews (id, review, file_id) VALUES (?, 'r', ?)",
        (uuid.uuid4().bytes, fid),
    )
    db.execute("DELETE FROM posts WHERE id = ?", (gone_post,))
    db.execute("INSERT INTO files (id, name, data) VALUES (?, 'f', x'00')", (fid,))
    db.execute("DELETE FROM users WHERE id = ?", (gone_user,))
    author = new_id()
    db.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
        (new_id(), author),
    )
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a')", (author,))
    db.execute("COMMIT")
    outbox = freeze(db, tables, "src", 7)
    assert outbox is not None
    order = [(r.table, r.op) for r in outbox.rows]
    upserts = [t for t, op in order if op != "DELETE"]
    deletes = [t for t, op in order if op == "DELETE"]
    assert order.index(("posts", "DELETE")) > max(
        i for i, (_, op) in enumerate(order) if op != "DELETE"
    )
    assert upserts.index("users") < upserts.index("posts")
    assert upserts.index("files") < upserts.index("file_reviews")
    assert deletes == ["posts", "users"]
    assert (outbox.source_id, outbox.source_bundle_id, outbox.state) == ("src", 7, "prepared")


def test_the_frozen_bundle_survives_and_is_reused(db_path: Path) -> None:
    db = setup(db_path)
    tables = load_tables(db, business_config().sync_tables)
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a')", (new_id(),))
    first = freeze(db, tables, "src", 1)
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'b', 'b')", (new_id(),))
    again = freeze(db, tables, "src", 2)  # an outbox exists: it is returned unchanged
    assert again == first == load(db)
    fold(db)
    assert len(db.execute("SELECT * FROM _sync_dirty_rows").fetchall()) == 1


def test_unfreeze_returns_rows_to_pending_without_losing_newer_edits(db_path: Path) -> None:
    db = setup(db_path)
    tables = load_tables(db, business_config().sync_tables)
    a, b = new_id(), new_id()
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a')", (a,))
    db.execute("INSERT INTO users (id, name, email) VALUES (?, 'b', 'b')", (b,))
    freeze(db, tables, "src", 1)
    db.execute("UPDATE users SET name = 'b2' WHERE id = ?", (b,))  # edited while frozen
    with atomic(db):
        unfreeze(db)
    assert load(db) is None
    assert sorted(r[0] for r in db.execute("SELECT pk FROM _sync_dirty_rows")) == sorted([a, b])


def test_only_noops_are_cleaned_up_durably(db_path: Path) -> None:
    db = setup(db_path)
    tables = load_tables(db, business_config().sync_tables)
    uid = new_id()
    db.execute("INSERT INTO _sync_dirty_rows VALUES ('users', ?, 0, 1)", (uid,))  # a stale intent
    assert freeze(db, tables, "src", 1) is None
    assert db.execute("SELECT COUNT(*) FROM _sync_dirty_rows").fetchone() == (0,)
