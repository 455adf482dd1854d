"""Background sync, watch wake-ups, cancellation, progress and non-blocking status, against a
real server process."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sdk_helpers import Device, FaultTransport, business_config, new_id

from oversqlite import (
    CancelToken,
    EventKind,
    OperationCancelledError,
    Phase,
    Progress,
    PullOutcome,
    PushOutcome,
    SyncEvent,
)
from serverproc import ServerProcess


@pytest.fixture
def no_watch_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(database_url, env={"OVERSYNC_BUNDLE_CHANGE_WATCH": "false"})
    process.start(tmp_path)
    try:
        yield process
    finally:
        process.stop()


def device(server: ServerProcess, path: Path, user: str, **config: object) -> Device:
    return Device(
        path,
        base_url=server.base_url,
        token=lambda: server.token(user),
        transport=FaultTransport(httpx.HTTPTransport()),
        config=business_config(**config) if config else None,
    )


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return False


def insert_user(target: Device, name: str) -> str:
    key = new_id()
    target.execute("INSERT INTO users (id, name, email) VALUES (?, ?, ?)", key, name, "e@x")
    return key


def names(target: Device) -> set[str]:
    return {row[0] for row in target.db.execute("SELECT name FROM users")}


def test_background_sync_with_watch_delivers_writes_both_ways(
    server: ServerProcess, tmp_path: Path
) -> None:
    a, b = device(server, tmp_path / "a.db", "bob"), device(server, tmp_path / "b.db", "bob")
    events: list[SyncEvent] = []
    try:
        a.client.attach("bob")
        b.client.attach("bob")
        running = a.client.start(watch=True, on_event=events.append)
        b.client.start(watch=True)
        assert eventually(lambda: running.watching and bool(b.client.background.watching))
        insert_user(a, "from a")
        assert eventually(lambda: "from a" in names(b))
        insert_user(b, "from b")
        assert eventually(lambda: "from b" in names(a))
        assert eventually(lambda: a.client.pending_row_count() == 0)
        kinds = {event.kind for event in events}
        assert {EventKind.WATCHING, EventKind.SYNCED, EventKind.PENDING_CHANGED} <= kinds
        # the watch log shows the stream: no polling pulls were needed to get "from b"
        assert any(op == "GET /sync/watch" for op in a.faults.log)
    finally:
        a.close()
        b.close()
    assert not running.running


def test_background_sync_falls_back_to_polling_when_watch_is_off(
    no_watch_server: ServerProcess, tmp_path: Path
) -> None:
    a = device(no_watch_server, tmp_path / "a.db", "carol")
    b = device(no_watch_server, tmp_path / "b.db", "carol")
    events: list[SyncEvent] = []
    try:
        a.client.attach("carol")
        b.client.attach("carol")
        a.client.start(watch=True)
        b.client.start(watch=True, on_event=events.append, poll_interval=0.2)
        insert_user(a, "polled")
        assert eventually(lambda: "polled" in names(b))
        assert EventKind.POLLING in {event.kind for event in events}
        assert not b.client.background or not b.client.background.watching
    finally:
        a.close()
        b.close()


def test_background_sync_reports_offline_then_online_and_pauses(
    server: ServerProcess, tmp_path: Path
) -> None:
    a = device(server, tmp_path / "a.db", "dora")
    events: list[SyncEvent] = []
    try:
        a.client.attach("dora")
        a.faults.fail("create_push", 503, times=3)
        running = a.client.start(on_event=events.append)
        insert_user(a, "eventually pushed")
        assert eventually(lambda: EventKind.OFFLINE in {e.kind for e in events})
        assert not running.online or EventKind.ONLINE in {e.kind for e in events}
        assert eventually(lambda: a.client.pending_row_count() == 0)
        assert eventually(lambda: EventKind.ONLINE in {e.kind for e in events})
        assert running.online
        running.pause_uploads()
        time.sleep(0.3)  # let a round that already started finish
        insert_user(a, "held back")
        time.sleep(0.5)
        assert a.client.pending_row_count() == 1  # paused: not pushed
        running.resume_uploads()
        assert eventually(lambda: a.client.pending_row_count() == 0)
    finally:
        a.close()


def test_status_answers_while_a_sync_is_blocked_in_the_network(
    server: ServerProcess, tmp_path: Path
) -> None:
    a = device(server, tmp_path / "a.db", "erin")
    try:
        a.client.attach("erin")
        insert_user(a, "slow push")
        entered, release = threading.Event(), threading.Event()
        a.faults.call("commit", lambda: (entered.set(), release.wait(30)))
        worker = threading.Thread(target=a.client.sync)
        worker.start()
        assert entered.wait(30)
        # the sync holds the client lock inside the commit request: status still answers
        status = a.client.status()
        assert status.pending_row_count == 1 and status.attached
        assert a.client.pending_row_count() == 1
        release.set()
        worker.join(30)
        assert a.client.pending_row_count() == 0
    finally:
        a.close()


def test_cancel_stops_a_push_at_a_safe_point_without_a_session_delete(
    server: ServerProcess, tmp_path: Path
) -> None:
    a = device(server, tmp_path / "a.db", "fred", upload_chunk_rows=10)
    try:
        a.client.attach("fred")
        for i in range(35):
            insert_user(a, f"u{i}")
        token = CancelToken()
        seen: list[Progress] = []

        def progress(report: Progress) -> None:
            seen.append(report)
            if report.done == 20:
                token.cancel()

        with pytest.raises(OperationCancelledError):
            a.client.push_pending(cancel=token, progress=progress)
        assert [(p.phase, p.done, p.total) for p in seen] == [
            (Phase.PUSH, 10, 35),
            (Phase.PUSH, 20, 35),
        ]
        assert "delete_push" not in a.faults.log  # no network DELETE on the way out
        assert a.client.pending_row_count() == 35  # frozen, nothing lost
        report = a.client.push_pending()
        assert report.outcome is PushOutcome.COMMITTED and report.row_count == 35
        assert a.client.pending_row_count() == 0
    finally:
        a.close()


def test_ctrl_c_during_a_push_skips_the_session_delete(
    server: ServerProcess, tmp_path: Path
) -> None:
    a = device(server, tmp_path / "a.db", "gina")
    try:
        a.client.attach("gina")
        insert_user(a, "interrupted")

        def interrupt() -> None:
            raise KeyboardInterrupt

        a.faults.call("commit", interrupt)
        with pytest.raises(KeyboardInterrupt):
            a.client.push_pending()
        assert "delete_push" not in a.faults.log
        assert a.client.push_pending().outcome is PushOutcome.COMMITTED
    finally:
        a.close()


def test_hydrate_and_pull_report_progress(server: ServerProcess, tmp_path: Path) -> None:
    seeder = device(server, tmp_path / "seed.db", "hank")
    fresh = device(server, tmp_path / "fresh.db", "hank", snapshot_chunk_rows=100)
    try:
        seeder.client.attach("hank")
        for i in range(250):
            insert_user(seeder, f"u{i}")
        seeder.client.sync()
        seen: list[Progress] = []
        fresh.client.attach("hank", progress=seen.append)
        downloads = [(p.done, p.total) for p in seen if p.phase is Phase.SNAPSHOT_DOWNLOAD]
        assert downloads == [(100, 250), (200, 250), (250, 250)]
        applied = [p for p in seen if p.phase is Phase.SNAPSHOT_APPLY]
        assert applied and applied[-1].done == applied[-1].total == 250
        insert_user(seeder, "later")
        seeder.client.sync()
        pulled: list[Progress] = []
        report = fresh.client.pull_to_stable(progress=pulled.append)
        assert report.outcome is PullOutcome.APPLIED_INCREMENTAL
        assert [(p.phase, p.done) for p in pulled] == [(Phase.PULL, 1)]
        assert "later" in names(fresh)
    finally:
        seeder.close()
        fresh.close()


async def test_async_client_cancellation_leaves_a_resumable_push(
    server: ServerProcess, tmp_path: Path
) -> None:
    from oversqlite import AsyncClient

    a = device(server, tmp_path / "a.db", "ivan")
    a.client.close()  # the AsyncClient owns the database from here
    transport = FaultTransport(httpx.HTTPTransport())
    client = AsyncClient(
        a.path,
        business_config(),
        base_url=server.base_url,
        token=lambda: server.token("ivan"),
        transport=transport,
    )
    try:
        await client.open()
        await client.attach("ivan")
        insert_user(a, "cancelled mid-push")
        entered, release = threading.Event(), threading.Event()
        transport.call("commit", lambda: (entered.set(), release.wait(30)))
        task = asyncio.create_task(client.sync())
        assert await asyncio.to_thread(entered.wait, 30)
        assert (await client.status()).pending_row_count == 1  # answers during the sync
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()  # the commit goes through; the worker stops before fetching its rows
        report = await client.push_pending()
        assert report.outcome is PushOutcome.COMMITTED and report.row_count == 1
        assert await client.pending_row_count() == 0
        assert "delete_push" not in transport.log
    finally:
        await client.close()
        a.db.close()


def test_cancelled_hydrate_skips_the_snapshot_delete_and_attach_continues(
    server: ServerProcess, tmp_path: Path
) -> None:
    seeder = device(server, tmp_path / "seed.db", "jane")
    fresh = device(server, tmp_path / "fresh.db", "jane", snapshot_chunk_rows=50)
    try:
        seeder.client.attach("jane")
        for i in range(120):
            insert_user(seeder, f"u{i}")
        seeder.client.sync()
        token = CancelToken()

        def progress(report: Progress) -> None:
            if report.phase is Phase.SNAPSHOT_DOWNLOAD and report.done == 50:
                token.cancel()

        with pytest.raises(OperationCancelledError):
            fresh.client.attach("jane", cancel=token, progress=progress)
        assert "delete_snapshot" not in fresh.faults.log
        assert not fresh.client.status().attached  # nothing half-applied: still anonymous
        assert fresh.rows("users") == []
        result = fresh.client.attach("jane")
        assert result.restore is not None and result.restore.row_count == 120
        assert len(fresh.rows("users")) == 120
    finally:
        seeder.close()
        fresh.close()


def test_watch_reconnects_after_a_server_restart_and_catches_up(
    server: ServerProcess, tmp_path: Path
) -> None:
    a, b = device(server, tmp_path / "a.db", "kate"), device(server, tmp_path / "b.db", "kate")
    events: list[SyncEvent] = []
    try:
        a.client.attach("kate")
        b.client.attach("kate")
        b_sync = b.client.start(watch=True, on_event=events.append, poll_interval=3600)
        assert eventually(lambda: b_sync.watching)
        server.stop()  # the stream breaks; b keeps trying with backoff
        assert eventually(lambda: not b_sync.watching)
        insert_user(a, "while b was away")
        server.start(tmp_path)  # the same port
        a.client.sync()
        # no polling (1 h interval): the reopened stream's catch-up event or the reconnect's
        # catch-up pull brings the row
        assert eventually(lambda: "while b was away" in names(b), timeout=60)
        assert eventually(lambda: b_sync.watching)
        watching = [e for e in events if e.kind is EventKind.WATCHING]
        assert len(watching) >= 2
    finally:
        a.close()
        b.close()


def test_background_sync_reports_a_refused_change_and_keeps_syncing(
    server: ServerProcess, tmp_path: Path
) -> None:
    a, b = device(server, tmp_path / "a.db", "erin"), device(server, tmp_path / "b.db", "erin")
    events: list[SyncEvent] = []
    try:
        a.client.attach("erin")
        b.client.attach("erin")
        parent = insert_user(a, "parent")
        a.execute(
            "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
            new_id(),
            parent,
        )
        a.client.sync()
        # an app connection without PRAGMA foreign_keys deletes a still-referenced parent
        loose = sqlite3.connect(a.path, isolation_level=None, timeout=30)
        loose.execute("DELETE FROM users WHERE id = ?", (parent,))
        loose.close()
        a.client.start(on_event=events.append, poll_interval=0.2)
        assert eventually(lambda: any(e.kind is EventKind.CHANGE_REJECTED for e in events))
        [event] = [e for e in events if e.kind is EventKind.CHANGE_REJECTED]
        assert event.rejected is not None and event.rejected.key == parent
        assert event.rejected.op == "DELETE"
        # the queue does not stall: a later write still reaches the other device
        insert_user(a, "after the refusal")
        b.client.start(poll_interval=0.2)
        assert eventually(lambda: "after the refusal" in names(b))
        assert a.client.rejected_changes() == [event.rejected]
    finally:
        a.close()
        b.close()
