"""Schema evolution end to end: old and new app versions syncing through server schema changes.

Real server process, real PostgreSQL, real SQLite files. The server's tables are changed with
SQL through asyncpg and the server is restarted on the same database (it re-reads the shapes):

(a) a new defaulted column: old clients keep pushing (the server fills the default) and pulling
    (the column is ignored), also when a commit's answer is lost; a new client syncs its values;
(b) a new registered table an old client does not manage;
(c) a breaking change behind the client schema version gate;
(d) a local migration that adds the column and back-fills it from the server, keeping local
    changes made before and after it (dirty rows and a frozen bundle).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from schema_change_support import (
    PINNED_SERVER,
    TAGS_SERVER,
    ChangingServer,
    new_config,
    registered_with_tags,
    with_tags,
)
from sdk_helpers import Crash, Device, business_config, new_id

from oversqlite import (
    AttachOutcome,
    Conflict,
    KeepMerged,
    Migration,
    PullOutcome,
    PushOutcome,
    Resolution,
    RetryExhaustedError,
    SchemaMismatchError,
    ServerSchemaMismatchError,
    UpgradeRequiredError,
)

OLD_POST_COLUMNS = "id, title, content, author_id"


@pytest.fixture
def changing(database_url: str, tmp_path: Path) -> Iterator[ChangingServer]:
    server = ChangingServer(database_url, tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


def add_user(device: Device, name: str = "Ada") -> str:
    uid = new_id()
    device.execute("INSERT INTO users (id, name, email) VALUES (?, ?, 'a@example.com')", uid, name)
    return uid


def add_post(device: Device, author: str, title: str) -> str:
    pid = new_id()
    device.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, ?, 'text', ?)",
        pid,
        title,
        author,
    )
    return pid


def old_posts(device: Device) -> list[tuple[Any, ...]]:
    return device.db.execute(f"SELECT {OLD_POST_COLUMNS} FROM posts ORDER BY id").fetchall()


def pinned(device: Device) -> dict[str, int]:
    return dict(device.db.execute("SELECT id, pinned FROM posts").fetchall())


def drift_messages(caplog: pytest.LogCaptureFixture, word: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "oversqlite" and word in r.message]


def test_old_and_new_clients_sync_through_a_new_defaulted_column(
    changing: ChangingServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = changing.device(tmp_path / "a.db")  # old app (no pinned column)
    b = changing.device(tmp_path / "b.db")  # old app
    a.client.attach("alice")
    author = add_user(a)
    first = add_post(a, author, "first")
    a.client.sync()
    assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    pushes = 1

    changing.sql(PINNED_SERVER)
    changing.restart()

    # The old device pushes an insert and an update: the server fills the default, and the
    # committed bundle (which carries `pinned`) is replayed without it.
    second = add_post(a, author, "second")
    a.execute("UPDATE posts SET title = 'first!' WHERE id = ?", first)
    with caplog.at_level(logging.INFO, logger="oversqlite"):
        report = a.client.sync()
        assert report.push.outcome is PushOutcome.COMMITTED
        pushes += 1
        third = add_post(a, author, "third")
        a.client.sync()
        pushes += 1
    assert a.client.pending_row_count() == 0
    assert len(drift_messages(caplog, "pinned")) == 1  # once per client, not per row
    server = changing.posts("alice")
    assert server[second]["pinned"] is False and server[third]["pinned"] is False
    assert server[first]["title"] == "first!"

    # A new device (version 2) hydrates with the column and pins a post.
    c = changing.device(tmp_path / "c.db", config=new_config())
    assert c.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    assert pinned(c) == {first: 0, second: 0, third: 0}
    c.execute("UPDATE posts SET pinned = 1 WHERE id = ?", first)
    c.client.sync()
    pushes += 1
    assert changing.posts("alice")[first]["pinned"] is True

    # The old device pulls around the column, and its update does not reset it on the server.
    assert b.client.sync().pull.outcome is PullOutcome.APPLIED_INCREMENTAL
    assert old_posts(b) == old_posts(a)
    b.execute("UPDATE posts SET content = 'edited on b' WHERE id = ?", first)
    b.client.sync()
    pushes += 1
    row = changing.posts("alice")[first]
    assert (row["content"], row["pinned"]) == ("edited on b", True)

    # Committed but not acknowledged: the commit's answer is lost, and after a restart the
    # client finds the bundle already committed and replays it (it carries `pinned`).
    a.execute("UPDATE posts SET title = 'lost answer' WHERE id = ?", second)
    a.faults.drop_response("commit")
    assert a.client.sync().push.outcome is PushOutcome.COMMITTED
    pushes += 1
    a.execute("UPDATE posts SET title = 'crashed' WHERE id = ?", third)
    a.faults.crash("commit", after=True)  # the process dies right after the server committed
    with pytest.raises(Crash):
        a.client.sync()
    pushes += 1
    a.reopen()
    a.client.attach("alice")
    assert a.client.pending_row_count() == 1
    a.faults.fail("committed_rows", 503, times=3)  # and the replay fails a whole call too
    with pytest.raises(RetryExhaustedError, match="committed_bundle_rows"):
        a.client.sync()
    assert a.client.pending_row_count() == 1
    assert a.client.sync().push.outcome is PushOutcome.COMMITTED
    assert a.client.pending_row_count() == 0

    for device in (a, b, c, a, b, c):
        device.client.sync()
    assert old_posts(a) == old_posts(b) == old_posts(c)
    assert pinned(c) == {first: 1, second: 0, third: 0}
    server = changing.posts("alice")
    assert {pid: (r["title"], r["pinned"]) for pid, r in server.items()} == {
        first: ("first!", True),
        second: ("lost answer", False),
        third: ("crashed", False),
    }
    assert changing.bundle_count() == pushes  # nothing was committed twice
    assert all(d.client.pending_row_count() == 0 for d in (a, b, c))


def seed_three_posts(changing: ChangingServer, a: Device) -> tuple[str, list[str]]:
    a.client.attach("alice")
    author = add_user(a)
    posts = [add_post(a, author, title) for title in ("one", "two", "three")]
    a.client.sync()
    return author, posts


def test_a_local_migration_back_fills_the_column_and_keeps_local_changes(
    changing: ChangingServer, tmp_path: Path
) -> None:
    a = changing.device(tmp_path / "a.db")
    author, (p1, p2, p3) = seed_three_posts(changing, a)
    b = changing.device(tmp_path / "b.db")
    b.client.attach("alice")
    changing.sql(PINNED_SERVER)
    changing.restart()
    c = changing.device(tmp_path / "c.db", config=new_config())
    c.client.attach("alice")
    c.execute("UPDATE posts SET pinned = 1 WHERE id IN (?, ?)", p1, p2)
    c.client.sync()
    pushes = 2  # a's seed, c's pins
    assert b.client.sync().pull.outcome is PullOutcome.APPLIED_INCREMENTAL  # pinned ignored

    # Offline on the old app: one edit frozen in the outbox (the process dies before sending
    # it), one still a dirty row.
    b.execute("UPDATE posts SET title = 'one (b)' WHERE id = ?", p1)
    b.faults.crash("create_push", after=False)
    with pytest.raises(Crash):
        b.client.sync()
    b.execute("UPDATE posts SET content = 'two (b)' WHERE id = ?", p2)

    # The app updates: open() migrates the local schema and marks posts for re-hydration.
    b.config = new_config()
    b.reopen()
    status = b.client.status()
    assert (status.local_schema_version, status.tables_to_rehydrate) == (2, ("posts",))
    assert status.pending_row_count == 2
    assert pinned(b) == {p1: 0, p2: 0, p3: 0}  # the migration's default, not the server's yet
    # Still offline, on the new app: pin p3, retitle p2 (pinned untouched), add a pinned post.
    b.execute("UPDATE posts SET pinned = 1 WHERE id = ?", p3)
    b.execute("UPDATE posts SET title = 'two (b)' WHERE id = ?", p2)
    p4 = new_id()
    b.execute(
        "INSERT INTO posts (id, title, content, author_id, pinned) VALUES (?, 'four', 'x', ?, 1)",
        p4,
        author,
    )

    assert b.client.attach("alice").outcome is AttachOutcome.RESUMED
    report = b.client.sync()
    pushes += 2  # the frozen bundle, then the rest
    assert report.rehydrated is not None
    assert report.push.outcome is PushOutcome.COMMITTED
    assert b.client.status().tables_to_rehydrate == ()
    assert b.one("SELECT COUNT(*) FROM _sync_rehydrate_rows") == 0
    assert "_sync_rehydrate_rows" not in b.one(
        "SELECT group_concat(sql) FROM sqlite_master WHERE type = 'trigger'"
    )
    assert b.client.pending_row_count() == 0
    server = changing.posts("alice")
    assert {pid: (r["title"], r["content"], r["pinned"]) for pid, r in server.items()} == {
        p1: ("one (b)", "text", True),  # c's pin survived b's pre-migration edit
        p2: ("two (b)", "two (b)", True),
        p3: ("three", "text", True),
        p4: ("four", "x", True),
    }
    assert pinned(b) == {p1: 1, p2: 1, p3: 1, p4: 1}

    for device in (a, c, b, a, c):
        device.client.sync()
    assert old_posts(a) == old_posts(b) == old_posts(c)
    assert pinned(b) == pinned(c)
    assert b.rows("posts") == c.rows("posts")
    assert changing.bundle_count() == pushes  # nothing lost, nothing committed twice


def test_old_clients_ignore_a_new_table_until_they_manage_it(
    changing: ChangingServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = changing.device(tmp_path / "a.db")  # old app: no tags
    _, (p1, p2, _p3) = seed_three_posts(changing, a)
    changing.sql(TAGS_SERVER)
    changing.restart(registered_tables=registered_with_tags())
    tags_config = with_tags()
    c = changing.device(tmp_path / "c.db", config=tags_config)
    c.client.attach("alice")
    tag = new_id()
    c.execute("INSERT INTO tags (id, label, post_id) VALUES (?, 'news', ?)", tag, p1)
    c.execute("UPDATE posts SET title = 'one (c)' WHERE id = ?", p1)  # same bundle
    c.client.sync()

    with caplog.at_level(logging.INFO, logger="oversqlite"):
        assert a.client.sync().pull.outcome is PullOutcome.APPLIED_INCREMENTAL
        d = changing.device(tmp_path / "d.db")  # a new install of the old app hydrates
        assert d.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    assert len(drift_messages(caplog, "business.tags")) == 2  # once per client
    assert old_posts(a) == old_posts(c) == old_posts(d)
    # Deleting the post cascades to its tag on the server; the old app pushes and replays it.
    a.execute("DELETE FROM posts WHERE id = ?", p2)
    c.execute("INSERT INTO tags (id, label, post_id) VALUES (?, 'old', ?)", new_id(), p2)
    c.client.sync()
    assert a.client.sync().push.outcome is PushOutcome.COMMITTED
    c.client.sync()
    assert c.rows("tags") == [(tag, "news", p1)]

    # The old app updates to a version that manages tags: the new table is hydrated.
    a.config = tags_config
    a.reopen()
    assert a.client.status().tables_to_rehydrate == ("tags",)
    a.client.attach("alice")
    assert a.client.sync().rehydrated is not None
    assert a.rows("tags") == c.rows("tags")
    for device in (a, c, d):
        device.client.sync()
    assert old_posts(a) == old_posts(c) == old_posts(d)


def test_the_version_gate_stops_old_apps_before_they_write(
    changing: ChangingServer, tmp_path: Path
) -> None:
    a = changing.device(tmp_path / "a.db")
    author, (p1, _p2, _p3) = seed_three_posts(changing, a)
    # Capabilities are trusted for capabilities_ttl (60 s by default); 0 asks every time, so
    # this long-running client sees the server's new range at once.
    b = changing.device(tmp_path / "b.db", config=business_config(capabilities_ttl=0))
    b.client.attach("alice")
    # Pending work on the old app: a frozen bundle and a dirty row.
    b.execute("UPDATE posts SET title = 'frozen' WHERE id = ?", p1)
    b.faults.crash("create_push", after=False)
    with pytest.raises(Crash):
        b.client.sync()
    extra = add_post(b, author, "dirty")

    changing.sql(PINNED_SERVER)
    changing.restart(min_client_schema_version=2)  # the breaking release needs version 2
    outbox_before = b.db.execute("SELECT * FROM _sync_outbox_rows").fetchall()
    state_before = b.db.execute("SELECT * FROM _sync_state").fetchall()
    for call in (b.client.sync, b.client.push_pending, b.client.pull_to_stable, b.client.rebuild):
        start = len(b.faults.log)
        with pytest.raises(UpgradeRequiredError) as caught:
            call()
        assert set(b.faults.log[start:]) == {"capabilities"}  # nothing else was sent
        assert (caught.value.local_version, caught.value.min_supported) == (1, 2)
        assert "update the app" in str(caught.value)
    assert b.db.execute("SELECT * FROM _sync_outbox_rows").fetchall() == outbox_before
    assert b.db.execute("SELECT * FROM _sync_state").fetchall() == state_before
    assert b.client.pending_row_count() == 2

    fresh = changing.device(tmp_path / "fresh.db")
    with pytest.raises(UpgradeRequiredError):
        fresh.client.attach("alice")
    assert "connect" not in fresh.faults.log and not fresh.client.status().attached

    # The app updates: the migration runs, sync resumes with the kept changes, each pushed once.
    bundles = changing.bundle_count()
    b.config = new_config(capabilities_ttl=0)
    b.reopen()
    b.client.attach("alice")
    report = b.client.sync()
    assert report.rehydrated is not None and b.client.pending_row_count() == 0
    assert changing.bundle_count() == bundles + 2
    server = changing.posts("alice")
    assert server[p1]["title"] == "frozen" and server[extra]["title"] == "dirty"
    assert fresh.client.status().pending_row_count == 0

    # A server older than the app: the gate says so, and lifts once the server serves it.
    changing.restart(min_client_schema_version=0, max_client_schema_version=1)
    with pytest.raises(UpgradeRequiredError, match="upgrade the server") as caught:
        b.client.sync()
    assert (caught.value.local_version, caught.value.max_supported) == (2, 1)
    changing.restart(max_client_schema_version=0)
    b.client.sync()
    a.client.sync()
    assert old_posts(a) == old_posts(b)


def test_a_local_only_column_pulls_but_pushes_are_refused_by_name(
    changing: ChangingServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    a = changing.device(tmp_path / "a.db")
    author, (p1, p2, _p3) = seed_three_posts(changing, a)
    # An app release ahead of its server: a column the server does not have yet.
    draft = Migration(2, sql="ALTER TABLE posts ADD COLUMN draft INTEGER DEFAULT 7")
    fresh = changing.device(tmp_path / "fresh.db", config=business_config(migrations=[draft]))
    with pytest.raises(ServerSchemaMismatchError, match="local column 'draft'"):
        fresh.client.attach("alice")  # refused before anything is written
    fresh.close()
    # A device attached before the update only learns it at sync (no attach() round trip).
    b = changing.device(tmp_path / "b.db")
    assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    b.config = business_config(migrations=[draft])
    b.reopen()
    assert b.client.attach("alice").outcome is AttachOutcome.RESUMED
    assert b.db.execute("SELECT DISTINCT draft FROM posts").fetchall() == [(7,)]
    b.execute("UPDATE posts SET draft = 1 WHERE id = ?", p1)
    a.execute("UPDATE posts SET content = 'from a' WHERE id = ?", p2)
    a.client.sync()
    with (
        caplog.at_level(logging.WARNING, logger="oversqlite"),
        pytest.raises(SchemaMismatchError) as caught,
    ):
        b.client.sync()
    assert drift_messages(caplog, "draft")
    assert (caught.value.table, caught.value.column) == ("business.posts", "draft")
    assert "add the column on the server" in str(caught.value)
    assert b.client.pending_row_count() == 1
    # The server catches up (an additive change): the kept row goes out, with the local value.
    changing.sql("ALTER TABLE business.posts ADD COLUMN draft integer")
    changing.restart()
    b.client.sync()
    assert changing.posts("alice")[p1]["draft"] == 1
    # Rows the server never had the column for kept their local value: rebuild() refetches.
    assert b.db.execute("SELECT draft FROM posts WHERE id = ?", (p2,)).fetchone() == (7,)
    b.client.rebuild()
    rows = b.db.execute("SELECT id, content, draft FROM posts WHERE id IN (?, ?)", (p1, p2))
    assert dict((r[0], r[1:]) for r in rows) == {p1: ("text", 1), p2: ("from a", None)}
    add_post(b, author, "new")
    b.client.sync()
    a.client.sync()
    assert old_posts(a) == old_posts(b)


def merge_content(conflict: Conflict) -> Resolution:
    assert conflict.server_row is not None and conflict.local_payload is not None
    return KeepMerged({**conflict.server_row, "content": conflict.local_payload["content"]})


def test_old_clients_settle_conflicts_over_rows_with_new_columns(
    changing: ChangingServer, tmp_path: Path
) -> None:
    a = changing.device(tmp_path / "a.db")
    _, (p1, p2, _p3) = seed_three_posts(changing, a)
    old = changing.device(tmp_path / "old.db", config=business_config(resolver=merge_content))
    old.client.attach("alice")
    changing.sql(PINNED_SERVER)
    changing.restart()
    c = changing.device(tmp_path / "c.db", config=new_config())
    c.client.attach("alice")
    c.execute("UPDATE posts SET pinned = 1, title = 'c' WHERE id IN (?, ?)", p1, p2)
    c.client.sync()
    # The old app edited both rows meanwhile: the server rows it is shown carry `pinned`.
    old.execute("UPDATE posts SET content = 'old app' WHERE id IN (?, ?)", p1, p2)
    report = old.client.sync()
    assert [r.resolution for r in report.push.conflicts] == ["keep_merged", "keep_merged"]
    assert old.client.pending_row_count() == 0
    server = changing.posts("alice")
    for pid in (p1, p2):
        assert (server[pid]["title"], server[pid]["content"], server[pid]["pinned"]) == (
            "c",
            "old app",
            True,
        )
    c.client.sync()
    assert old_posts(old) == old_posts(c)
    assert pinned(c)[p1] == 1
