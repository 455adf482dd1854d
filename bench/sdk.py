"""The SDK's own costs beside plain SQLite, in one run (`python -m bench.sdk`, part of `make bench`).

* hydrate: rows/s of ``Client.attach()`` hydrating a fresh SQLite file from a 100k-row scope
  (snapshot session, pages, staging, apply), end to end over HTTP against a real server, beside
  plain SQLite inserting the same rows (``executemany``, one transaction) into a fresh file;
* capture: CPU seconds per row of the application inserting rows into a managed table (the
  capture triggers append to the capture log) beside the same inserts into an identical
  unmanaged table, and their ratio (the goal is at most 2x). Both run this tree's oversqlite:
  under `python -m bench --compare`, the B column differs only in the server (hydrate) and is
  the same code for capture.

Figures are medians of ``--rounds`` runs; client CPU is this process's CPU time, server CPU the
server process tree's and database CPU the PostgreSQL cluster's (when this run started it).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

from bench import procstat, workloads
from bench.report import Figures, Item, Metric
from bench.serving import SECRET, Served, cluster, database, server
from oversqlite import Client, ClientConfig
from oversync_server.auth import sign_token
from oversync_server.localpg import make_tempdir

__all__ = ["capture_figures", "hydrate_figures", "main", "steps"]

USERS_DDL = (
    "CREATE TABLE users (id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL, "
    "created_at TEXT, updated_at TEXT)"
)
CONFIG = ClientConfig(schema="business", tables=["users"])


class _Target:
    """What workloads.seed needs of a served target."""

    def __init__(self, served: Served) -> None:
        self.served = served


def _fresh_db(folder: Path, name: str) -> Path:
    path = folder / f"{name}-{uuid.uuid4().hex[:8]}.db"
    conn = sqlite3.connect(path)
    conn.execute(USERS_DDL)
    conn.close()
    return path


def _timed(action: Callable[[], object]) -> tuple[float, float]:
    """(wall seconds, own CPU seconds) of ``action``."""
    cpu0, wall0 = procstat.own_cpu_seconds(), time.perf_counter()
    action()
    return time.perf_counter() - wall0, procstat.own_cpu_seconds() - cpu0


def hydrate_metered(
    base: str,
    user: str,
    folder: Path,
    rows: int,
    *,
    server_pid: int | None = None,
    db_pid: int | None = None,
) -> procstat.Usage:
    """Wall and CPU time of every side for one ``attach()`` hydrating a fresh file."""
    path = _fresh_db(folder, "hydrate")
    client = Client(path, CONFIG, base_url=base, token=sign_token(SECRET, user)).open()
    try:
        with procstat.metered(server_pid, db_pid) as usage:
            client.attach(user)
        count = sqlite3.connect(path).execute("SELECT COUNT(*) FROM users").fetchone()[0]
        if count != rows:
            raise RuntimeError(f"hydrate wrote {count} rows, expected {rows}")
        return usage
    finally:
        client.close()
        path.unlink(missing_ok=True)


def hydrate_once(base: str, user: str, folder: Path, rows: int) -> tuple[float, float]:
    """(wall seconds, client CPU seconds) of one hydrate."""
    usage = hydrate_metered(base, user, folder, rows)
    return usage.wall, usage.client_cpu


def _user_params(count: int) -> list[tuple[str, str, str]]:
    return [(str(uuid.uuid4()), f"user {i}", f"user{i}@example.com") for i in range(count)]


def plain_insert_once(folder: Path, rows: int) -> float:
    """Seconds for plain SQLite to insert ``rows`` users into a fresh WAL file."""
    path = _fresh_db(folder, "plain")
    params = _user_params(rows)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    try:
        wall, _ = _timed(
            lambda: (
                conn.execute("BEGIN"),
                conn.executemany("INSERT INTO users (id, name, email) VALUES (?, ?, ?)", params),
                conn.execute("COMMIT"),
            )
        )
        return wall
    finally:
        conn.close()
        path.unlink(missing_ok=True)


def _app_inserts(path: Path, rows: int, per_transaction: int) -> float:
    conn = sqlite3.connect(path, isolation_level=None)
    params = _user_params(rows)
    started = procstat.own_cpu_seconds()  # CPU time: wall clock swings 1.5x on a loaded machine
    for start in range(0, rows, per_transaction):
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO users (id, name, email) VALUES (?, ?, ?)",
            params[start : start + per_transaction],
        )
        conn.execute("COMMIT")
    elapsed = procstat.own_cpu_seconds() - started
    conn.close()
    return elapsed


def capture_once(folder: Path, rows: int, per_transaction: int) -> tuple[float, float]:
    """(managed, plain) CPU seconds for the app to insert ``rows`` users (this process's
    oversqlite, whichever server a `python -m bench` target runs: capture is local)."""
    plain = _fresh_db(folder, "plain-capture")
    managed = _fresh_db(folder, "managed-capture")
    for path in (plain, managed):  # the same journal mode for both
        sqlite3.connect(path).execute("PRAGMA journal_mode = WAL").close()
    client = Client(managed, CONFIG, base_url="http://127.0.0.1:9", token="unused").open()
    try:
        plain_s = _app_inserts(plain, rows, per_transaction)
        managed_s = _app_inserts(managed, rows, per_transaction)
        if client.pending_row_count() != rows:
            raise RuntimeError("capture missed rows")
        return managed_s, plain_s
    finally:
        client.close()
        for path in (plain, managed):
            path.unlink(missing_ok=True)


def hydrate_figures(
    base: str,
    user: str,
    rows: int,
    rounds: int,
    *,
    server_pid: int | None = None,
    db_pid: int | None = None,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oversync-bench-sdk-") as folder:
        runs = [
            hydrate_metered(base, user, Path(folder), rows, server_pid=server_pid, db_pid=db_pid)
            for _ in range(rounds)
        ]
        plain = [plain_insert_once(Path(folder), rows) for _ in range(rounds)]
    wall = statistics.median(r.wall for r in runs)
    plain_s = statistics.median(plain)

    def us_per_row(seconds: list[float]) -> float:
        return statistics.median(seconds) / rows * 1e6

    figures: dict[str, Any] = {
        "rows": rows,
        "hydrate_rows_per_s": rows / wall,
        "client_cpu_us_per_row": us_per_row([r.client_cpu for r in runs]),
        "plain_sqlite_rows_per_s": rows / plain_s,
        "hydrate_vs_plain_sqlite": plain_s / wall,
    }
    if server_pid is not None:
        figures["server_cpu_us_per_row"] = us_per_row([r.server_cpu for r in runs])
    if db_pid is not None:
        figures["db_cpu_us_per_row"] = us_per_row([r.db_cpu or 0.0 for r in runs])
    return figures


def capture_figures(rows: int, per_transaction: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="oversync-bench-sdk-") as folder:
        runs = [capture_once(Path(folder), rows, per_transaction) for _ in range(rounds)]
    managed = statistics.median(r[0] for r in runs)
    plain = statistics.median(r[1] for r in runs)
    return {
        "rows": rows,
        "rows_per_transaction": per_transaction,
        "managed_us_per_row": managed / rows * 1e6,
        "plain_us_per_row": plain / rows * 1e6,
        "capture_overhead_ratio": managed / plain,
    }


Run = Callable[[Any, int], Figures]
Baseline = Callable[[int], float]


def steps(user: str, rows: int, folder: Path) -> list[tuple[Item, Run, Baseline]]:
    """The two SDK workloads as `python -m bench` steps (item, run per target, baseline);
    ``user``'s scope on every target must hold ``rows`` users."""
    hydrate_item = Item(
        "sdk.hydrate",
        f"SDK hydrate, {rows:,}-row scope into a fresh SQLite file (attach)",
        (
            Metric("rows_per_s", "rows/s", "higher", vs_baseline=True, chart=True),
            Metric("client_cpu_us_per_row", "SDK CPU µs/row", "lower"),
        ),
        "plain SQLite inserts",
    )

    def hydrate(target: Any, rnd: int) -> Figures:
        wall, cpu = hydrate_once(target.served.base, user, folder, rows)
        return {"rows_per_s": rows / wall, "client_cpu_us_per_row": cpu / rows * 1e6}

    def plain(rnd: int) -> float:
        return rows / plain_insert_once(folder, rows)

    capture_rows = min(rows, 50_000)
    capture_item = Item(
        "sdk.capture",
        f"SDK write capture, {capture_rows:,} app inserts (1000 per transaction)",
        (
            Metric("rows_per_s", "rows/s", "higher", vs_baseline=True),
            Metric("capture_overhead_ratio", "x plain SQLite (goal <= 2)", "lower"),
        ),
        "plain SQLite inserts",
    )
    plain_rates: list[float] = []

    def capture(target: Any, rnd: int) -> Figures:
        managed_s, plain_s = capture_once(folder, capture_rows, 1000)
        plain_rates.append(capture_rows / plain_s)
        return {
            "rows_per_s": capture_rows / managed_s,
            "capture_overhead_ratio": managed_s / plain_s,
        }

    def capture_plain(rnd: int) -> float:
        return plain_rates[-1]

    return [(hydrate_item, hydrate, plain), (capture_item, capture, capture_plain)]


