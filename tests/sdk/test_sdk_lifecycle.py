"""open / attach / detach / uninstall, against a real server."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sdk_helpers import Backend, ServerBackend, new_id, server_sql

from oversqlite import (
    AttachConflictError,
    AttachOutcome,
    AttachRequiredError,
    ClientClosedError,
    DetachOutcome,
    LifecycleUnsupportedError,
    OpenRequiredError,
    PushOutcome,
    ReconnectRequiredError,
)
from oversync_server.localpg import create_database_async, drop_database_async
from serverproc import ServerProcess


def add_user(device: object, name: str = "n") -> str:
    uid = new_id()
    device.execute("INSERT INTO users (id, name, email) VALUES (?, ?, 'e')", uid, name)  # type: ignore[attr-defined]
    return uid


def test_anonymous_writes_seed_an_empty_account(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    ids = [add_user(a, f"offline {i}") for i in range(3)]
    result = a.client.attach("alice")
    assert result.outcome is AttachOutcome.SEEDED_FROM_LOCAL
    assert a.client.status().pending_initialization
    assert a.client.detach().outcome is DetachOutcome.BLOCKED_PENDING_CHANGES
    push = a.client.push_pending()
    assert (push.outcome, push.source_bundle_id, push.row_count) == (PushOutcome.COMMITTED, 1, 3)
    assert not a.client.status().pending_initialization
    hydrated = b.client.attach("alice")
    assert hydrated.outcome is AttachOutcome.USED_REMOTE_STATE
    assert hydrated.restore is not None and hydrated.restore.row_count == 3
    assert [r[0] for r in b.rows("users")] == sorted(ids)
    assert b.client.last_bundle_seq_seen() == push.bundle_seq


def test_empty_devices_start_empty(backend: Backend) -> None:
    a = backend.device("a")
    assert a.client.attach("alice").outcome is AttachOutcome.STARTED_EMPTY
    add_user(a)
    assert a.client.sync().push.outcome is PushOutcome.COMMITTED


def test_a_second_device_hydrates_and_its_anonymous_rows_give_way(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    add_user(a, "server data")
    a.client.attach("alice")
    a.client.sync()
    add_user(b, "local only")  # written before b ever attached
    result = b.client.attach("alice")
    assert result.outcome is AttachOutcome.USED_REMOTE_STATE
    assert result.discarded_local_rows == 1
    assert [r[1] for r in b.rows("users")] == ["server data"]
    assert b.client.pending_row_count() == 0


def test_reopening_resumes_without_the_network(backend: Backend) -> None:
    a = backend.device("a")
    a.client.attach("alice")
    add_user(a)
    a.client.sync()
    source = a.client.source_info().source_id
    a.reopen()
    with pytest.raises(AttachRequiredError, match="attach"):
        a.client.push_pending()
    calls = len(a.faults.log)
    assert a.client.attach("alice").outcome is AttachOutcome.RESUMED
    assert len(a.faults.log) == calls  # no request
    assert a.client.source_info().source_id == source
    add_user(a)
    assert a.client.push_pending().source_bundle_id == 2


def test_offline_writes_survive_a_restart(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    a.client.sync()
    uid = add_user(a, "written offline")
    a.reopen()
    a.client.attach("alice")
    a.client.sync()
    b.client.attach("alice")
    assert b.rows("users") == a.rows("users") == [(uid, "written offline", "e", None, None)]


def test_detach_wipes_and_another_user_can_attach(backend: Backend) -> None:
    a = backend.device("a")
    a.client.attach("alice")
    add_user(a, "alice's")
    blocked = a.client.detach()
    assert (blocked.outcome, blocked.pending_row_count) == (
        DetachOutcome.BLOCKED_PENDING_CHANGES,
        1,
    )
    a.client.sync()
    old_source = a.client.source_info().source_id
    assert a.client.detach().detached
    assert a.rows("users") == [] and a.client.last_bundle_seq_seen() == 0
    assert not a.client.status().attached
    assert a.client.source_info().source_id != old_source
    with pytest.raises(AttachRequiredError):
        a.client.sync()
    # Bob starts fresh on this device: new source, his own sequence and checkpoint.
    bobs = add_user(a, "bob's")  # written while detached: captured as anonymous
    assert a.client.pending_row_count() == 1
    a.close()
    bob = backend.device("a", user="bob")  # the same file, Bob's token
    assert bob.client.attach("bob").outcome is AttachOutcome.SEEDED_FROM_LOCAL
    push = bob.client.push_pending()
    assert (push.source_bundle_id, push.bundle_seq) == (1, 1)
    assert bob.rows("users") == [(bobs, "bob's", "e", None, None)]


def test_attaching_another_user_requires_a_detach(backend: Backend) -> None:
    a = backend.device("a")
    a.client.attach("alice")
    with pytest.raises(AttachConflictError, match="detach"):
        a.client.attach("bob")


def test_sync_then_detach_pushes_everything_first(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    uid = add_user(a, "last words")
    result = a.client.sync_then_detach()
    assert result.detached and len(result.syncs) == 1
    assert a.rows("users") == []
    b.client.attach("alice")
    assert [r[0] for r in b.rows("users")] == [uid]


def test_seed_rows_deleted_before_the_push_still_finish_initialization(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    uid = add_user(a)
    assert a.client.attach("alice").outcome is AttachOutcome.SEEDED_FROM_LOCAL
    a.execute("DELETE FROM users WHERE id = ?", uid)
    assert a.client.push_pending().outcome is PushOutcome.NO_CHANGE
    assert not a.client.status().pending_initialization
    assert a.client.detach().detached
    assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE


def test_uninstall_removes_sync_state_and_keeps_business_data(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    uid = add_user(a)
    a.client.sync()
    a.client.uninstall_sync()
    with pytest.raises(ClientClosedError):
        a.client.sync()
    names = {r[0] for r in a.db.execute("SELECT name FROM sqlite_master WHERE name LIKE '_sync%'")}
    assert names == set()
    assert [r[0] for r in a.rows("users")] == [uid]
    a.reopen()  # installs afresh: existing rows become anonymous pending rows
    assert a.client.pending_row_count() == 1
    assert a.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    b.client.attach("alice")
    assert a.rows("users") == b.rows("users")


def test_calls_before_open_and_after_close_are_refused(backend: Backend) -> None:
    from oversqlite import Client

    a = backend.device("a")
    fresh = Client(a.path, a.config, base_url="http://x", token="t")
    with pytest.raises(OpenRequiredError):
        fresh.status()
    a.client.close()
    with pytest.raises(ClientClosedError):
        a.client.attach("alice")
    with pytest.raises(ValueError):
        fresh.attach("")


def test_servers_without_connect_are_reported(backend: Backend) -> None:
    a = backend.device("a")
    a.faults.fail("connect", 501, code="not_implemented")
    with pytest.raises(LifecycleUnsupportedError):
        a.client.attach("alice")
    assert not a.client.status().attached


def test_retry_later_is_a_result(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    add_user(a)
    assert a.client.attach("alice").outcome is AttachOutcome.SEEDED_FROM_LOCAL  # holds the lease
    add_user(b)
    result = b.client.attach("alice")
    assert result.outcome is AttachOutcome.RETRY_LATER and not result.attached
    assert result.retry_after is not None and result.retry_after >= 1
    assert not b.client.status().attached
    a.client.push_pending()  # the seed ends the initialization
    assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE


@pytest.fixture(scope="module")
def short_lease_server(
    pg_cluster: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server whose initialization leases expire after one second."""
    name = f"t_{uuid.uuid4().hex}"
    dsn = asyncio.run(create_database_async(pg_cluster, name))
    process = ServerProcess(
        dsn,
        extra_args=("--dev",),
        env={"OVERSYNC_INITIALIZATION_LEASE_TTL_SECONDS": "1"},
    ).start(tmp_path_factory.mktemp("lease"))
    try:
        yield process
    finally:
        process.stop()
        asyncio.run(drop_database_async(pg_cluster, name, force=True))


