"""Fixtures for the SDK tests: real SQLite files with the example business schema's mirror.

``backend`` runs a scenario twice: against an in-memory protocol fake and against a real
``oversync-server serve --dev`` process on a fresh PostgreSQL database.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_server import FakeServer
from sdk_helpers import Backend, FakeBackend, ServerBackend, business_db

from serverproc import ServerProcess


@pytest.fixture
def fake() -> FakeServer:
    return FakeServer()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return business_db(tmp_path / "device.db")


@pytest.fixture
def dev_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A real server with the example schema and the dev endpoints (/test/retention-floor)."""
    process = ServerProcess(database_url, extra_args=("--dev",)).start(tmp_path)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(params=["fake", "server"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    chosen: Backend
    if request.param == "fake":
        chosen = FakeBackend(tmp_path)
    else:
        chosen = ServerBackend(tmp_path, request.getfixturevalue("dev_server"))
    try:
        yield chosen
    finally:
        chosen.close()


@pytest.fixture
def server_backend(tmp_path: Path, dev_server: ServerProcess) -> Iterator[Backend]:
    """Only the real server (for tests that need a separate process or real PostgreSQL)."""
    chosen = ServerBackend(tmp_path, dev_server)
    try:
        yield chosen
    finally:
        chosen.close()
