"""Live sync: two devices with background sync on; a write on one shows up on the other.

Neither device calls ``sync()``: ``client.start(watch=True)`` pushes soon after each local write
and pulls as soon as the server's ``/sync/watch`` stream announces a bundle. The example exits 0
only when every write reached the other device within 2 seconds.

    python examples/live_sync.py --base-url http://127.0.0.1:8080 --jwt-secret SECRET

``--base-url`` / ``--jwt-secret`` default to ``OVERSYNC_BASE_URL`` / ``OVERSYNC_JWT_SECRET``
(``make serve`` listens on http://127.0.0.1:8080).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from oversqlite import Client, ClientConfig, EventKind, SyncEvent

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    created_at TEXT, updated_at TEXT);
"""
CONFIG = ClientConfig(schema="business", tables=["users"])
DEV_SECRET = "oversync-dev-secret-change-me"  # what `oversync-server serve` uses when unset
DEADLINE = 2.0  # seconds for a write to reach the other device


def sign_token(secret: str, user: str, lifetime: int = 3600) -> str:
    """An HS256 JWT whose `sub` is the user id, as the example server expects."""

    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    now = int(time.time())
    header = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64(json.dumps({"sub": user, "iat": now, "exp": now + lifetime}).encode())
    signature = hmac.new(secret.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    return f"{header}.{claims}.{b64(signature)}"


class Device:
    def __init__(self, name: str, folder: Path, base_url: str, token: Callable[[], str]) -> None:
        self.name = name
        path = folder / f"{name}.db"
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.executescript(SCHEMA)
        self.client = Client(path, CONFIG, base_url=base_url, token=token).open()

    def on_event(self, event: SyncEvent) -> None:
        if event.kind in (EventKind.WATCHING, EventKind.POLLING, EventKind.OFFLINE):
            print(f"  [{self.name}] {event.kind}", flush=True)
        elif event.kind in (EventKind.ERROR, EventKind.CHANGE_REJECTED):
            print(f"  [{self.name}] {event.kind}: {event.error}", flush=True)

    def names(self) -> set[str]:
        return {name for (name,) in self.db.execute("SELECT name FROM users")}

    def wait_for(self, name: str, timeout: float) -> float | None:
        """Seconds until ``name`` appears locally, or None after ``timeout``."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if name in self.names():
                return time.monotonic() - started
            time.sleep(0.02)
        return None


def wait_watching(*devices: Device, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(d.client.background and d.client.background.watching for d in devices):
            return True
        time.sleep(0.05)
    return False


def run(base_url: str, secret: str, folder: Path) -> bool:
    user = f"live-{uuid.uuid4().hex[:6]}"  # a fresh account on every run
    token = lambda: sign_token(secret, user)  # noqa: E731 - called for every request
    laptop = Device("laptop", folder, base_url, token)
    phone = Device("phone", folder, base_url, token)
    devices = (laptop, phone)
    try:
        for device in devices:
            print(f"{device.name}: attach {device.client.attach(user).outcome}")
            device.client.start(watch=True, on_event=device.on_event)
        if not wait_watching(*devices):
            print("the watch streams did not open (is bundle_change_watch on?)")
            return False
        ok = True
        for round_ in range(3):
            for writer, reader in ((laptop, phone), (phone, laptop)):
                name = f"{writer.name} write {round_}"
                writer.db.execute(
                    "INSERT INTO users (id, name, email) VALUES (?, ?, ?)",
                    (str(uuid.uuid4()), name, f"{uuid.uuid4().hex[:8]}@example.com"),
                )
                took = reader.wait_for(name, DEADLINE)
                if took is None:
                    print(f"{name!r} did NOT reach {reader.name} within {DEADLINE}s")
                    ok = False
                else:
                    print(f"{name!r} reached {reader.name} after {took:.2f}s (no sync() call)")
        converged = laptop.names() == phone.names()
        print(f"converged: {converged}, {len(laptop.names())} users on each device")
        return ok and converged
    finally:
        for device in devices:
            device.client.close()  # stops the background sync
            device.db.close()


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
    with tempfile.TemporaryDirectory(prefix="oversync-live-") as folder:
        ok = run(args.base_url, args.jwt_secret, Path(folder))
    print("live sync works" if ok else "live sync FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
