"""The sync API mounted into an existing FastAPI application with its own auth (issue 13).

The host application (written to a file and run by plain uvicorn, as a host would run it) has
its own sessions and auth dependency; the sync app, mounted at `/api`, authenticates with an
`Authenticator` over the same session lookup, and starts with the host's lifespan.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import asyncpg
import httpx

from oversync_server.localpg import free_port
from protocol_helpers import EXAMPLE_CONFIG
from serverproc import REPO_ROOT

HOST_APP = '''
"""A host application: its own sign-in sessions and auth dependency, the sync API at /api."""
import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import Depends, FastAPI, Header, HTTPException

from oversync_server.app import create_application
from oversync_server.auth import Principal
from oversync_server.config import load_config
from oversync_server.engine.errors import authentication_failed
from oversync_server.runtime import SyncRuntime

SESSIONS = {"session-of-alice": "alice", "session-of-bob": "bob"}  # the host's own store


async def user_of_session(token: str) -> str | None:
    return SESSIONS.get(token)


async def current_user(authorization: str = Header("")) -> str:
    """The host's auth dependency for its own routes."""
    user = await user_of_session(authorization.removeprefix("Bearer "))
    if user is None:
        raise HTTPException(status_code=401, detail="sign in first")
    return user


class HostSessions:
    """The same sessions as an oversync `Authenticator`."""

    async def authenticate(self, token: str) -> Principal:
        user = await user_of_session(token)
        if user is None:
            raise authentication_failed("unknown session")
        return Principal(user_id=user)


runtime = SyncRuntime(
    config=load_config(Path(os.environ["SYNC_CONFIG"])), database_url=os.environ["DATABASE_URL"]
)
sync_app = create_application(runtime, HostSessions())


@asynccontextmanager
async def lifespan(_: FastAPI):
    async with sync_app.router.lifespan_context(sync_app):  # a mounted app's start and stop
        yield


app = FastAPI(lifespan=lifespan)


@app.get("/me")
async def me(user: str = Depends(current_user)) -> dict[str, str]:
    return {"user": user}


app.mount("/api", sync_app)
'''


async def test_sync_api_mounted_in_a_host_app(database_url: str, tmp_path: Path) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute((EXAMPLE_CONFIG.parent / "schema.sql").read_text())
    finally:
        await connection.close()
    (tmp_path / "host_app.py").write_text(HOST_APP, encoding="utf-8")
    port = free_port()
    log_path = tmp_path / "host.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SYNC_CONFIG": str(EXAMPLE_CONFIG),
        "PYTHONPATH": str(tmp_path),
    }
    command = [sys.executable, "-m", "uvicorn", "host_app:app", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO_ROOT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/api/syncx/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)

        def sync(path: str, session: str, **body: object) -> httpx.Response:
            headers = {"Authorization": f"Bearer {session}", "Oversync-Source-ID": "phone"}
            return httpx.post(f"{url}/api/sync/{path}", json=body, headers=headers, timeout=15)

        # the host's own route and auth dependency
        me = httpx.get(f"{url}/me", headers={"Authorization": "Bearer session-of-bob"})
        assert me.status_code == 200 and me.json() == {"user": "bob"}
        assert httpx.get(f"{url}/me").status_code == 401
        # the sync API under /api, authenticated by the host's sessions
        connected = sync("connect", "session-of-alice", has_local_pending_rows=False)
        assert connected.status_code == 200, connected.text
        assert connected.json() == {"resolution": "initialize_empty"}
        refused = sync("connect", "session-of-mallory", has_local_pending_rows=False)
        assert refused.status_code == 401
        assert refused.json() == {"error": "authentication_failed", "message": "unknown session"}
        pull = httpx.get(
            f"{url}/api/sync/pull",
            headers={"Authorization": "Bearer session-of-alice", "Oversync-Source-ID": "phone"},
            timeout=15,
        )
        assert pull.status_code == 200 and pull.json()["bundles"] == []
        assert pull.headers["x-request-id"]
        # a push with a chunk beyond the 64 KiB of small requests: the chunk limit applies
        created = sync(
            "push-sessions", "session-of-alice", source_bundle_id=1, planned_row_count=200
        )
        push_id = created.json()["push_id"]
        rows = [
            {
                "schema": "business",
                "table": "users",
                "key": {"id": str(uuid.uuid4())},
                "op": "INSERT",
                "base_row_version": 0,
                "payload": {"name": "n" * 400, "email": f"u{number}@example.com"},
            }
            for number in range(200)
        ]
        for row in rows:
            row["payload"]["id"] = row["key"]["id"]  # type: ignore[index]
        uploaded = sync(
            f"push-sessions/{push_id}/chunks", "session-of-alice", start_row_ordinal=0, rows=rows
        )
        assert uploaded.status_code == 200, uploaded.text
        assert int(uploaded.request.headers["content-length"]) > 64 * 1024
        committed = sync(f"push-sessions/{push_id}/commit", "session-of-alice")
        assert committed.status_code == 200 and committed.json()["row_count"] == 200
        metrics = httpx.get(f"{url}/api/metrics", timeout=15)
        assert 'oversync_requests_total{operation="connect",status="200"} 1.0' in metrics.text
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log_path.read_text()
    assert "sync schema created" in output  # the sync app started with the host
    assert "POST /api/sync/connect 401" in output and "operation=connect" in output
    assert "error=authentication_failed: unknown session" in output
