"""Server-originated writes (server.md §10): exec_write / within_sync_bundle against a real
database, with devices of a real server process pulling the result."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest

from oversync_client.models import ConnectResponse
from oversync_server.engine.scope import Connection
from oversync_server.server_writes import (
    ScopeWriteInvalidError,
    ScopeWriteNoCapturedChangesError,
    ServerWriteRejectedError,
    exec_write,
    within_sync_bundle,
)
from protocol_helpers import attach, connect_source, parsed, pull_to_stable, started_runtime
from serverproc import ServerProcess


def insert_user(key: uuid.UUID, name: str = "Ada") -> Callable[[Connection], Awaitable[uuid.UUID]]:
    """A server-write callback inserting one business.users row."""

    async def write(conn: Connection) -> uuid.UUID:
        await conn.execute(
            "INSERT INTO business.users (id, name, email) VALUES ($1, $2, $3)",
            key,
            name,
            f"{name}@example.com",
        )
        return key

    return write


async def test_a_server_write_is_an_ordinary_bundle_devices_pull(
    server: ServerProcess, database_url: str
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    key = uuid.uuid4()
    async with started_runtime(database_url) as runtime:
        result = await exec_write(runtime, "alice", writer_id="server:admin", fn=insert_user(key))
    assert result.auto_initialized is False
    assert result.value == key
    bundle = result.bundle
    assert (bundle.bundle_seq, bundle.source_id, bundle.source_bundle_id) == (1, "server:admin", 1)
    assert bundle.row_count == 1

    with server.client("alice") as client:
        stable, bundles = pull_to_stable(client, "dev-a")
    assert stable == 1 and len(bundles) == 1
    pulled = bundles[0]
    assert (pulled.source_id, pulled.source_bundle_id) == ("server:admin", 1)
    assert pulled.bundle_hash == bundle.bundle_hash
    row = pulled.rows[0].to_dict()
    assert row["op"] == "INSERT"
    assert row["key"] == {"id": str(key)} and row["payload"]["name"] == "Ada"
    assert "_sync_scope_id" not in row["payload"]


async def test_writer_ids_are_sequenced_per_scope_and_auto_initialize(
    server: ServerProcess, database_url: str
) -> None:
    async with started_runtime(database_url) as runtime:
        first = await exec_write(runtime, "bob", writer_id="w", fn=insert_user(uuid.uuid4()))
        second = await exec_write(runtime, "bob", writer_id="w", fn=insert_user(uuid.uuid4()))
        other_scope = await exec_write(
            runtime, "carol", writer_id="w", fn=insert_user(uuid.uuid4())
        )
    assert first.auto_initialized is True and second.auto_initialized is False
    assert [first.bundle.source_bundle_id, second.bundle.source_bundle_id] == [1, 2]
    assert [first.bundle.bundle_seq, second.bundle.bundle_seq] == [1, 2]
    assert other_scope.bundle.source_bundle_id == 1 and other_scope.auto_initialized
    # the scope is INITIALIZED by the writer: a device can no longer seed it
    with server.client("bob") as client:
        answer = parsed(connect_source(client, "dev-b", pending=True), ConnectResponse)
    assert answer.resolution == "remote_authoritative"


async def test_a_write_that_captures_nothing_is_refused_and_rolled_back(
    server: ServerProcess, database_url: str, pg_pool: asyncpg.Pool
) -> None:
    key = uuid.uuid4()

    async def insert_then_delete(conn: Connection) -> None:
        await insert_user(key)(conn)
        await conn.execute("DELETE FROM business.users WHERE id = $1", key)

    async def nothing(conn: Connection) -> None:
        await conn.execute("SELECT 1")

    async with started_runtime(database_url) as runtime:
        for callback in (nothing, insert_then_delete):
            with pytest.raises(ScopeWriteNoCapturedChangesError) as caught:
                await exec_write(runtime, "dave", writer_id="w", fn=callback)
            assert (caught.value.scope_id, caught.value.writer_id) == ("dave", "w")
    async with pg_pool.acquire() as conn:
        # the auto-initialization rolled back with it: no user row at all
        assert await conn.fetchval("SELECT count(*) FROM sync.user_state") == 0


async def test_a_client_source_and_a_writer_share_one_sequence(
    server: ServerProcess, database_url: str
) -> None:
    with server.client("erin") as client:
        attach(client, "shared-id")
    async with started_runtime(database_url) as runtime:
        done = await within_sync_bundle(
            runtime, "erin", source_id="shared-id", source_bundle_id=1, fn=insert_user(uuid.uuid4())
        )
        assert done is not None and done.source_bundle_id == 1
        later = await exec_write(
            runtime, "erin", writer_id="shared-id", fn=insert_user(uuid.uuid4())
        )
        assert later.bundle.source_bundle_id == 2


async def test_within_sync_bundle_rules(server: ServerProcess, database_url: str) -> None:
    async with started_runtime(database_url) as runtime:
        with pytest.raises(ServerWriteRejectedError) as caught:
            await within_sync_bundle(
                runtime, "frank", source_id="s", source_bundle_id=1, fn=insert_user(uuid.uuid4())
            )
        assert caught.value.code == "scope_uninitialized"
        with server.client("frank") as client:
            attach(client, "dev")
        with pytest.raises(ServerWriteRejectedError) as caught:
            await within_sync_bundle(
                runtime, "frank", source_id="s", source_bundle_id=2, fn=insert_user(uuid.uuid4())
            )
        assert caught.value.code == "source_sequence_out_of_order"

        async def unregistered_only(conn: Connection) -> None:
            await conn.execute("CREATE TABLE IF NOT EXISTS public.audit (note text)")
            await conn.execute("INSERT INTO public.audit VALUES ('kept')")

        # nothing captured: no bundle, the transaction still commits, the id is not consumed
        assert (
            await within_sync_bundle(
                runtime, "frank", source_id="s", source_bundle_id=1, fn=unregistered_only
            )
            is None
        )
        bundle = await within_sync_bundle(
            runtime, "frank", source_id="s", source_bundle_id=1, fn=insert_user(uuid.uuid4())
        )
        assert bundle is not None and bundle.source_bundle_id == 1
        with pytest.raises(ServerWriteRejectedError) as caught:
            await within_sync_bundle(
                runtime, "frank", source_id="s", source_bundle_id=1, fn=insert_user(uuid.uuid4())
            )
        assert caught.value.code == "history_pruned"
        async with runtime.pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM public.audit") == 1


async def test_invalid_arguments(server: ServerProcess, database_url: str) -> None:
    async with started_runtime(database_url) as runtime:
        with pytest.raises(ScopeWriteInvalidError):
            await exec_write(runtime, " ", writer_id="w", fn=insert_user(uuid.uuid4()))
        with pytest.raises(ScopeWriteInvalidError):
            await exec_write(runtime, "u", writer_id="", fn=insert_user(uuid.uuid4()))
        with pytest.raises(ScopeWriteInvalidError):
            await within_sync_bundle(
                runtime, "u", source_id="s", source_bundle_id=0, fn=insert_user(uuid.uuid4())
            )


async def test_a_failing_callback_rolls_everything_back(
    server: ServerProcess, database_url: str, pg_pool: asyncpg.Pool
) -> None:
    async def boom(conn: Connection) -> None:
        await insert_user(uuid.uuid4())(conn)
        raise LookupError("callback failed")

    async with started_runtime(database_url) as runtime:
        with pytest.raises(LookupError):
            await exec_write(runtime, "gina", writer_id="w", fn=boom)
    async with pg_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM business.users") == 0
        assert await conn.fetchval("SELECT count(*) FROM sync.bundle_log") == 0


async def test_concurrent_writes_to_one_scope_serialise(
    server: ServerProcess, database_url: str
) -> None:
    async with started_runtime(database_url) as runtime:
        results = await asyncio.gather(
            *(
                exec_write(runtime, "hank", writer_id="w", fn=insert_user(uuid.uuid4()))
                for _ in range(5)
            )
        )
    assert sorted(r.bundle.source_bundle_id for r in results) == [1, 2, 3, 4, 5]
    assert sorted(r.bundle.bundle_seq for r in results) == [1, 2, 3, 4, 5]
