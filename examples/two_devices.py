"""Two devices, one account: offline edits, sync, convergence and a conflict, step by step.

A laptop and a phone each keep their own SQLite file. Both are used offline; ``sync()`` brings
them together through the server, and when both changed the same post, a resolver decides.

    python examples/two_devices.py                        # starts a throwaway server itself
    python examples/two_devices.py --base-url http://127.0.0.1:8080 --jwt-secret SECRET

The second form talks to a running ``oversync-server serve`` (e.g. ``make serve``) whose
``OVERSYNC_JWT_SECRET`` is SECRET; starting a server itself needs the server extras (the
project's ``make`` targets install them).
"""

from __future__ import annotations

import argparse
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

from oversqlite import Client, ClientConfig, Conflict, KeepMerged, Resolution, SyncTable

# The part of the example server's business schema this app syncs, mirrored in SQLite: the
# same column names; uuid keys as TEXT (files use 16-byte BLOB uuids); bytea as BLOB.
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL,
    author_id TEXT REFERENCES users (id), created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS files (id BLOB PRIMARY KEY NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS file_reviews (
    id BLOB PRIMARY KEY NOT NULL, review TEXT NOT NULL,
    file_id BLOB NOT NULL REFERENCES files (id) ON DELETE CASCADE);
"""
DEV_SECRET = "oversync-dev-secret-change-me"  # what `oversync-server serve` uses when unset


def merge_posts(conflict: Conflict) -> Resolution:
    """Keep the server's title and this device's content (both edits survive)."""
    assert conflict.server_row is not None and conflict.local_payload is not None
    merged = {**conflict.server_row, "content": conflict.local_payload["content"]}
    print(
        f"    resolver: {conflict.table} changed on both devices (server version "
        f"{conflict.server_row_version}); keeping the server's title and the phone's content"
    )
    return KeepMerged(merged)


CONFIG = ClientConfig(
    schema="business",
    tables=[SyncTable(name) for name in ("users", "posts", "files", "file_reviews")],
    resolver=merge_posts,
)


def sign_token(secret: str, user: str, lifetime: int = 3600) -> str:
    """An HS256 JWT whose `sub` is the user id, as the example server expects."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "iat": now, "exp": now + lifetime}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


@contextmanager
def throwaway_server() -> Iterator[tuple[str, str]]:
    """A local PostgreSQL and `oversync-server serve` that vanish afterwards."""
    from oversync_server.localpg import LocalPostgres, free_port, make_tempdir

    root = make_tempdir("oversync-example-")
    secret = uuid.uuid4().hex
    with LocalPostgres(root / "pgdata", ephemeral=True) as pg:
        database = pg.create_database("example")
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "oversync_server.cli",
            "serve",
            "--database-url",
            database,
            "--port",
            str(port),
            "--example-schema",
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "OVERSYNC_JWT_SECRET": secret}
        server = subprocess.Popen(command, env=env)
        base_url = f"http://127.0.0.1:{port}"
        try:
            for _ in range(300):
                try:
                    if httpx.get(f"{base_url}/syncx/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None:
                    raise RuntimeError("the server exited during startup")
                time.sleep(0.1)
            yield base_url, secret
        finally:
            server.terminate()
            server.wait(timeout=15)


class Device:
    """An app on one device: its own SQLite file, its own connection, one sync client."""

    def __init__(self, name: str, folder: Path, base_url: str, token: Callable[[], str]) -> None:
        self.name = name
        path = folder / f"{name}.db"
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA)
        self.sync = Client(path, CONFIG, base_url=base_url, token=token).open()

    def show(self) -> None:
        print(f"  {self.name}:")
        for (name,) in self.db.execute("SELECT name FROM users ORDER BY name"):
            print(f"    user  {name}")
        for title, content in self.db.execute("SELECT title, content FROM posts ORDER BY title"):
            print(f"    post  {title!r}: {content!r}")
        query = (
            "SELECT f.name, length(f.data), r.review FROM files f "
            "LEFT JOIN file_reviews r ON r.file_id = f.id ORDER BY f.name"
        )
        for name, size, review in self.db.execute(query):
            print(f"    file  {name} ({size} bytes), review: {review!r}")

    def content(self) -> list[list[tuple[object, ...]]]:
        return [
            self.db.execute(f"SELECT * FROM {t} ORDER BY id").fetchall()
            for t in ("users", "posts", "files", "file_reviews")
        ]


