"""An asyncio program syncing two devices with ``AsyncClient``.

It attaches two devices, writes on one while the event loop keeps ticking (a heartbeat task
proves the loop never blocks), syncs both with progress reports, reads status during a sync,
cancels a sync with ``asyncio.timeout`` and shows that nothing was lost. Exits 0 only when the
devices converged and every check held.

    python examples/async_app.py --base-url http://127.0.0.1:8080 --jwt-secret SECRET

``--base-url`` / ``--jwt-secret`` default to ``OVERSYNC_BASE_URL`` / ``OVERSYNC_JWT_SECRET``
(``make serve`` listens on http://127.0.0.1:8080).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import itertools
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

from oversqlite import AsyncClient, ClientConfig, Progress

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    created_at TEXT, updated_at TEXT);
"""
CONFIG = ClientConfig(schema="business", tables=["users"], upload_chunk_rows=500)
DEV_SECRET = "oversync-dev-secret-change-me"  # what `oversync-server serve` uses when unset
ROWS = 3000


def sign_token(secret: str, user: str, lifetime: int = 3600) -> str:
    """An HS256 JWT whose `sub` is the user id, as the example server expects."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "iat": now, "exp": now + lifetime}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def local_db(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.executescript(SCHEMA)
    return db


def count(db: sqlite3.Connection) -> int:
    return int(db.execute("SELECT COUNT(*) FROM users").fetchone()[0])


async def heartbeat(ticks: list[float]) -> None:
    """Proves the event loop stays responsive while the clients work."""
    while True:
        ticks.append(time.monotonic())
        await asyncio.sleep(0.01)


async def run(base_url: str, secret: str, folder: Path) -> bool:
    user = f"async-{uuid.uuid4().hex[:6]}"
    token = lambda: sign_token(secret, user)  # noqa: E731 - called for every request
    desk_db, tab_db = local_db(folder / "desk.db"), local_db(folder / "tablet.db")
    ticks: list[float] = []
    beat = asyncio.create_task(heartbeat(ticks))
    checks: dict[str, bool] = {}
    async with (
        AsyncClient(folder / "desk.db", CONFIG, base_url=base_url, token=token) as desk,
        AsyncClient(folder / "tablet.db", CONFIG, base_url=base_url, token=token) as tablet,
    ):
        print("desk:", (await desk.attach(user)).outcome)
        print("tablet:", (await tablet.attach(user)).outcome)

        def write(start: int, rows: int) -> None:
            desk_db.executemany(
                "INSERT INTO users (id, name, email) VALUES (?, ?, ?)",
                [
                    (str(uuid.uuid4()), f"user {i}", f"u{i}@example.com")
                    for i in range(start, start + rows)
                ],
            )

        await asyncio.to_thread(write, 0, ROWS)
        print("desk pending:", await desk.pending_row_count())

        chunks: list[Progress] = []
        sync = asyncio.create_task(desk.sync(progress=chunks.append))
        status = await desk.status()  # answers during the sync, from the read connection
        print(f"status during the sync: pending={status.pending_row_count}")
        report = await sync
        print(
            f"desk push: {report.push.outcome}, {report.push.row_count} rows;",
            f"progress reports: {[(p.phase.value, p.done, p.total) for p in chunks]}",
        )
        checks["push progress reported every chunk"] = [p.done for p in chunks] == list(
            range(500, ROWS + 1, 500)
        )

        # Cancel a sync almost at once: it stops at a safe point and nothing is lost.
        await asyncio.to_thread(write, ROWS, 10)
        try:
            async with asyncio.timeout(0.001):
                await desk.sync()
        except TimeoutError:
            print("a sync was cancelled by asyncio.timeout")
        report = await desk.sync()  # continues where the cancelled one stopped
        checks["nothing pending after the resumed sync"] = await desk.pending_row_count() == 0

        pulled: list[Progress] = []
        report = await tablet.sync(progress=pulled.append)
        print(f"tablet pull: {report.pull.outcome}, checkpoint {report.pull.last_bundle_seq_seen}")
        checks["pull progress reported"] = bool(pulled) and pulled[-1].phase.value == "pull"
        checks["converged"] = count(desk_db) == count(tab_db) == ROWS + 10
        print(f"desk has {count(desk_db)} users, tablet has {count(tab_db)}")
    beat.cancel()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    print(f"event loop: {len(ticks)} heartbeats, longest gap {max(gaps):.3f}s")
    checks["event loop kept running"] = len(ticks) > 10
    for name, ok in checks.items():
        print(f"  {'ok ' if ok else 'FAILED'} {name}")
    desk_db.close()
    tab_db.close()
    return all(checks.values())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--base-url", default=os.environ.get("OVERSYNC_BASE_URL", "http://127.0.0.1:8080")
    )
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("OVERSYNC_JWT_SECRET", DEV_SECRET),
        help="the server's OVERSYNC_JWT_SECRET",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="oversync-async-") as folder:
        ok = asyncio.run(run(args.base_url, args.jwt_secret, Path(folder)))
    print("async app works" if ok else "async app FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
