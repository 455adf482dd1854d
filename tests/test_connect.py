"""POST /sync/connect against a real server: every resolution, leases, and the read-path gates."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from oversync_client.api.lifecycle import connect
from oversync_client.models import ConnectRequest, ConnectResolution, ConnectResponse
from protocol_helpers import attach, connect_source, expect_error, pull_page, start_server
from serverproc import ServerProcess

RFC3339_NANO_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d*[1-9])?Z$")


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def raw_connect(server: ServerProcess, user: str, source: str, pending: bool) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/sync/connect",
        json={"has_local_pending_rows": pending},
        headers={"Authorization": f"Bearer {server.token(user)}", "Oversync-Source-ID": source},
    )


@pytest.fixture
def short_lease_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose initialization leases last one second."""
    process = start_server(database_url, tmp_path, initialization_lease_ttl_seconds=1)
    try:
        yield process
    finally:
        process.stop()


async def scope_row(pool: asyncpg.Pool, user: str) -> asyncpg.Record | None:
    return await pool.fetchrow(
        "SELECT s.* FROM sync.scope_state s JOIN sync.user_state u USING (user_pk)"
        " WHERE u.user_id = $1",
        user,
    )


async def test_first_connect_without_pending_rows_initializes_empty(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    response = raw_connect(server, "alice", "dev-a", pending=False)
    assert response.status_code == 200
    assert response.json() == {"resolution": "initialize_empty"}  # nothing else, as Go omits
    row = await scope_row(pg_pool, "alice")
    assert row is not None and row["state_code"] == 2
    assert row["initialized_by_source_id"] == "dev-a" and row["initialized_at"] is not None

    # Every later connect, from any source and with or without local rows, adopts the remote.
    for source, pending in (("dev-b", True), ("dev-a", False), ("dev-c", False)):
        later = raw_connect(server, "alice", source, pending=pending)
        assert later.json() == {"resolution": "remote_authoritative"}
    with server.client("alice") as client:  # an initialized scope pulls
        assert pull_page(client, "dev-b").status_code == 200


async def test_initialize_local_then_retry_later_for_others(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    before = datetime.now(UTC)
    first = raw_connect(server, "alice", "dev-a", pending=True).json()
    assert first["resolution"] == "initialize_local"
    assert set(first) == {"resolution", "initialization_id", "lease_expires_at"}
    assert str(uuid.UUID(first["initialization_id"])) == first["initialization_id"]
    assert RFC3339_NANO_UTC.match(first["lease_expires_at"]), first["lease_expires_at"]
    lease = parse_time(first["lease_expires_at"])
    assert before + timedelta(seconds=899) <= lease <= datetime.now(UTC) + timedelta(seconds=900)

    row = await scope_row(pg_pool, "alice")
    assert row is not None and row["state_code"] == 1
    assert row["initializer_source_id"] == "dev-a"
    assert str(row["initialization_id"]) == first["initialization_id"]
    assert row["lease_expires_at"] == lease

    for pending in (True, False):  # another source waits, whatever it holds
        other = raw_connect(server, "alice", "dev-b", pending=pending).json()
        assert set(other) == {"resolution", "lease_expires_at", "retry_after_seconds"}
        assert other["resolution"] == "retry_later"
        assert other["lease_expires_at"] == first["lease_expires_at"]
        assert 890 <= other["retry_after_seconds"] <= 900

    # The scope blocks reads for everyone while it initializes, the initializer included.
    with server.client("alice") as client:
        for source in ("dev-a", "dev-b"):
            error = expect_error(pull_page(client, source), 409, "scope_initializing")
            assert error.message == (
                f"sync scope for user alice is initializing until {first['lease_expires_at']}"
            )


async def test_same_source_reconnect_reuses_the_initialization(
    server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    first = raw_connect(server, "alice", "dev-a", pending=True).json()
    time.sleep(0.01)
    again = raw_connect(server, "alice", "dev-a", pending=True).json()
    assert again["resolution"] == "initialize_local"
    assert again["initialization_id"] == first["initialization_id"]
    assert parse_time(again["lease_expires_at"]) > parse_time(first["lease_expires_at"])

    # Reconnecting without local rows abandons the seeding and starts empty.
    assert raw_connect(server, "alice", "dev-a", pending=False).json() == {
        "resolution": "initialize_empty"
    }
    row = await scope_row(pg_pool, "alice")
    assert row is not None and row["state_code"] == 2 and row["initialization_id"] is None
    assert row["initialized_by_source_id"] == "dev-a"


def test_typed_client_parses_every_resolution(server: ServerProcess) -> None:
    with server.client("carol") as client:
        local = attach(client, "dev-a", pending=True)
        assert local.resolution == ConnectResolution.INITIALIZE_LOCAL
        assert isinstance(local.initialization_id, str)
        later = attach(client, "dev-b")
        assert later.resolution == ConnectResolution.RETRY_LATER
        assert isinstance(later.retry_after_seconds, int) and later.retry_after_seconds >= 1
        assert later.lease_expires_at == local.lease_expires_at
        empty = attach(client, "dev-a")
        assert empty.resolution == ConnectResolution.INITIALIZE_EMPTY
        remote = attach(client, "dev-b")
        assert remote.resolution == ConnectResolution.REMOTE_AUTHORITATIVE


async def test_concurrent_first_connects_elect_one_initializer(server: ServerProcess) -> None:
    async def one(source: str) -> ConnectResponse:
        async with server.client("dave") as client:
            response = await connect.asyncio_detailed(
                client=client,
                oversync_source_id=source,
                body=ConnectRequest(has_local_pending_rows=True),
            )
        assert isinstance(response.parsed, ConnectResponse)
        return response.parsed

    answers = await asyncio.gather(*(one(f"dev-{n}") for n in range(6)))
    resolutions = sorted(answer.resolution.value for answer in answers)
    assert resolutions == ["initialize_local"] + ["retry_later"] * 5


def test_users_are_isolated(server: ServerProcess) -> None:
    with server.client("alice") as alice, server.client("bob") as bob:
        assert attach(alice, "dev-a", pending=True).resolution == "initialize_local"
        # bob's scope is his own: alice's lease neither blocks nor initializes it
        expect_error(pull_page(bob, "dev-a"), 409, "scope_uninitialized")
        assert attach(bob, "dev-a", pending=True).resolution == "initialize_local"
        assert attach(bob, "dev-b").resolution == "retry_later"
        assert attach(bob, "dev-b").resolution == "retry_later"
        assert attach(alice, "dev-a").resolution == "initialize_empty"
        expect_error(pull_page(bob, "dev-a"), 409, "scope_initializing")
        assert pull_page(alice, "dev-z").status_code == 200


def test_pull_before_any_connect_is_scope_uninitialized(server: ServerProcess) -> None:
    with server.client("erin") as client:
        error = expect_error(pull_page(client, "dev-a"), 409, "scope_uninitialized")
    assert error.message == "sync scope for user erin is not initialized"


async def test_an_expired_lease_frees_the_scope(
    short_lease_server: ServerProcess, pg_pool: asyncpg.Pool
) -> None:
    server = short_lease_server
    first = raw_connect(server, "alice", "dev-a", pending=True).json()
    assert first["resolution"] == "initialize_local"
    later = raw_connect(server, "alice", "dev-b", pending=True).json()
    assert later["resolution"] == "retry_later" and later["retry_after_seconds"] == 1

    await asyncio.sleep(1.1)
    with server.client("alice") as client:  # the expired lease reads as uninitialized
        expect_error(pull_page(client, "dev-a"), 409, "scope_uninitialized")
    row = await scope_row(pg_pool, "alice")  # reads never write the expiry back
    assert row is not None and row["state_code"] == 1

    # Another source now wins a fresh initialization.
    second = raw_connect(server, "alice", "dev-b", pending=True).json()
    assert second["resolution"] == "initialize_local"
    assert second["initialization_id"] != first["initialization_id"]
    row = await scope_row(pg_pool, "alice")
    assert row is not None and row["initializer_source_id"] == "dev-b"

    # After that one expires too, the first source without rows makes the scope empty.
    await asyncio.sleep(1.1)
    assert raw_connect(server, "alice", "dev-a", pending=False).json() == {
        "resolution": "initialize_empty"
    }
    row = await scope_row(pg_pool, "alice")
    assert row is not None and row["state_code"] == 2 and row["initializer_source_id"] is None


def test_connect_needs_a_source_and_a_json_body(server: ServerProcess) -> None:
    headers = {"Authorization": f"Bearer {server.token('alice')}"}
    missing = httpx.post(f"{server.base_url}/sync/connect", json={}, headers=headers)
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    with server.client("alice") as client:
        response = connect_source(client, "dev-a")
        assert response.status_code == 200  # `{}` is a valid body (has_local_pending_rows=false)
    bad = httpx.post(
        f"{server.base_url}/sync/connect",
        json={"has_local_pending_rows": "yes"},
        headers={**headers, "Oversync-Source-ID": "dev-a"},
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