def step(text: str) -> None:
    print(f"\n== {text}")


def run(base_url: str, secret: str, folder: Path) -> None:
    user = f"alice-{uuid.uuid4().hex[:6]}"  # a fresh account on every run
    token = lambda: sign_token(secret, user)  # noqa: E731 - called for every request
    laptop = Device("laptop", folder, base_url, token)
    phone = Device("phone", folder, base_url, token)

    step("1. The laptop is used before signing in; its writes are captured anyway")
    author, post = str(uuid.uuid4()), str(uuid.uuid4())
    laptop.db.execute(
        "INSERT INTO users (id, name, email) VALUES (?, 'Ada', 'ada@example.com')", (author,)
    )
    laptop.db.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, ?, ?, ?)",
        (post, "Hello", "First draft", author),
    )
    print(f"  pending rows on the laptop: {laptop.sync.pending_row_count()}")

    step(f"2. Sign in as {user} on the laptop: its rows seed the empty account")
    print(f"  attach: {laptop.sync.attach(user).outcome}")
    report = laptop.sync.sync()
    print(
        f"  sync: push {report.push.outcome} (bundle {report.push.bundle_seq}, "
        f"{report.push.row_count} rows), pull {report.pull.outcome}"
    )

    step("3. Sign in on the phone: it starts from a snapshot of the account")
    result = phone.sync.attach(user)
    print(
        f"  attach: {result.outcome}, restored {result.restore.row_count if result.restore else 0} rows"
    )
    phone.show()

    step("4. Both go offline and edit; both touch the same post")
    laptop.db.execute("UPDATE posts SET title = 'Hello, world' WHERE id = ?", (post,))
    phone.db.execute("UPDATE posts SET content = 'Written on the train' WHERE id = ?", (post,))
    photo = uuid.uuid4().bytes
    phone.db.execute(
        "INSERT INTO files (id, name, data) VALUES (?, 'photo.jpg', ?)",
        (photo, bytes(range(256)) * 4),
    )
    phone.db.execute(
        "INSERT INTO file_reviews (id, review, file_id) VALUES (?, ?, ?)",
        (uuid.uuid4().bytes, "Nice light ☀", photo),
    )
    laptop.show()
    phone.show()

    step("5. The laptop syncs first")
    report = laptop.sync.sync()
    print(f"  laptop: push {report.push.outcome} (bundle {report.push.bundle_seq})")

    step("6. The phone syncs: its post edit conflicts with the laptop's")
    report = phone.sync.sync()
    for conflict in report.push.conflicts:
        print(f"  conflict on {conflict.table} {dict(conflict.key)}: {conflict.resolution}")
    print(
        f"  phone: push {report.push.outcome} (bundle {report.push.bundle_seq}), "
        f"pull {report.pull.outcome}"
    )

    step("7. The laptop syncs again and receives the phone's changes")
    report = laptop.sync.sync()
    print(f"  laptop: pull {report.pull.outcome}, {report.pull.bundles_applied} bundle(s)")
    laptop.show()
    phone.show()
    same = laptop.content() == phone.content()
    print(f"\n  converged: {same} (both at bundle {laptop.sync.last_bundle_seq_seen()})")

    step("8. Sign out on the phone: push what is left, then wipe the account's data")
    print(f"  sync_then_detach: detached={phone.sync.sync_then_detach().detached}")
    for device in (laptop, phone):
        device.sync.close()
        device.db.close()
    if not same:
        raise SystemExit("the devices did not converge")


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
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.base_url:
            run(args.base_url, args.jwt_secret, Path(folder))
            return
        print("starting a throwaway PostgreSQL and sync server ...")
        with throwaway_server() as (base_url, secret):
            print(f"server at {base_url}")
            run(base_url, secret, Path(folder))


if __name__ == "__main__":
    main()
