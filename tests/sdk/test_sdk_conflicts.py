"""Structured push conflicts: every resolution outcome, invalid answers and the retry bound."""

from __future__ import annotations

from typing import Any

import pytest
from sdk_helpers import Backend, Device, new_id

from oversqlite import (
    AcceptServer,
    Conflict,
    ConflictRetryExhaustedError,
    InvalidConflictResolutionError,
    KeepMerged,
    PushOutcome,
    Resolution,
    client_wins,
)


def pair(backend: Backend, **b_config: Any) -> tuple[Device, Device, str]:
    """Devices a and b of alice, both holding one synced user row."""
    a, b = backend.device("a"), backend.device("b", **b_config)
    uid = new_id()
    a.client.attach("alice")
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'orig', 'orig@x')", uid)
    a.client.sync()
    b.client.attach("alice")
    return a, b, uid


def user(device: Device, uid: str) -> tuple[Any, ...] | None:
    return device.db.execute("SELECT name, email FROM users WHERE id = ?", (uid,)).fetchone()


def test_server_wins_by_default(backend: Backend) -> None:
    a, b, uid = pair(backend)
    a.execute("UPDATE users SET name = 'from a' WHERE id = ?", uid)
    a.client.sync()
    b.execute("UPDATE users SET name = 'from b' WHERE id = ?", uid)
    report = b.client.sync()
    [conflict] = report.push.conflicts
    assert (conflict.table, conflict.local_op, conflict.resolution) == (
        "users",
        "UPDATE",
        "accept_server",
    )
    assert report.push.outcome is PushOutcome.NO_CHANGE
    assert user(b, uid) == ("from a", "orig@x") and b.client.pending_row_count() == 0
    a.client.sync()
    assert a.everything() == b.everything()


def test_client_wins_pushes_the_local_row_on_the_new_base(backend: Backend) -> None:
    a, b, uid = pair(backend, resolver=client_wins)
    a.execute("UPDATE users SET name = 'from a' WHERE id = ?", uid)
    a.client.sync()
    b.execute("UPDATE users SET name = 'from b' WHERE id = ?", uid)
    report = b.client.sync()
    assert [c.resolution for c in report.push.conflicts] == ["keep_local"]
    assert report.push.outcome is PushOutcome.COMMITTED
    a.client.sync()
    assert user(a, uid) == user(b, uid) == ("from b", "orig@x")


def test_a_merged_row_replaces_both(backend: Backend) -> None:
    def merge(conflict: Conflict) -> Resolution:
        assert conflict.server_row is not None and conflict.local_payload is not None
        return KeepMerged({**conflict.server_row, "name": conflict.local_payload["name"]})

    a, b, uid = pair(backend, resolver=merge)
    a.execute("UPDATE users SET email = 'a@x' WHERE id = ?", uid)
    a.client.sync()
    b.execute("UPDATE users SET name = 'b name' WHERE id = ?", uid)
    report = b.client.sync()
    assert [c.resolution for c in report.push.conflicts] == ["keep_merged"]
    a.client.sync()
    assert user(a, uid) == user(b, uid) == ("b name", "a@x")


def test_local_update_against_a_server_delete(backend: Backend) -> None:
    a, b, uid = pair(backend, resolver=client_wins)
    a.execute("DELETE FROM users WHERE id = ?", uid)
    a.client.sync()
    b.execute("UPDATE users SET name = 'still here' WHERE id = ?", uid)
    # Keeping a local update of a row the server deleted could resurrect orphans: refused.
    with pytest.raises(InvalidConflictResolutionError, match="server row is deleted"):
        b.client.sync()
    assert user(b, uid) == ("still here", "orig@x")
    assert [pk for _, pk, _ in b.dirty()] == [uid]  # the local intent is kept
    b.config = b.config.__class__(**{**b.config.__dict__, "resolver": lambda c: AcceptServer()})
    b.reopen()
    b.client.attach("alice")
    report = b.client.sync()
    assert [c.resolution for c in report.push.conflicts] == ["accept_server"]
    assert user(b, uid) is None and b.client.pending_row_count() == 0


@pytest.mark.parametrize("resolver", ["server", "client"])
def test_local_delete_against_a_server_update(backend: Backend, resolver: str) -> None:
    extra = {"resolver": client_wins} if resolver == "client" else {}
    a, b, uid = pair(backend, **extra)
    a.execute("UPDATE users SET name = 'updated' WHERE id = ?", uid)
    a.client.sync()
    b.execute("DELETE FROM users WHERE id = ?", uid)
    report = b.client.sync()
    [conflict] = report.push.conflicts
    assert conflict.local_op == "DELETE"
    a.client.sync()
    expected = ("updated", "orig@x") if resolver == "server" else None
    assert user(a, uid) == user(b, uid) == expected


