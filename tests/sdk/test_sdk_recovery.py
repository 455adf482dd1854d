"""Crashes, retries, pruned history, source recovery and broken answers: nothing is lost."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sdk_helpers import Backend, Crash, Device, new_id

from oversqlite import (
    AttachOutcome,
    ProtocolError,
    PullOutcome,
    PushOutcome,
    PushRejectedError,
    RebuildRequiredError,
    RetryExhaustedError,
    SourceRecoveryRequiredError,
)

HERE = Path(__file__).resolve().parent


def seeded(backend: Backend) -> tuple[Device, list[str]]:
    """Device a of alice, attached, with three unpushed rows."""
    a = backend.device("a")
    a.client.attach("alice")
    a.client.sync()
    ids = sorted(new_id() for _ in range(3))
    for uid in ids:
        a.execute("INSERT INTO users (id, name, email) VALUES (?, 'pending', 'e')", uid)
    return a, ids


def assert_on_server_once(backend: Backend, ids: list[str], bundles: int = 1) -> None:
    """A fresh device sees exactly these rows, committed in ``bundles`` bundles."""
    probe = backend.device(f"probe-{new_id()[:8]}")
    result = probe.client.attach("alice")
    assert result.outcome is AttachOutcome.USED_REMOTE_STATE
    assert [r[0] for r in probe.rows("users")] == ids
    assert probe.client.last_bundle_seq_seen() == bundles


CRASH_POINTS = [
    ("create_push", False),  # frozen, nothing sent
    ("create_push", True),  # session created, answer lost
    ("chunk", True),  # rows staged on the server
    ("commit", False),  # about to commit
    ("commit", True),  # committed on the server, the client never heard
    ("committed_rows", True),  # commit recorded locally, fetching the authoritative rows
]


@pytest.mark.parametrize(("operation", "after"), CRASH_POINTS)
def test_a_crash_at_each_push_stage_loses_nothing(
    backend: Backend, operation: str, after: bool
) -> None:
    a, ids = seeded(backend)
    a.faults.crash(operation, after=after)
    with pytest.raises(Crash):
        a.client.push_pending()
    a.reopen()
    assert a.client.pending_row_count() == 3
    a.client.attach("alice")
    report = a.client.push_pending()
    assert (report.outcome, report.source_bundle_id, report.row_count) == (
        PushOutcome.COMMITTED,
        1,
        3,
    )
    assert a.client.pending_row_count() == 0
    assert a.client.push_pending().outcome is PushOutcome.NO_CHANGE
    assert_on_server_once(backend, ids)


def test_a_crash_inside_the_replay_transaction_loses_nothing(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    import oversqlite._push as push

    a, ids = seeded(backend)
    calls = {"n": 0}
    real = push.apply_server_row

    def dying(conn: Any, row: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 2:
            raise Crash("replay")
        real(conn, row)

    monkeypatch.setattr(push, "apply_server_row", dying)
    with pytest.raises(Crash):
        a.client.push_pending()
    monkeypatch.setattr(push, "apply_server_row", real)
    assert a.one("SELECT COUNT(*) FROM _sync_row_state WHERE table_name = 'users'") == 0
    a.reopen()
    a.client.attach("alice")
    assert a.client.push_pending().outcome is PushOutcome.COMMITTED
    assert a.one("SELECT COUNT(*) FROM _sync_row_state WHERE table_name = 'users'") == 3
    assert_on_server_once(backend, ids)


@pytest.mark.parametrize("mode", ["after-chunk", "after-commit", "in-replay"])
def test_a_killed_process_resumes_with_the_same_bundle(server_backend: Backend, mode: str) -> None:
    a, ids = seeded(server_backend)
    a.client.close()
    token = server_backend.token("alice")()
    child = subprocess.run(
        [
            sys.executable,
            str(HERE / "crash_child.py"),
            str(a.path),
            server_backend.base_url(),
            token,
            "alice",
            mode,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 17, child.stderr
    a.reopen()
    assert a.client.pending_row_count() == 3
    a.client.attach("alice")
    report = a.client.push_pending()
    assert (report.outcome, report.source_bundle_id) == (PushOutcome.COMMITTED, 1)
    assert_on_server_once(server_backend, ids)


def test_transient_failures_are_retried(backend: Backend) -> None:
    a, ids = seeded(backend)
    a.faults.fail("create_push", 503)
    a.faults.drop_response("chunk")  # the whole session is retried from create
    a.faults.fail("committed_rows", 502, times=2)  # page requests retry on their own
    assert a.client.push_pending().outcome is PushOutcome.COMMITTED
    assert a.faults.log.count("create_push") == 3  # 503, lost chunk answer, success
    assert a.faults.log.count("committed_rows") == 3
    assert_on_server_once(backend, ids)


def test_a_lost_commit_answer_is_recovered_as_already_committed(backend: Backend) -> None:
    a, ids = seeded(backend)
    a.faults.drop_response("commit")
    report = a.client.push_pending()
    assert (report.outcome, report.source_bundle_id) == (PushOutcome.COMMITTED, 1)
    assert a.faults.log.count("commit") == 1 and a.faults.log.count("create_push") == 2
    assert_on_server_once(backend, ids)


def test_exhausted_retries_keep_the_bundle_for_later(backend: Backend) -> None:
    a, ids = seeded(backend)
    a.faults.fail("commit", 503, times=3)
    with pytest.raises(RetryExhaustedError) as caught:
        a.client.push_pending()
    assert caught.value.attempts == 3 and caught.value.status == 503
    assert a.client.pending_row_count() == 3
    assert a.client.push_pending().source_bundle_id == 1
    assert_on_server_once(backend, ids)


def test_a_rejected_bundle_goes_back_to_pending(backend: Backend) -> None:
    a, ids = seeded(backend)
    a.faults.fail("commit", 403, code="forbidden")  # refused, not because of a row
    with pytest.raises(PushRejectedError, match="forbidden"):
        a.client.push_pending()
    assert a.one("SELECT COUNT(*) FROM _sync_outbox") == 0
    assert a.client.rejected_changes() == []
    assert sorted(pk for _, pk, _ in a.dirty()) == ids
    assert a.client.push_pending().outcome is PushOutcome.COMMITTED
    assert_on_server_once(backend, ids)


def test_a_tampered_committed_bundle_is_never_applied(backend: Backend) -> None:
    a, ids = seeded(backend)

    def tamper(body: dict[str, Any]) -> None:
        body["rows"][0]["payload"]["name"] = "tampered"

    a.faults.rewrite("committed_rows", tamper)
    with pytest.raises(ProtocolError, match="bundle_hash mismatch"):
        a.client.push_pending()
    assert a.one("SELECT COUNT(*) FROM _sync_row_state WHERE table_name = 'users'") == 0
    assert a.one("SELECT state FROM _sync_outbox") == "committed"
    assert a.client.push_pending().outcome is PushOutcome.COMMITTED
    assert {r[1] for r in a.rows("users")} == {"pending"}
    assert_on_server_once(backend, ids)


def test_pruned_history_rebuilds_from_a_snapshot(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'x', 'e')", new_id())
    a.client.sync()
    b.client.attach("alice")
    for i in range(3):
        a.execute("INSERT INTO users (id, name, email) VALUES (?, ?, 'e')", new_id(), f"u{i}")
        a.client.sync()
    backend.set_floor("alice", 3)
    report = b.client.pull_to_stable()
    assert report.outcome is PullOutcome.APPLIED_SNAPSHOT
    assert report.restore is not None and report.restore.snapshot_bundle_seq == 4
    assert b.client.last_bundle_seq_seen() == 4
    assert b.everything() == a.everything()


def test_a_committed_bundle_whose_rows_were_pruned_is_replaced_by_a_snapshot(
    backend: Backend,
) -> None:
    a, _ = seeded(backend)
    b = backend.device("b")
    a.faults.crash("committed_rows", after=False)
    with pytest.raises(Crash):
        a.client.push_pending()
    b.client.attach("alice")
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'from b', 'e')", new_id())
    b.client.sync()
    backend.set_floor("alice", 2)  # a's bundle (1) is no longer retained
    a.reopen()
    a.client.attach("alice")
    report = a.client.push_pending()
    assert (report.outcome, report.source_bundle_id) == (PushOutcome.COMMITTED, 1)
    assert a.client.source_info().next_source_bundle_id == 2
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'next', 'e')", new_id())
    assert a.client.sync().push.source_bundle_id == 2
    b.client.sync()
    assert a.everything() == b.everything()


def test_a_stale_source_sequence_rotates_the_source_and_keeps_pending_rows(
    backend: Backend,
) -> None:
    a, _ = seeded(backend)
    b = backend.device("b")
    a.db.execute("UPDATE _sync_state SET next_source_bundle_id = 7")  # e.g. a bad restore
    old_source = a.client.source_info().source_id
    with pytest.raises(SourceRecoveryRequiredError, match="source_sequence_out_of_order"):
        a.client.push_pending()
    info = a.client.source_info()
    assert info.source_recovery_reason == "source_sequence_out_of_order"
    calls = len(a.faults.log)
    with pytest.raises(SourceRecoveryRequiredError):
        a.client.pull_to_stable()  # refused without the network
    assert len(a.faults.log) == calls
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'meanwhile', 'e')", new_id())
    rebuilt = a.client.rebuild()
    assert rebuilt.outcome is PullOutcome.APPLIED_SNAPSHOT
    assert a.client.source_info().source_id == info.replacement_source_id != old_source
    assert a.client.pending_row_count() == 4
    report = a.client.sync()
    assert (report.push.source_bundle_id, report.push.row_count) == (1, 4)
    b.client.attach("alice")
    assert b.everything() == a.everything()
    assert len(b.rows("users")) == 4


def test_a_restored_backup_is_caught_by_the_already_committed_proof(backend: Backend) -> None:
    a, _ = seeded(backend)
    a.client.sync()
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'second', 'e')", new_id())
    a.client.sync()
    # Restore to the state before both pushes: the sequence says 1 again.
    a.db.execute("UPDATE _sync_state SET next_source_bundle_id = 1")
    late = new_id()
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'after restore', 'e')", late)
    report = a.client.sync()  # already_committed for bundle 1 does not contain `late`: recover
    assert report.push.outcome is PushOutcome.COMMITTED
    assert a.client.source_info().next_source_bundle_id == 2
    probe = backend.device("probe")
    probe.client.attach("alice")
    assert late in {r[0] for r in probe.rows("users")}
    assert probe.everything() == a.everything()


def test_an_interrupted_rebuild_past_a_pruned_bundle_is_finished_by_sync(backend: Backend) -> None:
    a, ids = seeded(backend)
    b = backend.device("b")
    a.faults.crash("committed_rows", after=False)
    with pytest.raises(Crash):
        a.client.push_pending()
    b.client.attach("alice")
    b.execute("INSERT INTO users (id, name, email) VALUES (?, 'from b', 'e')", new_id())
    b.client.sync()
    backend.set_floor("alice", 2)
    a.reopen()
    a.client.attach("alice")
    a.faults.fail("create_snapshot", 500, code="snapshot_session_create_failed", times=3)
    with pytest.raises(RetryExhaustedError):
        a.client.push_pending()  # the rebuild past our pruned bundle could not start
    assert a.client.status().rebuild_required
    with pytest.raises(RebuildRequiredError):
        a.client.push_pending()
    report = a.client.sync()  # runs the pending rebuild, then syncs
    assert report.push.outcome is PushOutcome.NO_CHANGE
    assert a.client.source_info().next_source_bundle_id == 2
    assert {r[0] for r in a.rows("users")} >= set(ids)
    assert a.everything() == b.everything()
