"""A queue that never stalls: rows the server refuses are moved aside, the rest keeps syncing.

Against a real server: the business schema's foreign keys (PostgreSQL, deferred) refuse a
locally deleted parent or an orphan child that an app connection without
``PRAGMA foreign_keys`` let through.
"""

from __future__ import annotations

import sqlite3

import pytest
from sdk_helpers import Backend, Device, new_id

from oversqlite import PushOutcome, RetryExhaustedError, ServerFailureError, UsageError


def loose(device: Device) -> sqlite3.Connection:
    """An app connection with SQLite's default: foreign keys not enforced."""
    conn = sqlite3.connect(device.path, isolation_level=None, timeout=30)
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 0
    return conn


def add_user(device: Device, name: str = "u") -> str:
    uid = new_id()
    device.execute("INSERT INTO users (id, name, email) VALUES (?, ?, 'e@x')", uid, name)
    return uid


def add_post(device: Device, author: str) -> str:
    pid = new_id()
    device.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)", pid, author
    )
    return pid


def test_a_refused_delete_is_moved_aside_and_later_changes_sync(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    parent = add_user(a, "parent")
    add_post(a, parent)
    a.client.sync()
    with loose(a) as conn:
        conn.execute("DELETE FROM users WHERE id = ?", (parent,))  # still referenced
    later = [add_user(a, f"later {i}") for i in range(5)]

    report = a.client.push_pending()

    assert report.outcome is PushOutcome.COMMITTED and report.row_count == 5
    [change] = report.rejected
    assert (change.table, change.key, change.op) == ("users", parent, "DELETE")
    assert change.code == "push_commit_invalid" and "foreign key" in change.message
    assert a.client.rejected_changes() == [change]
    status = a.client.status()
    assert (status.pending_row_count, status.rejected_change_count) == (0, 1)
    # The queue is not stuck: a new change goes out at once.
    newest = add_user(a, "newest")
    assert a.client.sync().push.row_count == 1
    assert a.client.rejected_changes() == [change]

    b.client.attach("alice")
    names = {row[0] for row in b.rows("users")}
    assert {parent, newest, *later} <= names  # the server kept the parent

    a.client.discard_rejected(change.id)  # restored from the server at the next sync
    assert a.client.rejected_changes() == [] and parent not in {r[0] for r in a.rows("users")}
    a.client.sync()
    assert a.rows("users") == b.rows("users") and a.client.pending_row_count() == 0
    with pytest.raises(UsageError, match="no rejected change"):
        a.client.discard_rejected(change.id)


def test_an_orphan_is_retried_after_the_app_fixes_it(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    missing = new_id()
    with loose(a) as conn:
        conn.execute(
            "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
            (orphan := new_id(), missing),
        )
    report = a.client.sync()
    [change] = report.push.rejected
    assert (change.table, change.key, change.op) == ("posts", orphan, "INSERT")
    assert change.payload is not None and change.payload["author_id"] == missing

    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'found', 'e@x')", missing)
    a.client.retry_rejected(change.id)
    assert a.client.pending_row_count() == 2 and a.client.rejected_changes() == []
    assert a.client.sync().push.rejected == ()
    b.client.attach("alice")
    assert b.rows("posts") == a.rows("posts") and len(b.rows("posts")) == 1


def test_the_one_bad_row_of_a_large_bundle_is_isolated(backend: Backend) -> None:
    a = backend.device("a")
    a.client.attach("alice")
    good = [add_user(a, f"good {i}") for i in range(20)]
    with loose(a) as conn:
        conn.execute(
            "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
            (bad := new_id(), new_id()),
        )
    more = [add_post(a, author) for author in good[:10]]
    report = a.client.push_pending()
    assert [c.key for c in report.rejected] == [bad]
    assert report.row_count == 30 and a.client.pending_row_count() == 0
    assert a.one("SELECT isolate_rows + isolate_left FROM _sync_state") == 0
    commits = a.faults.log.count("commit")
    assert commits < 30  # halving, not one bundle per row
    assert {r[0] for r in a.rows("posts")} == {bad, *more}


def test_a_discarded_insert_is_deleted_locally(backend: Backend) -> None:
    a = backend.device("a")
    a.client.attach("alice")
    with loose(a) as conn:
        conn.execute(
            "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
            (new_id(), new_id()),
        )
    [change] = a.client.push_pending().rejected
    a.client.discard_rejected(change.id)
    assert a.rows("posts") == [] and a.client.pending_row_count() == 0
    assert a.client.sync().push.outcome is PushOutcome.NO_CHANGE


def test_a_server_failure_keeps_the_bundle_frozen(backend: Backend) -> None:
    a = backend.device("a")
    a.client.attach("alice")
    add_user(a)
    a.faults.fail("commit", 500, code="push_session_commit_failed", times=3)
    with pytest.raises(RetryExhaustedError) as raised:
        a.client.push_pending()
    assert isinstance(raised.value.last_error, ServerFailureError)
    assert a.one("SELECT COUNT(*) FROM _sync_outbox_rows") == 1  # still frozen
    assert a.client.rejected_changes() == []
    assert a.client.push_pending().outcome is PushOutcome.COMMITTED


def test_detach_wipes_the_rejected_changes(backend: Backend) -> None:
    a = backend.device("a")
    a.client.attach("alice")
    with loose(a) as conn:
        conn.execute(
            "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
            (new_id(), new_id()),
        )
    assert len(a.client.push_pending().rejected) == 1
    assert a.client.detach().detached
    assert a.client.rejected_changes() == [] and a.rows("posts") == []
