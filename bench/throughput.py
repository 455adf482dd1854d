"""Push and pull throughput of a real `oversync-server serve` process over HTTP.

    python -m bench [--sizes 1,100,5000] [--seconds 3] [--admin-dsn URL]

For each bundle size N the benchmark measures, in rows per second:

* push: one full client push as the Go client does it (protocol.md §11.7): create the session,
  upload the rows in chunks of 1000, commit, then re-download the committed rows (the client
  replays the authoritative bundle); `commit` is the same without the re-download;
* pull: a second device pulling all those bundles from its checkpoint 0 (`GET /sync/pull`);

and beside them, in the same run and on the same PostgreSQL, a baseline that moves the same rows
with raw asyncpg and no sync at all: a batched insert (`INSERT ... SELECT FROM unnest(...)`, one
statement per bundle) and one select of as many rows as a full pull returned. The figures worth comparing across machines
are the ratios (server / baseline); absolute numbers depend on the machine.

Without `--admin-dsn` (or `TEST_DATABASE_URL`), a throwaway local PostgreSQL cluster is started.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from oversync_server.auth import sign_token
from oversync_server.localpg import (
    LocalPostgres,
    create_database_async,
    drop_database_async,
    free_port,
    make_tempdir,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "oversync-bench-secret"
CHUNK_ROWS = 1000


@dataclass
class Result:
    size: int
    push: float
    commit: float
    pull: float
    insert_baseline: float
    select_baseline: float


# ------------------------------------------------------------------------------ environment


@contextmanager
def admin_dsn(given: str | None) -> Iterator[str]:
    if given:
        yield given
        return
    root = make_tempdir("oversync-bench-pg-")
    try:
        with LocalPostgres(root / "pgdata", ephemeral=True) as cluster:
            yield cluster.dsn
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def database(admin: str) -> Iterator[str]:
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


@contextmanager
def server(dsn: str, log_dir: Path) -> Iterator[Served]:
    port = free_port()
    log = (log_dir / "server.log").open("wb")
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
    ]
    env = {**os.environ, "OVERSYNC_JWT_SECRET": SECRET}
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=REPO_ROOT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise RuntimeError((log_dir / "server.log").read_text(errors="replace")[-3000:])
            try:
                if httpx.get(f"{base}/openapi.json", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start")
            time.sleep(0.05)
        yield Served(base, process.pid)
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


# ------------------------------------------------------------------------------ the client


class Device:
    """A minimal protocol client: one user, one source, sequential bundles."""

    def __init__(self, base: str, user: str, source: str) -> None:
        self.http = httpx.Client(
            base_url=base,
            headers={
                "Authorization": f"Bearer {sign_token(SECRET, user)}",
                "Oversync-Source-ID": source,
            },
            timeout=120,
        )
        self.next_bundle = 1

    def call(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def connect(self) -> None:
        self.call("POST", "/sync/connect", json={"has_local_pending_rows": False})

    def push(self, rows: list[dict[str, Any]], *, replay: bool) -> None:
        created = self.call(
            "POST",
            "/sync/push-sessions",
            json={"source_bundle_id": self.next_bundle, "planned_row_count": len(rows)},
        )
        push_id = created["push_id"]
        for start in range(0, len(rows), CHUNK_ROWS):
            self.call(
                "POST",
                f"/sync/push-sessions/{push_id}/chunks",
                json={"start_row_ordinal": start, "rows": rows[start : start + CHUNK_ROWS]},
            )
        commit = self.call("POST", f"/sync/push-sessions/{push_id}/commit")
        self.next_bundle += 1
        if replay:
            after: int | None = None
            while True:
                params = {
                    "max_rows": 1000,
                    **({} if after is None else {"after_row_ordinal": after}),
                }
                page = self.call(
                    "GET", f"/sync/committed-bundles/{commit['bundle_seq']}/rows", params=params
                )
                if not page["has_more"]:
                    break
                after = page["next_row_ordinal"]

    def pull_all(self) -> int:
        rows, after, target = 0, 0, 0
        while True:
            params = {"after_bundle_seq": after, "max_bundles": 1000, "target_bundle_seq": target}
            page = self.call("GET", "/sync/pull", params=params)
            target = page["stable_bundle_seq"]
            for bundle in page["bundles"]:
                rows += len(bundle["rows"])
                after = bundle["bundle_seq"]
            if not page["has_more"]:
                return rows


def user_rows(count: int) -> list[dict[str, Any]]:
    rows = []
    for index in range(count):
        key = str(uuid.uuid4())
        rows.append(
            {
                "schema": "business",
                "table": "users",
                "key": {"id": key},
                "op": "INSERT",
                "base_row_version": 0,
                "payload": {
                    "id": key,
                    "name": f"user {index}",
                    "email": f"user{index}@example.com",
                },
            }
        )
    return rows


# ------------------------------------------------------------------------------ measurements


def timed(budget: float, minimum: int, step: Callable[[], int]) -> float:
    """Rows per second of `step` (which returns its row count), repeated for `budget` seconds."""
    rows, started = 0, time.perf_counter()
    runs = 0
    while runs < minimum or time.perf_counter() - started < budget:
        rows += step()
        runs += 1
    return rows / (time.perf_counter() - started)


BASELINE_TABLE = """
CREATE TABLE IF NOT EXISTS public.baseline_users (
    _sync_scope_id TEXT NOT NULL, id UUID NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    created_at TIMESTAMPTZ DEFAULT now(), updated_at TIMESTAMPTZ DEFAULT now(),
    PRIMARY KEY (_sync_scope_id, id)
)
"""

BASELINE_INSERT = """
INSERT INTO public.baseline_users (_sync_scope_id, id, name, email)
SELECT $1, * FROM unnest($2::uuid[], $3::text[], $4::text[])
"""


async def baseline(dsn: str, size: int, budget: float, pulled_rows: int) -> tuple[float, float]:
    """Raw asyncpg on the same database: rows/s of one batched insert per bundle of `size`
    rows, and of reading back `pulled_rows` rows (what one full pull returned) in one query."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(BASELINE_TABLE)
        scope = f"baseline-{size}"

        async def insert(count: int) -> None:
            ids = [uuid.uuid4() for _ in range(count)]
            names = [f"user {i}" for i in range(count)]
            emails = [f"user{i}@example.com" for i in range(count)]
            async with conn.transaction():
                await conn.execute(BASELINE_INSERT, scope, ids, names, emails)

        inserted, started, runs = 0, time.perf_counter(), 0
        while runs < 3 or time.perf_counter() - started < budget:
            await insert(size)
            inserted += size
            runs += 1
        insert_rate = inserted / (time.perf_counter() - started)
        if inserted < pulled_rows:
            await insert(pulled_rows - inserted)
        selected, started, runs = 0, time.perf_counter(), 0
        while runs < 3 or time.perf_counter() - started < budget:
            rows = await conn.fetch(
                "SELECT to_jsonb(b) - '_sync_scope_id' FROM public.baseline_users b"
                " WHERE _sync_scope_id = $1 LIMIT $2",
                scope,
                pulled_rows,
            )
            selected += len(rows)
            runs += 1
        return insert_rate, selected / (time.perf_counter() - started)
    finally:
        await conn.close()


