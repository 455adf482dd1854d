"""Tests of oversync_server.localpg and of the database fixtures in conftest.py."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import shutil
import socket
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from oversync_server.localpg import (
    LocalPostgres,
    LocalPostgresError,
    database_dsn,
    find_pg_bindir,
    free_port,
    make_tempdir,
)

_seen_databases: set[str] = set()


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A temp dir the server user can use (pytest's tmp_path is 0700 under root)."""
    root = make_tempdir("oversync-test-")
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("round_", [1, 2])
async def test_each_test_gets_a_fresh_database(pg_pool: asyncpg.Pool, round_: int) -> None:
    async with pg_pool.acquire() as conn:
        name = await conn.fetchval("SELECT current_database()")
        assert name.startswith("t_")
        assert name not in _seen_databases
        _seen_databases.add(name)
        tables = await conn.fetchval(
            "SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog',"
            " 'information_schema')"
        )
        assert tables == 0
        await conn.execute("CREATE TABLE marker (round int)")  # would leak if DBs were shared
        await conn.execute("INSERT INTO marker VALUES ($1)", round_)
        assert await conn.fetchval("SHOW server_encoding") == "UTF8"


async def test_database_is_dropped_after_the_test(pg_pool: asyncpg.Pool) -> None:
    assert len(_seen_databases) == 2, "run together with test_each_test_gets_a_fresh_database"
    rows = await pg_pool.fetch(  # pg_database is shared: visible from any database
        "SELECT datname FROM pg_database WHERE datname = any($1::text[])",
        sorted(_seen_databases),
    )
    assert rows == []


async def test_bigint_extremes_round_trip(pg_pool: asyncpg.Pool) -> None:
    big, small = 2**63 - 1, -(2**63)
    async with pg_pool.acquire() as conn:
        await conn.execute("CREATE TABLE t (id bigint PRIMARY KEY)")
        await conn.executemany("INSERT INTO t VALUES ($1)", [(big,), (small,)])
        assert await conn.fetchval("SELECT $1::bigint", big) == big
        assert [r["id"] for r in await conn.fetch("SELECT id FROM t ORDER BY id")] == [small, big]
        with pytest.raises(asyncpg.DataError):
            await conn.fetchval("SELECT $1::bigint", big + 1)


def test_persistent_cluster_keeps_data_across_restarts(scratch: Path) -> None:
    data_dir = scratch / "nested" / "pgdata"  # missing parents are created
    pg = LocalPostgres(data_dir, ephemeral=False)
    with pg:
        assert pg.started_here
        dsn = pg.create_database("keep", exist_ok=True)
        assert dsn == database_dsn(pg.dsn, "keep")
        _sql(dsn, "CREATE TABLE kept (v bigint); INSERT INTO kept VALUES (9223372036854775807)")
        assert pg.create_database("keep", exist_ok=True) == dsn

        # a second instance adopts the running server and does not stop it
        other = LocalPostgres(data_dir, ephemeral=False).start()
        assert (other.port, other.started_here) == (pg.port, False)
        other.stop()
        assert _sql(pg.dsn_for("keep"), "SELECT v FROM kept") == 2**63 - 1
    assert not pg.running
    assert not (data_dir / "postmaster.pid").exists()

    port = free_port()
    with LocalPostgres(data_dir, port, ephemeral=False) as again:
        assert again.started_here and again.port == port
        assert _sql(again.dsn_for("keep"), "SELECT v FROM kept") == 2**63 - 1
        again.drop_database("keep")
        with pytest.raises(asyncpg.InvalidCatalogNameError):
            _sql(again.dsn_for("keep"), "SELECT 1")


def test_missing_bindir_is_reported(scratch: Path) -> None:
    pg = LocalPostgres(scratch / "pgdata", ephemeral=True, bindir=scratch / "no-such-bin")
    with pytest.raises(LocalPostgresError, match=r"no-such-bin is not usable: missing initdb"):
        pg.start()
    assert not pg.running


def test_broken_binaries_are_reported(scratch: Path) -> None:
    bindir = scratch / "bin"
    bindir.mkdir()
    for name in ("initdb", "pg_ctl", "postgres"):
        exe = bindir / name
        exe.write_text(
            "#!/bin/sh\necho 'error while loading shared libraries: libpq.so' >&2\nexit 127\n"
        )
        exe.chmod(0o755)
    pg = LocalPostgres(scratch / "pgdata", ephemeral=True, bindir=bindir)
    with pytest.raises(LocalPostgresError, match=r"(?s)postgres --version failed.*libpq\.so"):
        pg.start()


def test_pg_bin_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PG_BIN", "/opt/custom/pg/bin")
    assert find_pg_bindir() == Path("/opt/custom/pg/bin")
    monkeypatch.delenv("PG_BIN")
    found = find_pg_bindir()
    assert found is not None and (found / "initdb").is_file()


def test_a_busy_port_is_refused_with_a_clear_error(scratch: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        pg = LocalPostgres(scratch / "pgdata", taken, ephemeral=True)
        with pytest.raises(LocalPostgresError) as info:
            pg.start()
    assert f"port {taken} on 127.0.0.1 is in use by another program" in str(info.value)
    assert not pg.running


def test_start_failure_shows_the_server_log(scratch: Path) -> None:
    pg = LocalPostgres(scratch / "pgdata", ephemeral=True)
    pg.start()
    pg.stop()
    with (scratch / "pgdata" / "postgresql.conf").open("a") as conf:
        conf.write("\nno_such_setting = 1\n")
    with pytest.raises(LocalPostgresError) as info:
        pg.start()
    message = str(info.value)
    assert f"starting PostgreSQL in {scratch / 'pgdata'} on port" in message
    assert "--- tail of" in message and "no_such_setting" in message
    assert not pg.running


@pytest.mark.skipif(os.geteuid() != 0, reason="the server user matters only as root")
def test_unreachable_data_dir_is_reported() -> None:
    private = Path(tempfile.mkdtemp(prefix="oversync-private-"))  # 0700, owned by root
    try:
        assert stat.S_IMODE(private.stat().st_mode) == 0o700
        with pytest.raises(LocalPostgresError, match=r"cannot reach data dir .* not traversable"):
            LocalPostgres(private / "pgdata", ephemeral=True).start()
    finally:
        shutil.rmtree(private)


def _sql(dsn: str, query: str) -> object:
    """Run ``query`` in a short event loop in a worker thread; return the first value."""

    async def run() -> object:
        conn = await asyncpg.connect(dsn)
        try:
            if ";" in query:
                await conn.execute(query)
                return None
            return await conn.fetchval(query)
        finally:
            await conn.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()
