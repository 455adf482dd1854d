"""Regressions the fault-injection soak (docs/soak.md) found, reduced to one scenario each.

All start the same way: device a's push is committed on the server but a dies before it hears
so (or before it fetched the committed rows), and the bundle is pruned before a comes back.
"""

from __future__ import annotations

import pytest
from sdk_helpers import Backend, Crash, new_id

from oversqlite import Conflict, Resolution, client_wins, server_wins


def test_a_commit_whose_answer_was_lost_is_not_committed_again_after_its_bundle_was_pruned(
    server_backend: Backend,
) -> None:
    a = server_backend.device("a", resolver=client_wins)  # keeps its local intent on conflict
    a.client.attach("alice")
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'from a', 'e')", new_id())
    a.faults.crash("commit", after=True)  # the server committed; a died before hearing it
    with pytest.raises(Crash):
        a.client.push_pending()
    b = server_backend.device("b")
    b.client.attach("alice")  # its snapshot has a's row
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'from b', 'e')", new_id())
    b.client.sync()
    server_backend.set_floor("alice", b.client.last_bundle_seq_seen())  # a's bundle is pruned
    a.reopen()
    a.client.attach("alice")
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'later', 'e')", new_id())
    report = a.client.sync()
    # Only the new row goes out: "from a" is on the server already. The bug was: create's
    # history_pruned started source recovery, which requeued the committed outbox under a
    # rotated source; pushed again on a stale base, it conflicted with its own committed copy
    # and the resolver judged it as a fresh local edit.
    assert report.push.row_count == 1
    b.client.sync()
    assert a.everything() == b.everything()


@pytest.mark.parametrize("crash_at", ["commit", "committed_rows"])
def test_an_edit_after_a_lost_and_pruned_commit_is_not_dropped_by_the_default_resolver(
    server_backend: Backend, crash_at: str
) -> None:
    a = server_backend.device("a")  # the default resolver: server_wins
    a.client.attach("alice")
    uid = new_id()
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'from a', 'e')", uid)
    a.faults.crash(crash_at, after=crash_at == "commit")
    with pytest.raises(Crash):
        a.client.push_pending()
    b = server_backend.device("b")
    b.client.attach("alice")
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'from b', 'e')", new_id())
    b.client.sync()
    server_backend.set_floor("alice", b.client.last_bundle_seq_seen())
    a.reopen()
    a.client.attach("alice")
    a.execute("UPDATE users SET name = 'edited later' WHERE id = ?", uid)
    a.client.sync()
    # The bug was: the edit kept the row's stale base (0), conflicted with the row's own
    # committed copy, and server_wins silently replaced it by the older committed value.
    assert a.one("SELECT name FROM users WHERE id = ?", uid) == "edited later"


def test_a_row_another_device_changed_after_a_lost_and_pruned_commit_still_conflicts(
    server_backend: Backend,
) -> None:
    judged: list[Conflict] = []

    def recording(conflict: Conflict) -> Resolution:
        judged.append(conflict)
        return server_wins(conflict)

    a = server_backend.device("a", resolver=recording)
    a.client.attach("alice")
    uid = new_id()
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'from a', 'e')", uid)
    a.faults.crash("commit", after=True)
    with pytest.raises(Crash):
        a.client.push_pending()
    b = server_backend.device("b")
    b.client.attach("alice")
    b.execute("UPDATE users SET name = 'changed by b' WHERE id = ?", uid)
    b.client.sync()
    server_backend.set_floor("alice", b.client.last_bundle_seq_seen())
    a.reopen()
    a.client.attach("alice")
    a.execute("UPDATE users SET name = 'edited by a' WHERE id = ?", uid)
    a.client.sync()
    # b's change is not ours: a's edit is judged against it (here: the server wins)
    assert [(c.server_row or {}).get("name") for c in judged] == ["changed by b"]
    assert a.one("SELECT name FROM users WHERE id = ?", uid) == "changed by b"


def test_a_device_that_started_the_account_empty_gets_history_pruned_before_its_first_pull(
    server_backend: Backend,
) -> None:
    a = server_backend.device("a")
    assert a.client.attach("alice").outcome.value == "started_empty"  # checkpoint 0
    b = server_backend.device("b")
    b.client.attach("alice")
    early, late = new_id(), new_id()
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'early', 'e')", early)
    b.client.sync()  # bundle 1
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'late', 'e')", late)
    b.client.sync()  # bundle 2
    server_backend.set_floor("alice", 1)  # bundle 1 is no longer retained
    report = a.client.sync()
    # The bug was: a pull after bundle 0 is exempt from the floor check (as in go-oversync), the
    # server silently skips the pruned bundles, and a never got "early".
    assert report.pull.outcome.value == "applied_snapshot"
    assert a.one("SELECT name FROM users WHERE id = ?", early) == "early"
    assert a.everything() == b.everything()
