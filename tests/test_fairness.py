"""One user cannot starve the others (issue 9, item 3), end to end on a real server process.

Writers of one user are serialised by a per-process queue in front of the pool and then a
PostgreSQL try-lock with back-off, so a user's waiting writers hold no pool connection; every
bounded wait (user lock, pool acquire, lock_timeout, statement_timeout) answers a retryable 503.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import httpx
import pytest

from oversync_server.engine import scope as scopes
from oversync_server.engine.errors import SyncError
from oversync_server.engine.pool import create_pool
from protocol_helpers import attach, push_rows, start_server
from push_support import staging, upload, user_insert
from serverproc import ServerProcess

BIG_COMMIT_ROWS = 20_000
WAITERS = 12


def _headers(server: ServerProcess, user: str, source: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user)}", "Oversync-Source-ID": source}


def _stage_big_push(server: ServerProcess, user: str, source: str, rows: int) -> str:
    """A staged push session of `rows` user inserts (not committed yet); its push_id."""
    with server.client(user) as client:
        attach(client, source)
        push_id = staging(client, source, 1, rows)
        for start in range(0, rows, 5000):
            batch = [user_insert(name=f"u{start + i}") for i in range(min(5000, rows - start))]
            upload(client, source, push_id, start, batch)
    return push_id


async def test_one_users_waiters_do_not_starve_another_users_pull(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    try:
        push_id = _stage_big_push(server, "xavier", "x-dev", BIG_COMMIT_ROWS)
        with server.client("yvonne") as client:
            attach(client, "y-dev")
            push_rows(client, "y-dev", 1, [user_insert()])
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=120.0, limits=limits
        ) as http:
            await http.get("/syncx/health")
            began = time.monotonic()
            commit = asyncio.create_task(
                http.post(
                    f"/sync/push-sessions/{push_id}/commit",
                    headers=_headers(server, "xavier", "x-dev"),
                )
            )
            await asyncio.sleep(0.3)  # the commit holds xavier's lock
            waiters = [
                asyncio.create_task(
                    http.post(
                        "/sync/connect",
                        json={"has_local_pending_rows": False},
                        headers=_headers(server, "xavier", f"x-dev-{n}"),
                    )
                )
                for n in range(WAITERS)
            ]
            await asyncio.sleep(0.5)  # every waiter is queued behind the commit
            commit_running = not commit.done()
            started = time.monotonic()
            pulled = await http.get(
                "/sync/pull",
                params={"after_bundle_seq": 0},
                headers=_headers(server, "yvonne", "y-dev"),
            )
            latency = time.monotonic() - started
            pulled_during_commit = not commit.done()
            committed = await commit
            commit_seconds = time.monotonic() - began
            answers = await asyncio.gather(*waiters)
        print(
            f"\nother user's pull under {WAITERS} waiters + a {BIG_COMMIT_ROWS}-row commit:"
            f" {latency * 1000:.0f} ms (the commit took {commit_seconds:.2f} s)"
        )
        assert commit_running, "the commit ended before the pull: the test proves nothing"
        assert pulled.status_code == 200, pulled.text
        assert pulled.json()["bundles"][0]["rows"][0]["table"] == "users"
        assert committed.status_code == 200, committed.text
        assert [answer.status_code for answer in answers] == [200] * WAITERS
        # the pull was answered while xavier's commit still held his lock: not queued behind it
        # (an order of events, not a timing bound, so a loaded machine does not fail it)
        assert pulled_during_commit, f"the pull waited for the commit ({latency:.2f} s)"
    finally:
        server.stop()


def _connect(server: ServerProcess, user: str, source: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/sync/connect",
        json={"has_local_pending_rows": False},
        headers=_headers(server, user, source),
        timeout=30.0,
    )


def _assert_unavailable(response: httpx.Response, words: str) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["error"] == "service_unavailable", body
    assert words in body["message"], body


async def test_a_waiter_past_the_user_lock_timeout_gets_a_retryable_503(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path, user_lock_timeout_seconds=1)
    try:
        with server.client("xavier") as client:
            attach(client, "x-dev")
        # Another server process (or a Go server) holds xavier's lock: same key expression.
        holder = await asyncpg.connect(database_url)
        try:
            key = await holder.fetchval("SELECT hashtextextended('xavier', 0)")
            await holder.execute("SELECT pg_advisory_lock($1)", key)
            started = time.monotonic()
            # One waiter polls the try-lock, the others queue in the process behind it.
            answers = await asyncio.gather(
                *(asyncio.to_thread(_connect, server, "xavier", f"x-{n}") for n in range(3))
            )
            waited = time.monotonic() - started
            with server.client("yvonne") as client:  # another user is not affected
                attach(client, "y-dev")
        finally:
            await holder.close()  # the lock dies with the session
        for answer in answers:
            _assert_unavailable(answer, "user_lock_timeout_seconds")
        assert waited < 5, waited
        assert _connect(server, "xavier", "x-dev").status_code == 200  # free again
    finally:
        server.stop()


async def _lock_user_state(database_url: str) -> asyncpg.Connection:
    """A session holding ACCESS EXCLUSIVE on sync.user_state: every sync request blocks on it."""
    holder = await asyncpg.connect(database_url)
    await holder.execute("BEGIN; LOCK TABLE sync.user_state IN ACCESS EXCLUSIVE MODE")
    return holder


def _pull(server: ServerProcess, user: str) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}/sync/pull",
        params={"after_bundle_seq": 0},
        headers=_headers(server, user, "dev"),
        timeout=30.0,
    )


async def test_pool_acquire_and_lock_timeouts_answer_503(database_url: str, tmp_path: Path) -> None:
    server = start_server(
        database_url,
        tmp_path,
        pool_min_size=1,
        pool_max_size=1,
        pool_acquire_timeout_seconds=0.5,
        lock_timeout_seconds=2,
    )
    try:
        with server.client("yvonne") as client:
            attach(client, "dev")
        holder = await _lock_user_state(database_url)
        try:
            blocked = asyncio.create_task(asyncio.to_thread(_pull, server, "yvonne"))
            await asyncio.sleep(0.5)  # it holds the only pooled connection, waiting on the lock
            started = time.monotonic()
            starved = await asyncio.to_thread(_pull, server, "zoe")
            refused_in = time.monotonic() - started
            timed_out = await blocked
        finally:
            await holder.close()
        _assert_unavailable(starved, "pool_acquire_timeout_seconds")
        assert refused_in < 2, refused_in
        _assert_unavailable(timed_out, "retry")  # lock_timeout (55P03)
        assert _pull(server, "yvonne").status_code == 200
        log = server.log()
        assert "Traceback" not in log, log
    finally:
        server.stop()


async def test_statement_timeout_answers_503(database_url: str, tmp_path: Path) -> None:
    server = start_server(
        database_url, tmp_path, lock_timeout_seconds=0, statement_timeout_seconds=1
    )
    try:
        with server.client("yvonne") as client:
            attach(client, "dev")
        holder = await _lock_user_state(database_url)
        try:
            started = time.monotonic()
            answer = await asyncio.to_thread(_pull, server, "yvonne")
            waited = time.monotonic() - started
        finally:
            await holder.close()
        _assert_unavailable(answer, "retry")  # statement_timeout (57014)
        assert waited < 5, waited
    finally:
        server.stop()


async def test_waiting_writers_hold_no_pool_connection(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2, user_lock_timeout=10)
    try:
        order: list[int] = []

        async def writer(number: int) -> None:
            async with scopes.user_lock(pool, "xavier") as conn:
                order.append(number)
                await conn.execute("SELECT pg_sleep(0.05)")

        writers = [asyncio.create_task(writer(n)) for n in range(8)]
        await asyncio.sleep(0.02)
        # Eight writers of one user and a pool of two: a reader still gets a connection.
        async with pool.acquire(timeout=1) as conn:
            assert await conn.fetchval("SELECT 1") == 1
        await asyncio.gather(*writers)
        assert order == list(range(8))  # FIFO in the process
        assert len(pool.user_turns) == 0  # idle entries are dropped
        locks = await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
        assert locks == 0
    finally:
        await pool.close()


async def test_the_user_lock_timeout_covers_the_wait_in_the_process(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=2, user_lock_timeout=0.3)
    try:
        async with scopes.user_lock(pool, "xavier"):
            with pytest.raises(SyncError) as refused:
                async with scopes.user_lock(pool, "xavier"):
                    pass
            assert refused.value.code == "service_unavailable"
            async with scopes.user_lock(pool, "yvonne"):  # other users are not blocked
                pass
        assert len(pool.user_turns) == 0

        async def operation_timeout() -> None:
            async with scopes.user_lock(pool, "xavier"):
                raise TimeoutError("the operation's own timeout")

        with pytest.raises(TimeoutError, match="own timeout"):  # not turned into a 503
            await operation_timeout()
    finally:
        await pool.close()


async def test_pool_acquire_timeout_is_a_503(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, acquire_timeout=0.2)
    try:
        async with pool.acquire():
            with pytest.raises(SyncError) as refused:
                async with pool.acquire():
                    pass
            assert refused.value.code == "service_unavailable"
            with pytest.raises(SyncError):
                await pool.acquire()  # the await form too
            with pytest.raises(SyncError):
                await pool.fetchval("SELECT 1")  # and the pool's shortcuts
        settings = await pool.fetchrow(
            "SELECT current_setting('lock_timeout') AS lock,"
            " current_setting('statement_timeout') AS statement,"
            " current_setting('idle_in_transaction_session_timeout') AS idle"
        )
        assert tuple(settings) == ("10s", "5min", "1min")
    finally:
        await pool.close()