def measure(base: str, dsn: str, size: int, budget: float) -> Result:
    writer = Device(base, f"bench-{size}", "writer")
    writer.connect()
    replaying = Device(base, f"bench-{size}", "replaying")
    replaying.connect()
    committing = Device(base, f"bench-{size}", "committing")
    committing.connect()
    reader = Device(base, f"bench-{size}", "reader")
    reader.connect()

    def push_step() -> int:
        replaying.push(user_rows(size), replay=True)
        return size

    def commit_step() -> int:
        committing.push(user_rows(size), replay=False)
        return size

    push = timed(budget, 3, push_step)
    commit = timed(budget, 3, commit_step)
    pulled_rows = reader.pull_all()
    pull = timed(budget, 3, reader.pull_all)
    insert_rate, select_rate = asyncio.run(baseline(dsn, size, budget, pulled_rows))
    return Result(size, push, commit, pull, insert_rate, select_rate)


def report(results: list[Result]) -> str:
    lines = [
        "rows/s by bundle size (server over HTTP vs raw asyncpg on the same database; ratio = server/raw)",
        f"{'rows/bundle':>11} | {'push':>9} {'commit':>9} {'raw ins':>9} {'push/raw':>8} {'commit/raw':>10}"
        f" | {'pull':>9} {'raw sel':>9} {'pull/raw':>8}",
    ]
    for r in results:
        lines.append(
            f"{r.size:>11} | {r.push:>9.0f} {r.commit:>9.0f} {r.insert_baseline:>9.0f}"
            f" {r.push / r.insert_baseline:>8.3f} {r.commit / r.insert_baseline:>10.3f}"
            f" | {r.pull:>9.0f} {r.select_baseline:>9.0f} {r.pull / r.select_baseline:>8.3f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,100,5000", help="rows per bundle, comma separated")
    parser.add_argument("--seconds", type=float, default=3.0, help="time budget per measurement")
    parser.add_argument(
        "--admin-dsn",
        default=os.environ.get("TEST_DATABASE_URL", ""),
        help="PostgreSQL URL of a role with CREATEDB (default: a throwaway local cluster)",
    )
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.sizes.split(",") if size.strip()]
    log_dir = make_tempdir("oversync-bench-")
    results: list[Result] = []
    try:
        with (
            admin_dsn(args.admin_dsn or None) as admin,
            database(admin) as dsn,
            server(dsn, log_dir) as served,
        ):
            for size in sizes:
                results.append(measure(served.base, dsn, size, args.seconds))
                print(f"measured {size}-row bundles", file=sys.stderr)
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    print(report(results))
    spread = statistics.mean(r.push / r.insert_baseline for r in results)
    print(f"mean push/raw ratio: {spread:.3f}")
    return 0