@contextmanager
def _served(admin_dsn: str | None) -> Iterator[tuple[Served, int | None]]:
    """A server of this tree on a fresh database: (the server, the postmaster's pid or None)."""
    with ExitStack() as stack:
        log_dir = make_tempdir("oversync-bench-sdk-")
        pg = stack.enter_context(cluster(admin_dsn))
        dsn = stack.enter_context(database(pg.dsn))
        served = stack.enter_context(server(dsn, log_dir, name="sdk"))
        yield served, pg.postmaster_pid


def run(
    base: str,
    *,
    rows: int,
    rounds: int,
    server_pid: int | None = None,
    db_pid: int | None = None,
) -> dict[str, Any]:
    """Seed a ``rows``-row scope on the server at ``base`` and measure both workloads."""
    user = f"sdk-bench-{uuid.uuid4().hex[:8]}"
    workloads.seed(_Target(Served(base, 0)), user, max(1, rows // 1000), min(rows, 1000))  # type: ignore[arg-type]
    return {
        "hydrate": hydrate_figures(base, user, rows, rounds, server_pid=server_pid, db_pid=db_pid),
        "capture": capture_figures(min(rows, 50_000), 1000, rounds),
    }


def text(figures: dict[str, Any]) -> str:
    h, c = figures["hydrate"], figures["capture"]
    sides = "".join(
        f", {label} CPU {h[key]:.1f} us/row"
        for label, key in (("server", "server_cpu_us_per_row"), ("database", "db_cpu_us_per_row"))
        if key in h
    )
    return "\n".join(
        [
            f"sdk hydrate, {h['rows']:,} rows into a fresh file: {h['hydrate_rows_per_s']:,.0f} "
            f"rows/s (goal >= 50,000), client CPU {h['client_cpu_us_per_row']:.1f} us/row"
            f"{sides}; plain SQLite inserts {h['plain_sqlite_rows_per_s']:,.0f} rows/s",
            f"sdk capture, {c['rows']:,} app inserts ({c['rows_per_transaction']}/transaction): "
            f"{c['managed_us_per_row']:.2f} us/row managed vs {c['plain_us_per_row']:.2f} "
            f"us/row plain = {c['capture_overhead_ratio']:.2f}x (goal <= 2x)",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk", description=__doc__)
    parser.add_argument("--base-url", help="a running server (default: start one)")
    parser.add_argument("--admin-dsn", help="PostgreSQL admin DSN (default: a local cluster)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    with ExitStack() as stack:
        if args.base_url:
            figures = run(args.base_url, rows=args.rows, rounds=args.rounds)
        else:
            served, db_pid = stack.enter_context(_served(args.admin_dsn))
            figures = run(
                served.base,
                rows=args.rows,
                rounds=args.rounds,
                server_pid=served.pid,
                db_pid=db_pid,
            )
    print(text(figures))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
