"""storage/scope.py on a real database: the user lock, row creation and the scope gates that
push (create/chunk/commit) and the read paths call."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import pytest_asyncio

from oversync_server.engine import scope as scopes
from oversync_server.engine.ddl import SCHEMA_DDL
from oversync_server.engine.errors import SyncError
from oversync_server.engine.scope import ScopeCode
from oversync_server.errors import http_status

TTL = timedelta(minutes=15)


@pytest_asyncio.fixture
async def pool(pg_pool: asyncpg.Pool) -> AsyncIterator[asyncpg.Pool]:
    """The test database with the sync schema (no business tables needed here)."""
    await pg_pool.execute(SCHEMA_DDL)
    yield pg_pool


async def initializing(
    pool: asyncpg.Pool, user: str, source: str, *, at: datetime | None = None
) -> scopes.Scope:
    async with pool.acquire() as conn, conn.transaction():
        scope = await scopes.lock_scope(conn, user, at=at)
        return await scopes.begin_initialization(
            conn, scope, source_id=source, lease_ttl=TTL, at=at
        )


def code_of(error: pytest.ExceptionInfo[SyncError]) -> tuple[int, str, str]:
    return http_status(error.value), error.value.code, error.value.message


async def test_lock_scope_creates_rows_that_roll_back_with_the_request(pool: asyncpg.Pool) -> None:
    with pytest.raises(RuntimeError):
        async with pool.acquire() as conn, conn.transaction():
            scope = await scopes.lock_scope(conn, "alice")
            assert scope.state is ScopeCode.UNINITIALIZED and scope.next_bundle_seq == 1
            raise RuntimeError("the request fails")
    assert await pool.fetchval("SELECT count(*) FROM sync.user_state") == 0

    async with pool.acquire() as conn, conn.transaction():
        created = await scopes.lock_scope(conn, "alice")
    async with pool.acquire() as conn, conn.transaction():
        again = await scopes.lock_scope(conn, "alice")
    assert again.user_pk == created.user_pk
    assert await pool.fetchval("SELECT count(*) FROM sync.scope_state") == 1


async def test_lock_scope_adds_a_missing_scope_row(pool: asyncpg.Pool) -> None:
    await pool.execute("INSERT INTO sync.user_state (user_id) VALUES ('alice')")
    async with pool.acquire() as conn, conn.transaction():
        scope = await scopes.lock_scope(conn, "alice")
    assert scope.state is ScopeCode.UNINITIALIZED
    assert await pool.fetchval("SELECT state_code FROM sync.scope_state") == 0


async def test_user_lock_serialises_one_user_only(pool: asyncpg.Pool) -> None:
    order: list[str] = []

    async def hold(user: str, name: str, seconds: float) -> None:
        async with scopes.user_lock(pool, user):
            order.append(f"{name}+")
            await asyncio.sleep(seconds)
            order.append(f"{name}-")

    first = asyncio.create_task(hold("alice", "a1", 0.3))
    await asyncio.sleep(0.1)
    await asyncio.gather(hold("alice", "a2", 0), hold("bob", "b", 0), first)
    assert order.index("b+") < order.index("a1-")  # another user is not blocked
    assert order.index("a2+") > order.index("a1-")  # the same user waits
    held = await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    assert held == 0


async def test_user_lock_is_released_when_the_operation_fails(pool: asyncpg.Pool) -> None:
    with pytest.raises(ValueError):
        async with scopes.user_lock(pool, "alice"):
            raise ValueError("boom")
    assert await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") == 0
    key = await pool.fetchval("SELECT hashtextextended('alice', 0)")
    async with pool.acquire() as other:  # the Go key: another session can take it at once
        assert await other.fetchval("SELECT pg_try_advisory_lock($1)", key)
        await other.execute("SELECT pg_advisory_unlock($1)", key)


async def test_admit_push_create(pool: asyncpg.Pool) -> None:
    async def admit(user: str, source: str, init_id: str | None) -> bool:
        async with pool.acquire() as conn, conn.transaction():
            scope = await scopes.lock_scope(conn, user)
            return await scopes.admit_push_create(
                conn, scope, source_id=source, initialization_id=init_id, lease_ttl=TTL
            )

    with pytest.raises(SyncError) as error:
        await admit("alice", "dev-a", None)
    assert code_of(error) == (
        409,
        "scope_uninitialized",
        "sync scope for user alice is not initialized",
    )
    with pytest.raises(SyncError) as error:
        await admit("alice", "dev-a", str(uuid.uuid4()))
    assert code_of(error) == (
        410,
        "initialization_expired",
        "initialization lease is no longer active",
    )

    started = await initializing(
        pool, "alice", "dev-a", at=datetime.now(UTC) - timedelta(minutes=1)
    )
    init_id = str(started.initialization_id)
    for source, sent, expected in (
        ("dev-a", None, (400, "push_session_invalid")),
        ("dev-a", "  ", (400, "push_session_invalid")),
        ("dev-b", init_id, (409, "initialization_stale")),
        ("dev-a", str(uuid.uuid4()), (409, "initialization_stale")),
        ("dev-a", "not-a-uuid", (409, "initialization_stale")),
    ):
        with pytest.raises(SyncError) as error:
            await admit("alice", source, sent)
        assert code_of(error)[:2] == expected, (source, sent)
    assert await admit("alice", "dev-a", f" {init_id} ") is True
    lease = await pool.fetchval("SELECT lease_expires_at FROM sync.scope_state")
    assert started.lease_expires_at is not None and lease > started.lease_expires_at  # refreshed

    async with pool.acquire() as conn, conn.transaction():
        await scopes.mark_initialized(conn, started.user_pk, source_id="dev-a")
    assert await admit("alice", "dev-b", None) is False
    with pytest.raises(SyncError) as error:
        await admit("alice", "dev-a", init_id)
    assert code_of(error) == (
        400,
        "push_session_invalid",
        "initialization_id must be absent once the scope is initialized",
    )


async def test_admit_push_create_with_an_expired_lease(pool: asyncpg.Pool) -> None:
    started = await initializing(pool, "alice", "dev-a", at=datetime.now(UTC) - TTL * 2)
    async with pool.acquire() as conn, conn.transaction():
        scope = await scopes.lock_scope(conn, "alice")
        assert scope.state is ScopeCode.UNINITIALIZED
        with pytest.raises(SyncError) as error:
            await scopes.admit_push_create(
                conn,
                scope,
                source_id="dev-a",
                initialization_id=str(started.initialization_id),
                lease_ttl=TTL,
            )
    assert error.value.code == "initialization_expired"


async def test_require_active_lease(pool: asyncpg.Pool) -> None:
    started = await initializing(pool, "alice", "dev-a")
    init_id = started.initialization_id
    assert init_id is not None

    async def check(source: str, sent: str | uuid.UUID) -> scopes.Scope:
        async with pool.acquire() as conn, conn.transaction():
            return await scopes.require_active_lease(
                conn, "alice", source_id=source, initialization_id=sent, lease_ttl=TTL
            )

    refreshed = await check("dev-a", init_id)  # a UUID (from the session row) or its text
    assert refreshed.lease_expires_at is not None and started.lease_expires_at is not None
    assert refreshed.lease_expires_at >= started.lease_expires_at
    await check("dev-a", str(init_id))
    for source, sent, message in (
        ("dev-b", init_id, "source does not own the active initialization lease"),
        ("dev-a", uuid.uuid4(), "initialization_id does not match the active initialization lease"),
    ):
        with pytest.raises(SyncError) as error:
            await check(source, sent)
        assert code_of(error) == (409, "initialization_stale", message)

    # An expired lease: stale ("no longer initializing"), as the reference answers at chunk/commit.
    await pool.execute("UPDATE sync.scope_state SET lease_expires_at = now() - interval '1 second'")
    with pytest.raises(SyncError) as error:
        await check("dev-a", init_id)
    assert code_of(error) == (409, "initialization_stale", "scope is no longer initializing")

    async with pool.acquire() as conn, conn.transaction():  # the seeding commit's transition
        await scopes.mark_initialized(conn, started.user_pk, source_id="dev-a")
    with pytest.raises(SyncError) as error:
        await check("dev-a", init_id)
    assert code_of(error) == (409, "initialization_stale", "scope is no longer initializing")


async def test_require_initialized(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        with pytest.raises(SyncError) as error:
            await scopes.require_initialized(conn, "nobody")
        assert code_of(error)[:2] == (409, "scope_uninitialized")

        started = await initializing(pool, "alice", "dev-a")
        with pytest.raises(SyncError) as error:
            await scopes.require_initialized(conn, "alice")
        assert started.lease_expires_at is not None
        assert code_of(error)[:2] == (409, "scope_initializing")
        assert error.value.message.startswith("sync scope for user alice is initializing until ")
        assert error.value.message.endswith("Z")

        later = started.lease_expires_at + timedelta(seconds=1)
        with pytest.raises(SyncError) as error:
            await scopes.require_initialized(conn, "alice", at=later)
        assert code_of(error)[:2] == (409, "scope_uninitialized")

        async with conn.transaction():
            await scopes.mark_initialized(conn, started.user_pk, source_id="dev-a")
        scope = await scopes.require_initialized(conn, "alice")
        assert scope.state is ScopeCode.INITIALIZED and scope.initialized_by_source_id == "dev-a"
        assert (scope.next_bundle_seq, scope.retained_bundle_floor) == (1, 0)
