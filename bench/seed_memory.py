"""Client memory of a first seed: N local rows pushed by one oversqlite client, peak RSS.

    python -m bench.seed_memory [--rows 1000000] [--admin-dsn URL]

A fresh SQLite file gets N ``users`` rows before sync is installed; the client then opens it
(every row becomes a pending insert), attaches to an empty account (``SEEDED_FROM_LOCAL``) and
pushes everything, in bundles of ``ClientConfig.max_bundle_rows``. The figure is this process's
peak RSS (VmHWM, reset after the rows were written) against the goal of 200 MB for 1M rows;
server and PostgreSQL run in processes of their own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import time
import uuid
from pathlib import Path

from bench import procstat
from bench.serving import SECRET, admin_dsn, database, server
from oversqlite import AttachOutcome, Client, ClientConfig, KeyKind, SyncTable
from oversync_server.auth import sign_token
from oversync_server.localpg import make_tempdir

GOAL_MIB = 200.0


def write_rows(path: Path, rows: int) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, "
        "email TEXT NOT NULL, created_at TEXT, updated_at TEXT)"
    )
    conn.executemany(
        "INSERT INTO users (id, name, email, created_at) VALUES (?, ?, ?, ?)",
        (
            (str(uuid.uuid4()), f"user {i}", f"user{i}@example.com", "2026-01-01T00:00:00Z")
            for i in range(rows)
        ),
    )
    conn.commit()
    conn.close()


def seed(base_url: str, path: Path) -> dict[str, float]:
    config = ClientConfig(schema="business", tables=[SyncTable("users", key_kind=KeyKind.UUID)])
    before = procstat.own_rss_mib()  # the client's own: the servers run as child processes
    procstat.reset_peak(os.getpid())
    started = time.monotonic()
    with Client(path, config, base_url=base_url, token=sign_token(SECRET, "seeder")) as client:
        attached = client.attach("seeder")
        assert attached.outcome is AttachOutcome.SEEDED_FROM_LOCAL, attached
        report = client.push_pending()
        assert client.pending_row_count() == 0
    return {
        "rows pushed": float(report.row_count),
        "rss before (MiB)": before,
        "peak rss (MiB)": procstat.own_peak_mib(),
        "seconds": time.monotonic() - started,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.seed_memory", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--admin-dsn", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args(argv)
    work = make_tempdir("oversync-bench-seed-")
    try:
        path = work / "device.db"
        write_rows(path, args.rows)
        with (
            admin_dsn(args.admin_dsn or None) as admin,
            database(admin) as dsn,
            server(dsn, work) as served,
        ):
            figures = seed(served.base, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for name, value in figures.items():
        print(f"{name}: {value:.1f}")
    peak = figures["peak rss (MiB)"]
    verdict = "within" if peak < GOAL_MIB else "ABOVE"
    print(
        f"client peak RSS {peak:.1f} MiB for {args.rows} rows: {verdict} the {GOAL_MIB:.0f} MB goal"
    )
    return 0 if peak < GOAL_MIB else 1


if __name__ == "__main__":
    raise SystemExit(main())
