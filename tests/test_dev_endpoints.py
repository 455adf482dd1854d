"""The reference example's dev/test endpoints (protocol.md §15.3, §15.4): on with `serve --dev`,
absent by default."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from oversync_client import AuthenticatedClient
from oversync_server.auth import verify_token
from protocol_helpers import attach, expect_error, pull_page, seed_bundle, start_server, user_row
from serverproc import JWT_SECRET, ServerProcess

DEV_PATHS = [
    ("POST", "/dummy-signin"),
    ("POST", "/test/reset"),
    ("POST", "/test/retention-floor"),
    ("GET", "/test/watch-subscribers"),
]


@pytest.fixture
def dev_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(database_url, tmp_path, dev=True)
    try:
        yield process
    finally:
        process.stop()


def post(
    server: ServerProcess, path: str, body: object = None, raw: bytes | None = None
) -> httpx.Response:
    if raw is not None:
        return httpx.post(server.base_url + path, content=raw)
    return httpx.post(server.base_url + path, json=body)


@pytest.mark.parametrize(("method", "path"), DEV_PATHS)
def test_dev_endpoints_are_off_by_default(server: ServerProcess, method: str, path: str) -> None:
    response = httpx.request(method, server.base_url + path, json={})
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


def test_dummy_signin(dev_server: ServerProcess) -> None:
    response = post(dev_server, "/dummy-signin", {"user": " demo-user ", "password": "anything"})
    assert response.status_code == 200
    body = response.json()
    assert body["expires_in"] == 300 and body["user"] == " demo-user "  # echoed untrimmed
    claims = verify_token(JWT_SECRET, body["token"])
    assert claims["sub"] == "demo-user" and claims["exp"] - claims["iat"] == 300
    with AuthenticatedClient(base_url=dev_server.base_url, token=body["token"]) as client:
        assert attach(client, "dev-a").resolution == "initialize_empty"

    for request, message in (
        ({"password": "x"}, "user required"),
        ({"user": "   "}, "user required"),
        (b"{not json", "invalid JSON"),
        ([], "invalid JSON"),
    ):
        bad = (
            post(dev_server, "/dummy-signin", raw=request)
            if isinstance(request, bytes)
            else post(dev_server, "/dummy-signin", request)
        )
        assert bad.status_code == 400
        assert bad.json() == {"error": "invalid_request", "message": message}


async def test_retention_floor(dev_server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        for _ in range(3):
            await seed_bundle(conn, "alice", "dev-a", [user_row()])
    ok = post(dev_server, "/test/retention-floor", {"user_id": "alice", "retained_bundle_floor": 2})
    assert ok.status_code == 200
    assert ok.json() == {"retained_bundle_floor": 2, "status": "ok", "user_id": "alice"}
    floor = await pg_pool.fetchval(
        "SELECT retained_bundle_floor FROM sync.user_state WHERE user_id = 'alice'"
    )
    assert floor == 2
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.bundle_log") == 3  # moved, not pruned
    with dev_server.client("alice") as client:
        expect_error(pull_page(client, "dev-a", after=1), 409, "history_pruned")

    for body, status, code, message in (
        ({"user_id": "bob", "retained_bundle_floor": 0}, 404, "user_state_not_found", None),
        ({"retained_bundle_floor": 1}, 400, "invalid_request", "user_id required"),
        ({"user_id": "alice", "retained_bundle_floor": -1}, 400, "invalid_request", None),
        ({"user_id": "alice", "retained_bundle_floor": "2"}, 400, "invalid_request", None),
        ({"user_id": "alice", "retained_bundle_floor": 4}, 400, "invalid_request", None),
    ):
        response = post(dev_server, "/test/retention-floor", body)
        assert response.status_code == status, body
        assert response.json()["error"] == code
        if message:
            assert response.json()["message"] == message
    bad = post(dev_server, "/test/retention-floor", raw=b"nope")
    assert bad.status_code == 400 and bad.json()["message"] == "invalid JSON"


def test_watch_subscribers(dev_server: ServerProcess) -> None:
    response = httpx.get(f"{dev_server.base_url}/test/watch-subscribers", params={"user_id": "u"})
    assert response.status_code == 200
    assert response.json() == {"process_local_only": True, "subscriber_count": 0, "user_id": "u"}
    missing = httpx.get(f"{dev_server.base_url}/test/watch-subscribers")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"


async def test_reset_empties_everything(dev_server: ServerProcess, pg_pool: asyncpg.Pool) -> None:
    async with pg_pool.acquire() as conn:
        await seed_bundle(conn, "alice", "dev-a", [user_row()])
        # A business row written behind the triggers' back (they refuse writes outside bundles).
        await conn.execute("SET session_replication_role = replica")
        await conn.execute(
            "INSERT INTO business.users (_sync_scope_id, id, name, email)"
            " VALUES ('alice', gen_random_uuid(), 'x', 'y')"
        )
        await conn.execute("RESET session_replication_role")
    response = post(dev_server, "/test/reset")
    assert response.status_code == 200
    assert response.json() == {"schema": "business", "status": "ok"}
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.user_state") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.bundle_log") == 0
    assert await pg_pool.fetchval("SELECT count(*) FROM sync.table_catalog") == 8
    assert await pg_pool.fetchval("SELECT count(*) FROM business.users") == 0
    with dev_server.client("alice") as client:
        expect_error(pull_page(client, "dev-a"), 409, "scope_uninitialized")
        assert attach(client, "dev-a").resolution == "initialize_empty"  # usable again
    status = httpx.get(f"{dev_server.base_url}/syncx/status").json()
    assert status["committed_bundle_count"] == 0 and status["status"] == "healthy"
