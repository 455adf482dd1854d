"""A change the server refuses is moved aside; later changes keep syncing; the app discards it.

The app deletes a user that a post still references, through an SQLite connection without
``PRAGMA foreign_keys = ON`` (SQLite's default), so SQLite lets it through. The server's foreign
keys always hold: it refuses the delete. The SDK moves that one change into the rejected
changes, keeps syncing everything after it, and the app finally discards it (the user comes
back from the server).

    python examples/rejected_change.py                        # starts a throwaway server itself
    python examples/rejected_change.py --base-url http://127.0.0.1:8080 --jwt-secret SECRET

The second form talks to a running ``oversync-server serve`` (e.g. ``make serve``); the secret
defaults to ``OVERSYNC_JWT_SECRET``. Exits 0 only when every step did what it says.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import tempfile
import uuid
from pathlib import Path

from two_devices import CONFIG, DEV_SECRET, SCHEMA, sign_token, throwaway_server

from oversqlite import Client


def check(condition: bool, what: str) -> None:
    print(f"  {'ok' if condition else 'FAILED'}: {what}")
    if not condition:
        raise SystemExit(f"rejected_change: {what} did not hold")


def device(folder: Path, name: str, base_url: str, user: str, secret: str) -> Client:
    path = folder / f"{name}.db"
    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA)
    return Client(path, CONFIG, base_url=base_url, token=lambda: sign_token(secret, user)).open()


def run(base_url: str, secret: str, folder: Path) -> None:
    user = f"rita-{uuid.uuid4().hex[:6]}"
    phone = device(folder, "phone", base_url, user, secret)
    db = sqlite3.connect(folder / "phone.db", isolation_level=None)  # foreign keys off
    phone.attach(user)

    print("== 1. A user and a post that references them, synced")
    author, post = str(uuid.uuid4()), str(uuid.uuid4())
    db.execute(
        "INSERT INTO users (id, name, email) VALUES (?, 'Ada', 'ada@example.com')", (author,)
    )
    db.execute(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, 'Hello', 'Hi', ?)",
        (post, author),
    )
    phone.sync()
    check(phone.pending_row_count() == 0, "both rows pushed")

    print("== 2. The app deletes the user (the post still references it) and adds another one")
    db.execute("DELETE FROM users WHERE id = ?", (author,))
    db.execute(
        "INSERT INTO users (id, name, email) VALUES (?, 'Bob', 'bob@example.com')",
        (str(uuid.uuid4()),),
    )
    report = phone.sync()
    for change in report.push.rejected:
        print(f"  rejected: {change.op} {change.table} {change.key}: {change.code}")
        print(f"    {change.message[:110]}...")
    rejected = phone.rejected_changes()
    check(len(rejected) == 1 and rejected[0].op == "DELETE", "the delete is in the rejected list")
    check(report.push.row_count == 1, "Bob was pushed in spite of it")
    check(phone.pending_row_count() == 0, "nothing else is stuck in the queue")

    print("== 3. Later changes still sync; a second device sees them")
    db.execute("UPDATE posts SET title = 'Hello again' WHERE id = ?", (post,))
    check(phone.sync().push.row_count == 1, "a later edit was pushed")
    laptop = device(folder, "laptop", base_url, user, secret)
    laptop.attach(user)
    with sqlite3.connect(folder / "laptop.db") as other:
        names = sorted(name for (name,) in other.execute("SELECT name FROM users"))
        title = other.execute("SELECT title FROM posts").fetchone()[0]
    check(
        names == ["Ada", "Bob"] and title == "Hello again", "the laptop has Ada, Bob and the edit"
    )

    print("== 4. The app discards the rejected change: Ada comes back from the server")
    phone.discard_rejected(rejected[0].id)
    phone.sync()
    back = db.execute("SELECT name FROM users WHERE id = ?", (author,)).fetchone()
    check(back == ("Ada",), "Ada is restored locally")
    check(
        phone.rejected_changes() == [] and phone.status().rejected_change_count == 0,
        "the rejected list is empty",
    )
    for client in (phone, laptop):
        client.close()
    db.close()
    print("done")


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
            run(base_url, secret, Path(folder))


if __name__ == "__main__":
    main()
