"""GET /sync/watch (protocol.md §7, server.md §9): SSE wake-ups from PostgreSQL NOTIFY, across
server processes, with heartbeats, catch-up events and listener reconnects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from oversync_client.api.pull import watch_bundles
from oversync_server.auth import sign_token
from oversync_server.config import WATCH_NOTIFY_CHANNEL
from oversync_server.engine.errors import SyncError
from oversync_server.engine.scope import Connection
from oversync_server.runtime import SyncRuntime
from oversync_server.server_writes import exec_write
from oversync_server.watch import (
    LISTENER_APPLICATION_NAME,
    BundleChangeListener,
    BundleEvent,
    BundleHub,
    bundle_watch,
    parse_notification,
)
from protocol_helpers import (
    attach,
    expect_error,
    insert_user,
    push_rows,
    start_server,
    started_runtime,
    watch_stream,
)
from serverproc import JWT_SECRET, ServerProcess


async def _insert(conn: Connection) -> None:
    await conn.execute(
        "INSERT INTO business.users (id, name, email) VALUES ($1, 'W', 'w@example.com')",
        uuid.uuid4(),
    )


async def _write(database_url: str, user: str, count: int = 1) -> None:
    async with started_runtime(database_url) as runtime:
        for _ in range(count):
            await exec_write(runtime, user, writer_id="server:test", fn=_insert)


# ------------------------------------------------------------------------------------ hub


async def test_the_hub_coalesces_newest_wins_and_skips_old_events() -> None:
    hub = BundleHub()
    subscription = hub.subscribe(7, "alice", after=2)
    for seq in (1, 2, 3, 4, 5):
        hub.publish(7, BundleEvent(seq, "dev", seq))
    hub.publish(8, BundleEvent(99))  # another user
    assert await subscription.next_event(0.1) == BundleEvent(5, "dev", 5)
    assert await subscription.next_event(0.01) is None
    hub.publish(7, BundleEvent(5))  # not newer than delivered
    assert await subscription.next_event(0.01) is None
    assert hub.subscriber_count("alice") == 1
    hub.unsubscribe(subscription)
    hub.unsubscribe(subscription)  # idempotent
    assert hub.subscriber_count("alice") == 0 and hub.user_pks() == []


def test_notification_payloads() -> None:
    payload = '{"user_pk":3,"bundle_seq":9,"source_id":"dev-a","source_bundle_id":4}'
    assert parse_notification(payload) == (3, BundleEvent(9, "dev-a", 4))
    assert parse_notification('{"user_pk":3,"bundle_seq":9}') == (3, BundleEvent(9))
    for bad in ("", "[]", '{"user_pk":0,"bundle_seq":1}', '{"user_pk":1,"bundle_seq":"2"}'):
        assert parse_notification(bad) is None
    assert BundleEvent(9, "dev-a", 4).sse() == (
        b'event: bundle\ndata: {"bundle_seq":9,"source_id":"dev-a","source_bundle_id":4}\n\n'
    )
    assert BundleEvent(9).sse() == b'event: bundle\ndata: {"bundle_seq":9}\n\n'


# ------------------------------------------------------------------------- NOTIFY at commit


async def test_commits_notify_once_and_rollbacks_never(
    server: ServerProcess, database_url: str
) -> None:
    received: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener(
            WATCH_NOTIFY_CHANNEL, lambda *args: received.put_nowait(args[-1])
        )
        await _write(database_url, "alice")
        payload = json.loads(await asyncio.wait_for(received.get(), 10))
        user_pk = await listener.fetchval("SELECT user_pk FROM sync.user_state")
        assert payload == {
            "user_pk": user_pk,
            "bundle_seq": 1,
            "source_id": "server:test",
            "source_bundle_id": 1,
        }

        async def fails(conn: Connection) -> None:
            await _insert(conn)
            raise RuntimeError("roll back")

        async with started_runtime(database_url) as runtime:
            with pytest.raises(RuntimeError):
                await exec_write(runtime, "alice", writer_id="server:test", fn=fails)
        await asyncio.sleep(0.3)
        assert received.empty()
    finally:
        await listener.close()


# ------------------------------------------------------------------------------- over HTTP


async def test_a_push_through_a_second_server_wakes_the_watcher(
    server: ServerProcess, database_url: str, tmp_path: Path
) -> None:
    other = start_server(database_url, tmp_path)
    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
        async with watch_stream(server, "alice", "dev-a", after=0) as stream:
            with other.client("alice") as client:
                committed = await asyncio.to_thread(
                    push_rows, client, "dev-b", 1, [insert_user("Bo")]
                )
            event = await stream.next_event()
            assert event == {
                "bundle_seq": committed.bundle_seq,
                "source_id": "dev-b",
                "source_bundle_id": 1,
            }
    finally:
        other.stop()


async def test_server_writes_wake_the_watcher_and_events_coalesce(
    server: ServerProcess, database_url: str
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    async with watch_stream(server, "alice", "dev-a") as stream:
        await _write(database_url, "alice")
        first = await stream.next_event()
        assert first == {"bundle_seq": 1, "source_id": "server:test", "source_bundle_id": 1}
        await _write(database_url, "alice", count=3)
        seen = [(await stream.next_event())["bundle_seq"]]
        while seen[-1] < 4:
            seen.append((await stream.next_event())["bundle_seq"])
        assert seen == sorted(set(seen)) and seen[-1] == 4  # increasing, maybe coalesced


async def test_catch_up_event_on_subscribe(server: ServerProcess, database_url: str) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    await _write(database_url, "alice", count=2)
    async with watch_stream(server, "alice", "dev-a", after=0) as stream:
        assert await stream.next_event() == {"bundle_seq": 2}  # catch-up: bundle_seq only
    async with watch_stream(server, "alice", "dev-a", after=2) as stream:
        # up to date: nothing until the next commit
        await _write(database_url, "alice")
        assert await stream.next_event() == {
            "bundle_seq": 3,
            "source_id": "server:test",
            "source_bundle_id": 3,
        }


async def test_heartbeats(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, watch_heartbeat_seconds=0.2)
    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
        async with watch_stream(server, "alice", "dev-a") as stream:
            for _ in range(2):
                assert await stream.next_frame(timeout=5) == ("comment", "heartbeat")
    finally:
        server.stop()


async def test_watch_disabled_is_503(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, bundle_change_watch=False)
    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
            response = watch_bundles.sync_detailed(client=client, oversync_source_id="dev-a")
        expect_error(response, 503, "bundle_change_watch_disabled")
    finally:
        server.stop()


async def test_watch_needs_an_initialized_scope_and_a_valid_cursor(server: ServerProcess) -> None:
    with server.client("nobody") as client:
        response = watch_bundles.sync_detailed(client=client, oversync_source_id="dev-a")
        expect_error(response, 409, "scope_uninitialized")
        attach(client, "dev-a")
        bad = client.get_httpx_client().get(
            "/sync/watch",
            params={"after_bundle_seq": -1},
            headers={"Oversync-Source-ID": "dev-a"},
        )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"


async def test_subscribers_are_counted_and_released_on_disconnect(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path, dev=True)

    def count() -> int:
        answer = httpx.get(f"{server.base_url}/test/watch-subscribers", params={"user_id": "alice"})
        assert answer.status_code == 200
        assert answer.json()["process_local_only"] is True
        value: int = answer.json()["subscriber_count"]
        return value

    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
        assert count() == 0
        async with watch_stream(server, "alice", "dev-a"), watch_stream(server, "alice", "dev-b"):
            assert count() == 2
        for _ in range(100):  # the server notices the disconnect asynchronously
            if count() == 0:
                break
            await asyncio.sleep(0.05)
        assert count() == 0
    finally:
        server.stop()


async def test_the_listener_reconnects_after_losing_its_connection(
    server: ServerProcess, database_url: str, pg_pool: asyncpg.Pool
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    find = "SELECT pid FROM pg_stat_activity WHERE application_name = $1"
    async with watch_stream(server, "alice", "dev-a") as stream:
        async with pg_pool.acquire() as conn:
            (old_pid,) = [row["pid"] for row in await conn.fetch(find, LISTENER_APPLICATION_NAME)]
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", old_pid)
        await _write(database_url, "alice")  # while (or just after) the listener is down
        event = await stream.next_event(timeout=15)
        assert event["bundle_seq"] == 1  # by NOTIFY or by the reconnect catch-up
        async with pg_pool.acquire() as conn:
            pids = [row["pid"] for row in await conn.fetch(find, LISTENER_APPLICATION_NAME)]
        assert len(pids) == 1 and pids != [old_pid]


async def test_catch_up_after_a_listener_outage(server: ServerProcess, database_url: str) -> None:
    """In-process: a commit made while no listener runs is published when it reconnects."""
    with server.client("alice") as client:
        attach(client, "dev-a")
    hub = BundleHub()
    listener = BundleChangeListener(hub, database_url)
    await listener.start()
    async with started_runtime(database_url) as runtime:
        async with runtime.pool.acquire() as conn:
            user_pk = await conn.fetchval("SELECT user_pk FROM sync.user_state")
        subscription = hub.subscribe(user_pk, "alice", after=0)
        await exec_write(runtime, "alice", writer_id="w", fn=_insert)
        assert await subscription.next_event(10) == BundleEvent(1, "w", 1)
        await listener.stop()
        await exec_write(runtime, "alice", writer_id="w", fn=_insert)
        assert await subscription.next_event(0.3) is None  # nobody listening
        await listener.start()
        assert listener.connections == 2
        assert await subscription.next_event(10) == BundleEvent(2)  # catch-up: bundle_seq only
        await listener.stop()


# ------------------------------------------------- bounds: caps, token expiry, shutdown, policy


def test_the_hub_caps_streams_per_user_and_per_process() -> None:
    hub = BundleHub()
    first = hub.subscribe(1, "alice", 0, per_user=2, per_process=3)
    hub.subscribe(1, "alice", 0, per_user=2, per_process=3)
    with pytest.raises(SyncError) as refused:
        hub.subscribe(1, "alice", 0, per_user=2, per_process=3)
    assert refused.value.code == "too_many_watch_streams"
    hub.subscribe(2, "bob", 0, per_user=2, per_process=3)
    with pytest.raises(SyncError, match="this server has 3 open watch streams"):
        hub.subscribe(2, "bob", 0, per_user=2, per_process=3)
    hub.unsubscribe(first)
    hub.unsubscribe(first)  # idempotent: counted once
    assert (hub.stream_count, hub.subscriber_count("alice")) == (2, 1)
    hub.subscribe(2, "bob", 0, per_user=2, per_process=3)
    assert hub.subscriber_count("bob") == 2
    unlimited = BundleHub()
    for _ in range(50):
        unlimited.subscribe(1, "alice", 0)
    assert unlimited.stream_count == 50


def _watch_headers(token: str, source: str = "dev") -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Oversync-Source-ID": source}


async def test_watch_streams_are_capped_per_user_and_per_process(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(
        database_url, tmp_path, max_watch_streams_per_user=2, max_watch_streams_per_process=3
    )
    try:
        for user in ("alice", "bob"):
            with server.client(user) as client:
                attach(client, "dev")
        async with contextlib.AsyncExitStack() as streams:
            first = await streams.enter_async_context(watch_stream(server, "alice", "d1"))
            await streams.enter_async_context(watch_stream(server, "alice", "d2"))
            async with httpx.AsyncClient(base_url=server.base_url, timeout=10) as http:
                refused = await http.get(
                    "/sync/watch", headers=_watch_headers(server.token("alice"), "d3")
                )
                assert refused.status_code == 429, refused.text
                assert refused.json()["error"] == "too_many_watch_streams"
                assert refused.headers["retry-after"] == "1"
                await streams.enter_async_context(watch_stream(server, "bob", "d1"))
                over = await http.get("/sync/watch", headers=_watch_headers(server.token("bob")))
                assert over.status_code == 429 and "this server" in over.json()["message"]
            await first.response.aclose()  # one of alice's ends: she may open another
            deadline = asyncio.get_running_loop().time() + 10
            while True:
                try:
                    async with watch_stream(server, "alice", "d4"):
                        break
                except AssertionError:
                    if asyncio.get_running_loop().time() > deadline:
                        raise
                    await asyncio.sleep(0.1)
    finally:
        server.stop()


async def test_a_stream_ends_when_its_token_expires(server: ServerProcess) -> None:
    with server.client("alice") as client:
        attach(client, "dev")
    token = sign_token(JWT_SECRET, "alice", lifetime_seconds=2)
    started = asyncio.get_running_loop().time()
    async with (
        httpx.AsyncClient(base_url=server.base_url, timeout=10) as http,
        http.stream("GET", "/sync/watch", headers=_watch_headers(token)) as response,
    ):
        assert response.status_code == 200
        async for _ in response.aiter_bytes():
            pass  # the server ends the stream
    lasted = asyncio.get_running_loop().time() - started
    assert 0.5 < lasted < 6, lasted
    assert "Traceback" not in server.log()


@contextlib.asynccontextmanager
async def _in_process_server(
    database_url: str, **overrides: Any
) -> AsyncIterator[tuple[str, SyncRuntime]]:
    """The app served by uvicorn inside this event loop (for hooks a subprocess cannot take)."""
    import uvicorn

    from oversync_server.app import create_application
    from oversync_server.auth import JWTAuthenticator
    from oversync_server.config import load_config
    from oversync_server.localpg import free_port
    from protocol_helpers import EXAMPLE_CONFIG

    config = load_config(EXAMPLE_CONFIG).with_changes(**overrides)
    runtime = SyncRuntime(config=config, database_url=database_url)
    app = create_application(runtime, JWTAuthenticator(JWT_SECRET))
    port = free_port()
    uvicorn_server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    task = asyncio.create_task(uvicorn_server.serve())
    try:
        while not uvicorn_server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}", runtime
    finally:
        uvicorn_server.should_exit = True
        await asyncio.wait_for(task, 30)


async def test_beginning_a_shutdown_ends_every_stream_at_once(
    server: ServerProcess, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with server.client("alice") as client:  # (the subprocess created the schema)
        attach(client, "dev")
    headers = _watch_headers(server.token("alice"))
    async with _in_process_server(database_url) as (base_url, runtime):
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=10) as http,
            http.stream("GET", "/sync/watch", headers=headers) as one,
            http.stream("GET", "/sync/watch", headers=headers) as two,
        ):
            assert (one.status_code, two.status_code) == (200, 200)
            assert bundle_watch(runtime).subscriber_count("alice") == 2
            caplog.clear()
            runtime.begin_shutdown()
            ended = asyncio.gather(*(_drain(stream) for stream in (one, two)))
            await asyncio.wait_for(ended, 2)  # at once, not after a grace period
            refused = await http.get("/sync/watch", headers=headers)
            assert refused.status_code == 503
            assert refused.json()["error"] == "service_unavailable"
        assert bundle_watch(runtime).subscriber_count("alice") == 0
    errors = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert not errors, [record.getMessage() for record in errors]


async def _drain(response: httpx.Response) -> None:
    async for _ in response.aiter_bytes():
        pass


async def test_the_watch_policy_refuses_an_actor_and_hides_the_feature(
    server: ServerProcess, database_url: str
) -> None:
    for user in ("alice", "mallory"):
        with server.client(user) as client:
            attach(client, "dev")
    async with _in_process_server(database_url) as (base_url, runtime):
        runtime.watch_policy = lambda actor: actor.user_id != "mallory"
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            for user, allowed in (("alice", True), ("mallory", False)):
                headers = _watch_headers(server.token(user))
                capabilities = await http.get("/sync/capabilities", headers=headers)
                assert capabilities.json()["features"]["bundle_change_watch"] is allowed
                if allowed:
                    async with http.stream("GET", "/sync/watch", headers=headers) as stream:
                        assert stream.status_code == 200
                    continue
                refused = await http.get("/sync/watch", headers=headers)
                assert refused.status_code == 403
                assert refused.json() == {
                    "error": "bundle_change_watch_forbidden",
                    "message": "Bundle change watch is not enabled for this client",
                }


async def test_sigterm_ends_open_streams_at_once_without_an_error_log(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    try:
        with server.client("alice") as client:
            attach(client, "dev")
        async with watch_stream(server, "alice", "dev") as stream:
            assert server.process is not None
            started = asyncio.get_running_loop().time()
            server.process.terminate()
            with pytest.raises(EOFError):
                while True:
                    await stream.next_frame(timeout=10)
            ended_in = asyncio.get_running_loop().time() - started
        assert await asyncio.to_thread(server.process.wait, 30) == 0
        assert ended_in < 2, ended_in
        log = server.log()
        assert "ERROR" not in log and "Traceback" not in log, log
    finally:
        server.stop()
