"""Fixtures for the SDK tests: real SQLite files with the example business schema's mirror.

Every scenario runs against a real ``oversync-server serve --dev`` process. One process (and
its PostgreSQL database) is shared by the tests of a module; ``/test/reset`` empties it before
each test, so every test starts from a fresh server.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sdk_helpers import Backend, ServerBackend, business_db

from oversync_server.localpg import create_database_async, drop_database_async
from serverproc import ServerProcess


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return business_db(tmp_path / "device.db")


@pytest.fixture(scope="module")
def shared_server(
    pg_cluster: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A real server with the example schema and the dev endpoints, for one test module."""
    name = f"t_{uuid.uuid4().hex}"
    dsn = asyncio.run(create_database_async(pg_cluster, name))
    process = ServerProcess(dsn, extra_args=("--dev",)).start(tmp_path_factory.mktemp("server"))
    try:
        yield process
    finally:
        process.stop()
        asyncio.run(drop_database_async(pg_cluster, name, force=True))


@pytest.fixture
def dev_server(shared_server: ServerProcess) -> ServerProcess:
    """The module's server, emptied (``/test/reset``: business tables and ``sync`` state)."""
    answer = httpx.post(f"{shared_server.base_url}/test/reset", timeout=60)
    assert answer.status_code == 200, answer.text
    return shared_server


@pytest.fixture
def backend(tmp_path: Path, dev_server: ServerProcess) -> Iterator[Backend]:
    chosen = ServerBackend(tmp_path, dev_server)
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture
def server_backend(backend: Backend) -> Backend:
    """Kept for tests that need the real server by name (every backend is the real one now)."""
    return backend
