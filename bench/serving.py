"""The processes a benchmark drives: a PostgreSQL, fresh databases, and real server processes.

A server is always `python -m oversync_server.cli serve` in a subprocess, started from a source
tree: this work tree, or an older revision materialised beside it (bench/revision.py). The
tree's own folders go first on PYTHONPATH, so the same virtualenv runs either version's code.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from oversync_server.localpg import (
    LocalPostgres,
    create_database_async,
    drop_database_async,
    free_port,
    make_tempdir,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "oversync-bench-secret"
# the folders an editable install puts on sys.path (pyproject.toml [tool.hatch.build])
SOURCE_DIRS = (
    "common",
    "generated",
    "generated/oversync_client",
    "server",
    "client",
    "conformance",
)


@dataclass(frozen=True)
class Cluster:
    """The PostgreSQL a run uses: an admin DSN (CREATEDB) and, when this run started it, the
    postmaster's pid (its process tree is then only ours, so its CPU time can be read)."""

    dsn: str
    postmaster_pid: int | None


@contextmanager
def cluster(given: str | None) -> Iterator[Cluster]:
    """`given` (an admin DSN), or a throwaway local cluster started for this run."""
    if given:
        yield Cluster(given, None)
        return
    root = make_tempdir("oversync-bench-pg-")
    try:
        with LocalPostgres(root / "pgdata", ephemeral=True) as local:
            pid_file = (root / "pgdata" / "postmaster.pid").read_text().split()
            yield Cluster(local.dsn, int(pid_file[0]) if pid_file else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def admin_dsn(given: str | None) -> Iterator[str]:
    """The admin DSN alone (bench.bounds needs no CPU readings of the database)."""
    with cluster(given) as found:
        yield found.dsn


@contextmanager
def database(admin: str) -> Iterator[str]:
    """A fresh database on the admin DSN's server, dropped WITH (FORCE) afterwards."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    dsn = asyncio.run(create_database_async(admin, name))
    try:
        yield dsn
    finally:
        asyncio.run(drop_database_async(admin, name, force=True))


@dataclass(frozen=True)
class Served:
    """A running server: its base URL and process id (for /proc readings)."""

    base: str
    pid: int


def pythonpath(tree: Path) -> str:
    return os.pathsep.join(str(tree / folder) for folder in SOURCE_DIRS)


def _ready(base: str) -> bool:
    for path in ("/syncx/health", "/openapi.json"):
        try:
            if httpx.get(base + path, timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            return False
    return False


@contextmanager
def server(
    dsn: str,
    log_dir: Path,
    *,
    tree: Path = REPO_ROOT,
    args: Sequence[str] = (),
    name: str = "server",
    start_timeout: float = 90.0,
) -> Iterator[Served]:
    """`oversync-server serve --example-schema` of `tree` on `dsn`, on a free local port."""
    port = free_port()
    log_path = log_dir / f"{name}.log"
    command = [
        sys.executable,
        "-m",
        "oversync_server.cli",
        "serve",
        "--database-url",
        dsn,
        "--port",
        str(port),
        "--example-schema",
        "--log-level",
        "warning",
        *args,
    ]
    env = {**os.environ, "OVERSYNC_JWT_SECRET": SECRET, "PYTHONPATH": pythonpath(tree)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tree)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + start_timeout
        while not _ready(base):
            if process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited:\n{log_path.read_text(errors='replace')[-3000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start in {start_timeout:.0f} s")
            time.sleep(0.05)
        yield Served(base, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
