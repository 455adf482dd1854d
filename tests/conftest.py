"""Shared fixtures: one PostgreSQL server per test session, one fresh database per test.

The server is a throwaway local cluster (see ``oversync_server.localpg``) unless
``TEST_DATABASE_URL`` is set, e.g. ``postgresql://postgres@127.0.0.1:5432/postgres``: then
that server is used, and its role needs CREATEDB (the URL's database is only used to
create and drop the per-test databases).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from oversync_server.localpg import (
    LocalPostgres,
    create_database_async,
    drop_database_async,
    make_tempdir,
)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[str]:
    """Admin DSN (superuser, maintenance database) of the session's PostgreSQL server."""
    if url := os.environ.get("TEST_DATABASE_URL"):
        yield url
        return
    root = make_tempdir("oversync-test-pg-")
    try:
        with LocalPostgres(root / "pgdata", ephemeral=True) as pg:
            yield pg.dsn
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest_asyncio.fixture
async def database_url(pg_cluster: str) -> AsyncIterator[str]:
    """DSN of a fresh, empty database ``t_<hex>``, dropped WITH (FORCE) after the test."""
    name = f"t_{uuid.uuid4().hex}"
    dsn = await create_database_async(pg_cluster, name)
    try:
        yield dsn
    finally:
        await drop_database_async(pg_cluster, name, force=True)


@pytest_asyncio.fixture
async def pg_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on the test's fresh database."""
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=4)
    try:
        yield pool
    finally:
        await pool.close()


# ---------------------------------------------------------------- a real server process
from serverproc import ServerProcess  # noqa: E402  (a test helper module beside this file)


@pytest.fixture
def server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """`oversync-server serve` with the example schema on the test's fresh database."""
    process = ServerProcess(database_url).start(tmp_path)
    try:
        yield process
    finally:
        process.stop()
