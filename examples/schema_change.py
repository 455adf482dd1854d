"""Changing the schema without stranding installed apps: a new server column, then an app update.

Two devices run version 1 of an app that syncs `users` and `posts`. The server gains a column
(`posts.pinned boolean NOT NULL DEFAULT false`, an additive change) and is restarted; both
devices keep syncing unchanged (the server fills the default for their pushes, their pulls
ignore the column). Then the phone, and later the laptop, update to version 2, whose local
migration adds the column: `open()` migrates the SQLite file and the next `sync()` re-hydrates
`posts` from the server, keeping every unsynced local change. The script exits 0 only when both
devices hold the same posts, `pinned` values included.

    python examples/schema_change.py        # starts a throwaway PostgreSQL and server itself
    python examples/schema_change.py --base-url http://127.0.0.1:8080 --jwt-secret SECRET \\
        --database-url postgresql://... [--restart-command "systemctl restart oversync"]

The second form changes the running server's database (`--database-url`) and restarts the
server with `--restart-command`, or asks you to restart it and waits (the server re-reads table
shapes at start). Starting a server itself needs the server extras (`make` installs them).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from oversqlite import Client, ClientConfig, Migration, SchemaMismatchError, SyncTable

# Version 1 of the app's local schema: what its first release creates (kept as it is; later
# versions change it with migrations).
SCHEMA_V1 = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL,
    author_id TEXT REFERENCES users (id), created_at TEXT, updated_at TEXT);
"""
SERVER_CHANGE = (
    "ALTER TABLE business.posts ADD COLUMN IF NOT EXISTS pinned boolean NOT NULL DEFAULT false"
)
TABLES = [SyncTable("users"), SyncTable("posts")]
APP_V1 = ClientConfig(schema="business", tables=TABLES)
APP_V2 = ClientConfig(
    schema="business",
    tables=TABLES,
    migrations=[
        Migration(
            2,
            sql="ALTER TABLE posts ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0",
            description="posts can be pinned",
        )
    ],
)  # schema_version 2: the last migration's
DEV_SECRET = "oversync-dev-secret-change-me"  # what `oversync-server serve` uses when unset


