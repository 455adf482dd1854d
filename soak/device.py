"""One soak device: an app with its own SQLite file and oversqlite client, in its own process.

    python -m soak.device --run-dir DIR --device u0d1 --user u0 --base-url URL ...

It writes a seeded random workload (inserts, updates, deletes, parent changes, blobs, edits of
rows every device of the user shares), syncs, goes offline, detaches and attaches again, and
records every step in ``DIR/<device>.jsonl`` (``soak.history``) before and after doing it:

- ``intent`` (tag, table, key, op) before a local write, ``done`` (tags) after its commit; a
  SIGKILL in between leaves a write that may or may not exist (the checker allows both);
- ``sync_start``, then ``sync_ok`` with what ``Client.sync()`` returned and
  ``pending_row_count()`` after it, or ``sync_error``. A write is *reported committed* when a
  ``sync_ok`` with ``pending == 0`` follows its ``done``: the SDK said everything was pushed;
- ``conflict`` for every resolver decision (a merge is a new write with its own tag).

Half of the incarnations (seeded) run the SDK's background sync (``Client.start(watch=True)``)
instead of calling ``sync()``: it pushes soon after each write and pulls on watch wake-ups; its
``synced`` events are recorded as ``sync_ok`` (``background: true``), its errors as
``sync_error``, and an offline period pauses its uploads and downloads. A lock orders each
write's commit and ``done`` against each ``sync_ok``'s pending count, so a ``sync_ok`` with
nothing pending that follows a ``done`` was counted after that write committed.

Restarted after a SIGKILL with the same SQLite file and the next ``--incarnation``, it finds its
own rows again from the tags in the database. When ``DIR/stop`` appears it stops writing, syncs
until nothing is pending (``drained``), waits for ``DIR/final``, syncs once more and records
its managed tables (``final``).
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from oversqlite import (
    AcceptServer,
    AttachRequiredError,
    Client,
    ClientConfig,
    Conflict,
    EventKind,
    KeepLocal,
    KeepMerged,
    ReconnectRequiredError,
    Resolution,
    RetryPolicy,
    SyncError,
    SyncEvent,
    SyncReport,
    SyncTable,
)
from oversync_server.auth import sign_token
from soak.history import HistoryWriter
from soak.rows import SCHEMA, TABLES, TAG_COLUMN, device_rows

Statement = tuple[str, str, str, str, tuple[Any, ...], str]  # table, key, op, sql, params, tag


def shared_user_ids(seed: int, user: str, count: int) -> list[str]:
    """Rows of `users` every device of `user` edits (conflicts): the same ids on every device."""
    return [str(uuid.uuid5(uuid.NAMESPACE_URL, f"soak/{seed}/{user}/{i}")) for i in range(count)]


def run_sync(client: Client) -> SyncReport:
    """The one place a device syncs. Hook: when the SDK gains background sync, a device mode
    that lets it run (and records its reports the same way) plugs in here."""
    return client.sync()


class Device:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.name: str = args.device
        self.user: str = args.user
        self.run_dir = Path(args.run_dir)
        self.rng = random.Random(f"{args.seed}/{self.name}/{args.incarnation}")
        self.history = HistoryWriter(
            self.run_dir / f"{self.name}.jsonl", device=self.name, inc=args.incarnation
        )
        self.counter = 0
        self.shared = shared_user_ids(args.seed, self.user, args.shared_rows)
        self.merges: list[str] = []
        # background sync this incarnation (seeded); `order`: commit+done vs pending+sync_ok
        self.background = self.rng.random() < args.background_share
        self.order = threading.Lock()
        self.reattach = threading.Event()  # the background loop met AttachRequired/Reconnect
        path = self.run_dir / f"{self.name}.db"
        self.db = sqlite3.connect(path, isolation_level=None, timeout=30.0)  # beside the SDK
        self.db.execute("PRAGMA foreign_keys = ON")
        self.db.executescript(SCHEMA)
        config = ClientConfig(
            schema="business",
            tables=[SyncTable(name) for name in TABLES],
            resolver=self.resolve,
            retry=RetryPolicy(max_attempts=4, initial_backoff=0.1, max_backoff=1.0),
            http_timeout=20.0,
        )
        secret, user = args.jwt_secret, self.user
        self.client = Client(
            path,
            config,
            base_url=args.base_url,
            token=lambda: sign_token(secret, user, lifetime_seconds=86400),
        )

    # ------------------------------------------------------------------ history helpers

    def log(self, ev: str, **data: Any) -> None:
        self.history.log(ev, **data)

    def tag(self) -> str:
        self.counter += 1
        return f"{self.name}.{self.args.incarnation}.{self.counter}"

    def new_id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def stopping(self) -> bool:
        return (self.run_dir / "stop").exists()

    # ------------------------------------------------------------------ own rows

    def own(self, table: str) -> list[Any]:
        """Keys of this device's rows in `table` (only the owner writes them: tag prefix)."""
        column = TAG_COLUMN[table]
        prefix = f"{self.name}.%"
        query = f"SELECT id FROM {table} WHERE {column} LIKE ? AND id NOT IN ({self._shared_in})"
        return [row[0] for row in self.db.execute(query, (prefix, *self.shared))]

    @property
    def _shared_in(self) -> str:
        return ",".join("?" * len(self.shared)) or "NULL"

    # ------------------------------------------------------------------ writes

    def write(self, statements: list[Statement]) -> None:
        """One local transaction; intents first, `done` after the commit."""
        for table, key, op, _sql, _params, tag in statements:
            self.log("intent", tag=tag, table=table, key=key, op=op)
        try:
            with self.order:
                self.db.execute("BEGIN IMMEDIATE")
                for _table, _key, _op, sql, params, _tag in statements:
                    self.db.execute(sql, params)
                self.db.execute("COMMIT")
                self.log("done", tags=[s[5] for s in statements])
        except sqlite3.Error as exc:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            self.log("write_failed", tags=[s[5] for s in statements], error=str(exc))

    def insert_user(self) -> None:
        key, tag = str(self.new_id()), self.tag()
        sql = "INSERT INTO users (id, name, email) VALUES (?, ?, ?)"
        self.write([("users", key, "upsert", sql, (key, tag, f"{self.name}@soak"), tag)])

    def insert_post(self) -> None:
        authors = self.own("users")
        if not authors:
            return self.insert_user()
        key, tag = str(self.new_id()), self.tag()
        content = f"{self.name}|" + "x" * self.rng.randrange(200)
        sql = "INSERT INTO posts (id, title, content, author_id) VALUES (?, ?, ?, ?)"
        params = (key, tag, content, self.rng.choice(authors))
        self.write([("posts", key, "upsert", sql, params, tag)])

    def insert_file(self) -> None:
        file_id, tag = self.new_id(), self.tag()
        size = self.rng.choice((0, 16, 1000, 5000, self.args.max_blob))
        data = self.rng.randbytes(self.rng.randrange(size + 1))
        statements: list[Statement] = [
            (
                "files",
                str(file_id),
                "upsert",
                "INSERT INTO files (id, name, data) VALUES (?, ?, ?)",
                (file_id.bytes, tag, data),
                tag,
            )
        ]
        if self.rng.random() < 0.7:
            review, rtag = self.new_id(), self.tag()
            sql = "INSERT INTO file_reviews (id, review, file_id) VALUES (?, ?, ?)"
            params = (review.bytes, rtag, file_id.bytes)
            statements.append(("file_reviews", str(review), "upsert", sql, params, rtag))
        self.write(statements)

    def update_own(self) -> None:
        table = self.rng.choice(TABLES)
        keys = self.own(table)
        if not keys:
            return
        key, tag = self.rng.choice(keys), self.tag()
        sql = f"UPDATE {table} SET {TAG_COLUMN[table]} = ? WHERE id = ?"
        params: tuple[Any, ...] = (tag, key)
        if table == "files" and self.rng.random() < 0.5:
            sql = "UPDATE files SET name = ?, data = ? WHERE id = ?"
            params = (tag, self.rng.randbytes(self.rng.randrange(3000)), key)
        self.write([(table, _text_key(key), "upsert", sql, params, tag)])

    def reparent_post(self) -> None:
        posts, authors = self.own("posts"), self.own("users")
        if not posts or len(authors) < 2:
            return
        key, tag = self.rng.choice(posts), self.tag()
        sql = "UPDATE posts SET author_id = ?, title = ? WHERE id = ?"
        self.write([("posts", key, "upsert", sql, (self.rng.choice(authors), tag, key), tag)])

    def delete_own(self) -> None:
        table = self.rng.choice(("users", "posts", "files", "file_reviews"))
        keys = self.own(table)
        if not keys:
            return
        key = self.rng.choice(keys)
        children: list[tuple[str, Any]] = []
        if table == "users":  # delete its posts first (the FK has no cascade)
            query = "SELECT id FROM posts WHERE author_id = ?"
            children = [("posts", row[0]) for row in self.db.execute(query, (key,))]
        if table == "files":  # its reviews first, written out rather than cascaded
            query = "SELECT id FROM file_reviews WHERE file_id = ?"
            children = [("file_reviews", row[0]) for row in self.db.execute(query, (key,))]
        statements: list[Statement] = []
        for child_table, child in [*children, (table, key)]:
            tag = self.tag()
            sql = f"DELETE FROM {child_table} WHERE id = ?"
            statements.append((child_table, _text_key(child), "delete", sql, (child,), tag))
        self.write(statements)

    def edit_shared(self) -> None:
        if not self.shared:
            return
        key, tag = self.rng.choice(self.shared), self.tag()
        exists = self.db.execute("SELECT 1 FROM users WHERE id = ?", (key,)).fetchone()
        if exists:
            sql, params = "UPDATE users SET name = ? WHERE id = ?", (tag, key)
        else:  # not pulled yet: an insert that may race another device's insert
            sql = "INSERT INTO users (id, name, email) VALUES (?, ?, 'shared@soak')"
            params = (key, tag)
        self.write([("users", key, "upsert", sql, params, tag)])

    # ------------------------------------------------------------------ conflicts

    def resolve(self, conflict: Conflict) -> Resolution:
        column = TAG_COLUMN[conflict.table]
        key = next(iter(conflict.key.values()))
        local = conflict.local_payload or {}
        server = conflict.server_row or {}
        shared = key in self.shared
        resolution: Resolution
        merge_tag = None
        if not shared:  # a single-writer row never conflicts; keep the owner's write
            decision, resolution = "keep_local", KeepLocal()
        elif conflict.server_row is None or conflict.local_payload is None:
            decision, resolution = "accept_server", AcceptServer()
        else:
            decision = self.rng.choice(("accept_server", "keep_local", "keep_merged"))
            resolution = AcceptServer() if decision == "accept_server" else KeepLocal()
            if decision == "keep_merged":
                merge_tag = self.tag()
                self.log("intent", tag=merge_tag, table=conflict.table, key=key, op="upsert")
                self.merges.append(merge_tag)
                resolution = KeepMerged({**conflict.server_row, column: merge_tag})
        self.log(
            "conflict",
            table=conflict.table,
            key=key,
            shared=shared,
            local_op=conflict.local_op,
            local_tag=local.get(column),
            server_tag=server.get(column),
            server_deleted=conflict.server_row_deleted,
            decision=decision,
            merge_tag=merge_tag,
        )
        return resolution

    # ------------------------------------------------------------------ sync and lifecycle

    def sync(self) -> bool:
        """One `sync()`; True when it returned and nothing is pending any more."""
        self.log("sync_start")
        self.merges = []
        try:
            report = run_sync(self.client)
            pending = self.client.pending_row_count()
        except (AttachRequiredError, ReconnectRequiredError) as exc:
            self.log("sync_error", error=type(exc).__name__, message=str(exc)[:300])
            self.attach()
            return False
        except SyncError as exc:
            self.log("sync_error", error=type(exc).__name__, message=str(exc)[:300])
            return False
        self.log_synced(report, pending)
        return pending == 0

    def log_synced(self, report: SyncReport, pending: int, **extra: Any) -> None:
        merges, self.merges = self.merges, []
        if merges:  # the SDK wrote and pushed the merged rows in this sync
            self.log("done", tags=merges)
        self.log(
            "sync_ok",
            push=report.push.outcome.value,
            bundle_seq=report.push.bundle_seq,
            conflicts=[[c.table, dict(c.key), c.resolution] for c in report.push.conflicts],
            pull=report.pull.outcome.value,
            last_seq=report.pull.last_bundle_seq_seen,
            pending=pending,
            **extra,
        )

    # ------------------------------------------------------------------ background sync

    def on_event(self, event: SyncEvent) -> None:
        """The SDK's background thread reports; recorded like the foreground's syncs."""
        if event.kind is EventKind.SYNCED and event.report is not None:
            with self.order:  # no write commits between this count and its record
                try:
                    pending = self.client.pending_row_count()
                except SyncError:
                    return
                self.log_synced(event.report, pending, background=True)
        elif event.kind in (EventKind.ERROR, EventKind.OFFLINE, EventKind.CHANGE_REJECTED):
            error = event.error
            self.merges = []  # not known to be committed: the checker allows either
            name = type(error).__name__ if error is not None else "rejected"
            self.log("sync_error", error=name, message=str(error)[:300], background=True)
            if isinstance(error, (AttachRequiredError, ReconnectRequiredError)):
                self.reattach.set()

    def start_background(self) -> None:
        self.client.start(watch=True, on_event=self.on_event, poll_interval=2.0)
        self.log("background_start")

    def stop_background(self) -> None:
        if self.client.background is not None:
            self.client.stop()
            self.log("background_stop")

    def go_offline(self, offline: bool) -> None:
        background = self.client.background
        if background is None:
            return
        if offline:
            background.pause_uploads()
            background.pause_downloads()
        else:
            background.resume_uploads()
            background.resume_downloads()

    def attach(self) -> None:
        while True:
            try:
                result = self.client.attach(self.user)
            except SyncError as exc:
                self.log("attach_error", error=type(exc).__name__, message=str(exc)[:300])
                time.sleep(0.3)
                continue
            self.log("attach", outcome=result.outcome.value, discarded=result.discarded_local_rows)
            if result.attached:
                return
            time.sleep(min(result.retry_after or 0.3, 2.0))

    def detach_and_attach(self) -> None:
        self.stop_background()
        self.log("detach_start")
        try:
            result = self.client.sync_then_detach()
        except SyncError as exc:
            self.log("detach_error", error=type(exc).__name__, message=str(exc)[:300])
            return
        self.log("detach", detached=result.detached, pending=result.detach.pending_row_count)
        if result.detached:
            self.attach()

    def restart_background(self) -> None:
        """After an attach or detach: the background loop runs again (a fresh one)."""
        if self.background:
            self.stop_background()
            self.start_background()

    # ------------------------------------------------------------------ the workload

    def run(self) -> None:
        self.log("start", pid=os.getpid(), background=self.background)
        self.client.open()
        self.attach()
        if self.background:
            self.start_background()
        operations = [
            (self.insert_user, 3),
            (self.insert_post, 6),
            (self.insert_file, 2),
            (self.update_own, 8),
            (self.reparent_post, 2),
            (self.delete_own, 3),
            (self.edit_shared, 4),
        ]
        functions, weights = zip(*operations, strict=True)
        offline_until, offline = 0.0, False
        while not self.stopping():
            self.rng.choices(functions, weights)[0]()
            roll = self.rng.random()
            now = time.monotonic()
            if offline and now >= offline_until:
                offline = False
                self.go_offline(False)
            if self.reattach.is_set():
                self.reattach.clear()
                self.stop_background()
                self.attach()
                self.restart_background()
            if roll < 0.02 and not offline:
                offline_until, offline = now + self.rng.uniform(2.0, 10.0), True
                self.go_offline(True)
                self.log("offline", seconds=round(offline_until - now, 2))
            elif roll < 0.025 and not offline:
                self.detach_and_attach()
                self.restart_background()
            elif roll < 0.3 and self.background:
                time.sleep(self.rng.uniform(0.0, 0.3))  # the app idles; its loop syncs
            elif roll < 0.3 and not offline:
                self.sync()
            time.sleep(self.rng.uniform(0.0, 0.05))
        self.stop_background()  # the drain below is the foreground's, the same for every device
        self.quiesce()

    def quiesce(self) -> None:
        while not self.sync():
            time.sleep(0.3)
        self.log("drained")
        (self.run_dir / f"{self.name}.drained").touch()
        while not (self.run_dir / "final").exists():
            time.sleep(0.1)
        while not self.sync():
            time.sleep(0.3)
        self.log("final", rows=device_rows(self.db), last_seq=self.client.last_bundle_seq_seen())
        self.client.close()


def _text_key(key: Any) -> str:
    return str(uuid.UUID(bytes=key)) if isinstance(key, bytes) else str(key)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--device", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--jwt-secret", required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--incarnation", type=int, default=0)
    parser.add_argument("--shared-rows", type=int, default=3)
    parser.add_argument("--max-blob", type=int, default=20000)
    parser.add_argument(
        "--background-share", type=float, default=0.5, help="incarnations on background sync"
    )
    Device(parser.parse_args(argv)).run()


if __name__ == "__main__":
    main()