def test_a_lost_initialization_lease_keeps_the_rows_and_asks_to_reattach(
    tmp_path: Path, short_lease_server: ServerProcess
) -> None:
    backend = ServerBackend(tmp_path, short_lease_server)
    try:
        a = backend.device("a")
        uid = add_user(a)
        assert a.client.attach("alice").outcome is AttachOutcome.SEEDED_FROM_LOCAL
        time.sleep(2.0)  # the lease expires (a TTL, not a timing assertion)
        with pytest.raises(ReconnectRequiredError):
            a.client.push_pending()
        assert not a.client.status().attached and a.client.pending_row_count() == 1
        assert a.client.attach("alice").outcome is AttachOutcome.SEEDED_FROM_LOCAL
        assert a.client.push_pending().outcome is PushOutcome.COMMITTED
        assert [r[0] for r in a.rows("users")] == [uid]
    finally:
        backend.close()


def test_a_crash_during_hydration_resumes_from_the_staged_snapshot(backend: Backend) -> None:
    from sdk_helpers import Crash

    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    add_user(a)
    a.client.sync()
    b.faults.crash("delete_snapshot", after=False)  # dies after staging, before applying
    with pytest.raises(Crash):
        b.client.attach("alice")
    b.reopen()
    with pytest.raises(sqlite3.IntegrityError, match="remote replace"):
        b.execute("INSERT INTO users (id, name, email) VALUES (?, 'x', 'e')", new_id())
    calls = len(b.faults.log)
    assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    assert len(b.faults.log) == calls  # applied from the durable stage
    assert b.rows("users") == a.rows("users")


def test_a_snapshot_session_that_loses_its_pages_mid_download_is_started_over(
    dev_server: ServerProcess, backend: Backend
) -> None:
    # The server's snapshot pages are UNLOGGED: a database crash between two chunks empties
    # them (truncating is what crash recovery does), the next chunk answers 410
    # snapshot_session_expired, and the client downloads a new session instead of failing.
    a = backend.device("a")
    ids = [add_user(a, f"u{i}") for i in range(5)]
    assert a.client.attach("alice").outcome is AttachOutcome.SEEDED_FROM_LOCAL
    a.client.push_pending()

    def crash_recovery() -> None:
        server_sql(dev_server.database_url, "TRUNCATE sync.snapshot_pages")

    b = backend.device("b", snapshot_chunk_rows=2)
    b.faults.call("snapshot_chunk", lambda: None)  # the first chunk goes through
    b.faults.call("snapshot_chunk", crash_recovery)
    hydrated = b.client.attach("alice")
    assert hydrated.outcome is AttachOutcome.USED_REMOTE_STATE
    assert [r[0] for r in b.rows("users")] == sorted(ids)
    assert b.faults.log.count("create_snapshot") == 2