def sign_token(secret: str, user: str, lifetime: int = 3600) -> str:
    """An HS256 JWT whose `sub` is the user id, as the example server expects."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "iat": now, "exp": now + lifetime}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


def run_sql(database_url: str, statement: str) -> None:
    import asyncpg

    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(statement)
        finally:
            await conn.close()

    asyncio.run(run())


class Server:
    """Where the server is, and how to apply the schema change to it (SQL, then a restart)."""

    def __init__(self, base_url: str, secret: str, database_url: str) -> None:
        self.base_url, self.secret, self.database_url = base_url, secret, database_url

    def restart(self) -> None:
        raise NotImplementedError

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base_url}/syncx/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server at {self.base_url} did not come back")


class ExternalServer(Server):
    def __init__(self, base_url: str, secret: str, database_url: str, command: str) -> None:
        super().__init__(base_url, secret, database_url)
        self.command = command

    def restart(self) -> None:
        if self.command:
            subprocess.run(self.command, shell=True, check=True)
        else:
            print("  restart the server now (it re-reads the table shapes when it starts) ...")
            time.sleep(3)
        self.wait_ready(timeout=600)


class OwnServer(Server):
    """`oversync-server serve` on a throwaway local PostgreSQL, restartable on the same port."""

    def __init__(self, database_url: str, port: int) -> None:
        super().__init__(f"http://127.0.0.1:{port}", uuid.uuid4().hex, database_url)
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "oversync_server.cli",
            "serve",
            "--database-url",
            self.database_url,
            "--port",
            str(self.port),
            "--example-schema",
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "OVERSYNC_JWT_SECRET": self.secret}
        self.process = subprocess.Popen(command, env=env)
        self.wait_ready()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def own_server() -> Iterator[OwnServer]:
    from oversync_server.localpg import LocalPostgres, free_port, make_tempdir

    root = make_tempdir("oversync-example-")
    with LocalPostgres(root / "pgdata", ephemeral=True) as pg:
        server = OwnServer(pg.create_database("example"), free_port())
        server.start()
        try:
            yield server
        finally:
            server.stop()


class Device:
    """An app on one device: its SQLite file, its own connection, and the sync client."""

    def __init__(self, name: str, folder: Path, server: Server, token: Callable[[], str]) -> None:
        self.name, self.path, self.server, self.token = name, folder / f"{name}.db", server, token
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA_V1)
        self.sync = self._client(APP_V1)

    def _client(self, config: ClientConfig) -> Client:
        return Client(self.path, config, base_url=self.server.base_url, token=self.token).open()

    def update_app(self, user: str) -> None:
        """Install version 2: open() runs its migration; attach() resumes (no network)."""
        self.sync.close()
        self.sync = self._client(APP_V2)
        self.sync.attach(user)
        status = self.sync.status()
        print(
            f"  {self.name}: local schema version {status.local_schema_version}, "
            f"re-hydrating {list(status.tables_to_rehydrate)} at the next sync, "
            f"{status.pending_row_count} change(s) still pending"
        )

    def posts(self) -> list[tuple[object, ...]]:
        has_pinned = any(r[1] == "pinned" for r in self.db.execute("PRAGMA table_info(posts)"))
        columns = "id, title, content" + (", pinned" if has_pinned else "")
        return self.db.execute(f"SELECT {columns} FROM posts ORDER BY title").fetchall()

    def show(self) -> None:
        print(f"  {self.name}:")
        for row in self.posts():
            pin = "" if len(row) == 3 else ("  [pinned]" if row[3] else "  [not pinned]")
            print(f"    post {row[1]!r}: {row[2]!r}{pin}")


def step(text: str) -> None:
    print(f"\n== {text}")


def sync_until_the_server_has_the_column(device: Device) -> None:
    """A server not restarted yet refuses the new column by name: wait for it."""
    deadline = time.monotonic() + 600
    while True:
        try:
            device.sync.sync()
            return
        except SchemaMismatchError as exc:
            if time.monotonic() > deadline:
                raise
            print(f"  waiting for the server: {exc.table} has no column {exc.column!r} yet")
            time.sleep(2)


def run(server: Server, folder: Path) -> bool:
    user = f"alice-{uuid.uuid4().hex[:6]}"  # a fresh account on every run
    token = lambda: sign_token(server.secret, user)  # noqa: E731 - called for every request
    laptop = Device("laptop", folder, server, token)
    phone = Device("phone", folder, server, token)

    step(f"1. Version 1 of the app on two devices, signed in as {user}")
    laptop.sync.attach(user)
    author = str(uuid.uuid4())
    laptop.db.execute(
        "INSERT INTO users (id, name, email) VALUES (?, 'Ada', 'ada@example.com')", (author,)
    )
    posts = [str(uuid.uuid4()) for _ in range(3)]
    for post, title in zip(posts, ("Welcome", "Roadmap", "Changelog"), strict=True):
        laptop.db.execute(
            "INSERT INTO posts (id, title, content, author_id) VALUES (?, ?, 'v1 text', ?)",
            (post, title, author),
        )
    laptop.sync.sync()
    print(f"  phone attach: {phone.sync.attach(user).outcome}")
    phone.show()

    step("2. The server gains a column (additive) and is restarted")
    print(f"  {SERVER_CHANGE}")
    run_sql(server.database_url, SERVER_CHANGE)
    server.restart()

    step("3. Both devices still run version 1 and keep syncing")
    laptop.db.execute(
        "UPDATE posts SET content = 'edited on the old laptop' WHERE id = ?", (posts[0],)
    )
    report = laptop.sync.sync()
    print(f"  laptop: push {report.push.outcome} (the server filled pinned = false)")
    report = phone.sync.sync()
    print(f"  phone: pull {report.pull.outcome} (the new column is ignored)")

    step("4. The phone updates to version 2; it edited a post offline just before")
    phone.db.execute("UPDATE posts SET title = 'Roadmap 2026' WHERE id = ?", (posts[1],))
    phone.update_app(user)
    phone.db.execute("UPDATE posts SET pinned = 1 WHERE id = ?", (posts[1],))  # a v2 feature
    sync_until_the_server_has_the_column(phone)
    phone.show()

    step("5. The laptop, still on version 1, syncs: it gets the new title, not the pin")
    laptop.db.execute("UPDATE posts SET title = 'Changelog (old app)' WHERE id = ?", (posts[2],))
    report = laptop.sync.sync()
    print(f"  laptop: push {report.push.outcome}, pull {report.pull.outcome}")
    laptop.show()

    step("6. The laptop updates too: the migration and re-hydration bring the pin")
    laptop.db.execute(
        "UPDATE posts SET content = 'offline, before the update' WHERE id = ?", (posts[2],)
    )
    laptop.update_app(user)
    report = laptop.sync.sync()
    restored = report.rehydrated.row_count if report.rehydrated else 0
    print(f"  laptop: re-hydrated {restored} row(s), push {report.push.outcome}")
    phone.sync.sync()
    laptop.show()
    phone.show()

    same = laptop.posts() == phone.posts()
    pins = [row[3] for row in laptop.posts()]
    print(f"\n  converged: {same}; pinned values {pins}")
    for device in (laptop, phone):
        device.sync.close()
        device.db.close()
    return same and sorted(pins) == [0, 0, 1]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--base-url", help="a running server (default: start one here)")
    parser.add_argument(
        "--jwt-secret",
        default=os.environ.get("OVERSYNC_JWT_SECRET", DEV_SECRET),
        help="the server's OVERSYNC_JWT_SECRET (to sign tokens)",
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL", ""),
        help="the running server's database (to add the column); needed with --base-url",
    )
    parser.add_argument(
        "--restart-command", default="", help="a shell command that restarts the running server"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.base_url:
            if not args.database_url:
                parser.error("--base-url needs --database-url (the column is added through it)")
            external = ExternalServer(
                args.base_url, args.jwt_secret, args.database_url, args.restart_command
            )
            ok = run(external, Path(folder))
        else:
            print("starting a throwaway PostgreSQL and sync server ...")
            with own_server() as server:
                print(f"server at {server.base_url}")
                ok = run(server, Path(folder))
    if not ok:
        raise SystemExit("the devices did not converge")


if __name__ == "__main__":
    main()
