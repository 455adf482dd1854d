"""Regressions the fault-injection soak (docs/soak.md) found, reduced to one scenario each."""

from __future__ import annotations

import pytest
from sdk_helpers import Backend, Crash, new_id

from oversqlite import client_wins


@pytest.mark.xfail(
    strict=True,
    reason="known SDK bug (docs/soak.md): create's history_pruned on a prepared outbox starts "
    "source recovery, which re-pushes the already committed rows under a new source",
)
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
    # Only the new row goes out: "from a" is on the server already. The bug: the committed
    # outbox is requeued under a rotated source, pushed again on a stale base, conflicts with
    # its own committed copy, and the resolver judges it as a fresh local edit.
    assert report.push.row_count == 1
    b.client.sync()
    assert a.everything() == b.everything()