def test_both_devices_insert_the_same_key(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b", resolver=client_wins)
    a.client.attach("alice")
    a.client.sync()
    b.client.attach("alice")
    uid = new_id()
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'a@x')", uid)
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'b', 'b@x')", uid)
    a.client.sync()
    report = b.client.sync()
    assert [(c.local_op, c.resolution) for c in report.push.conflicts] == [("INSERT", "keep_local")]
    a.client.sync()
    assert user(a, uid) == user(b, uid) == ("b", "b@x")


@pytest.mark.parametrize(
    "answer",
    [
        lambda c: KeepMerged({"id": c.key["id"], "name": "no email column"}),
        lambda c: "not a resolution",
        lambda c: 1 / 0,
    ],
    ids=["merged-row-missing-a-column", "wrong-type", "resolver-raises"],
)
def test_invalid_resolutions_fail_closed_with_the_intent_kept(
    backend: Backend, answer: Any
) -> None:
    a, b, uid = pair(backend, resolver=answer)
    other = new_id()
    a.execute("UPDATE users SET name = 'from a' WHERE id = ?", uid)
    a.client.sync()
    b.execute("UPDATE users SET name = 'from b' WHERE id = ?", uid)
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'sibling', 's@x')", other)
    with pytest.raises(InvalidConflictResolutionError):
        b.client.sync()
    assert user(b, uid) == ("from b", "orig@x")
    assert sorted(pk for _, pk, _ in b.dirty()) == sorted([uid, other])
    assert b.db.execute("SELECT COUNT(*) FROM _sync_outbox").fetchone() == (0,)


def test_conflicts_are_settled_one_per_round_within_the_bound(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b", max_conflict_retries=1)
    a.client.attach("alice")
    ids = [new_id() for _ in range(3)]
    for uid in ids:
        a.execute("INSERT INTO users (id, name, email) VALUES (?, 'orig', 'e')", uid)
    a.client.sync()
    b.client.attach("alice")
    for uid in ids:
        a.execute("UPDATE users SET name = 'a' WHERE id = ?", uid)
        b.execute("UPDATE users SET name = 'b' WHERE id = ?", uid)
    fresh = new_id()
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'new', 'e')", fresh)
    a.client.sync()
    with pytest.raises(ConflictRetryExhaustedError) as caught:
        b.client.push_pending()
    assert caught.value.pending_row_count == 2  # one conflicting row and the new row remain
    report = b.client.push_pending()  # the next call carries on
    assert report.outcome is PushOutcome.COMMITTED and len(report.conflicts) == 1
    b.client.sync()
    a.client.sync()
    assert a.everything() == b.everything()
    assert sorted(r[1] for r in a.rows("users")) == ["a", "a", "a", "new"]


def test_a_row_edited_again_during_the_push_is_judged_again(backend: Backend) -> None:
    seen: list[str] = []

    def record(conflict: Conflict) -> Resolution:
        assert conflict.local_payload is not None
        seen.append(conflict.local_payload["name"])
        return client_wins(conflict)

    a, b, uid = pair(backend, resolver=record)
    a.execute("UPDATE users SET name = 'from a' WHERE id = ?", uid)
    a.client.sync()
    b.execute("UPDATE users SET name = 'b v1' WHERE id = ?", uid)
    b.faults.call("commit", lambda: b.execute("UPDATE users SET name = 'b v2' WHERE id = ?", uid))
    report = b.client.sync()
    assert [c.resolution for c in report.push.conflicts] == ["deferred", "keep_local"]
    assert seen == ["b v1", "b v2"]
    a.client.sync()
    assert user(a, uid) == user(b, uid) == ("b v2", "orig@x")


def test_accepting_a_server_row_that_references_unseen_rows(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    author, post = new_id(), new_id()
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'first', 'e')", author)
    a.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)", post, author
    )
    a.client.sync()
    b.client.attach("alice")
    new_author = new_id()  # b has not seen this user when it accepts the server's post
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'second', 'e')", new_author)
    a.execute("UPDATE posts SET author_id = ? WHERE id = ?", new_author, post)
    a.client.sync()
    b.execute("UPDATE posts SET title = 'b title' WHERE id = ?", post)
    report = b.client.sync()
    assert [c.resolution for c in report.push.conflicts] == ["accept_server"]
    assert a.everything() == b.everything()
