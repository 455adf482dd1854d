"""What one client can cost everyone else: the server bounds, measured on a real server process.

    python -m bench.bounds [--admin-dsn URL]

Each figure is read from /proc of the server process (RSS, peak RSS after a `clear_refs` reset)
or timed from a second client while the first one misbehaves:

* a malformed push chunk of 1,000,000 rows of `{"a":1}` (8 MB, valid token): time to the answer,
  server peak RSS growth, and the slowest `/syncx/health` answer meanwhile;
* fairness: one user's 20,000-row commit plus 12 writers of the same user queued behind it, while
  another user pulls: that pull's slowest latency;
* an 80,000-row commit: server peak RSS growth.

The same behaviours are asserted with generous bounds by the test suite (tests/test_http_bounds.py,
tests/test_fairness.py, tests/test_bundle_memory.py); this prints the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx

from bench import procstat
from bench.serving import SECRET, admin_dsn, database, server
from oversync_server.auth import sign_token
from oversync_server.localpg import make_tempdir


def peak_growth_mib(pid: int, action: Callable[[], Any]) -> tuple[float, Any]:
    """Run `action`; the server's peak RSS growth over it (MiB) and its result."""
    before = procstat.rss_mib(pid)
    procstat.reset_peak(pid)  # peak RSS := current RSS
    result = action()
    return procstat.peak_mib(pid) - before, result


class Client:
    def __init__(self, base: str, user: str, source: str = "dev") -> None:
        token = sign_token(SECRET, user)
        self.http = httpx.Client(
            base_url=base,
            headers={"Authorization": f"Bearer {token}", "Oversync-Source-ID": source},
            timeout=300,
        )
        self.next_bundle = 1

    def ok(self, method: str, path: str, **kw: Any) -> Any:
        response = self.http.request(method, path, **kw)
        if response.status_code != 200:
            raise RuntimeError(f"{method} {path}: {response.status_code} {response.text[:300]}")
        return response.json()

    def connect(self) -> None:
        self.ok("POST", "/sync/connect", json={"has_local_pending_rows": False})

    def stage(self, rows: int) -> str:
        """A push session with `rows` user rows uploaded; its push_id."""
        push_id = str(
            self.ok(
                "POST",
                "/sync/push-sessions",
                json={"source_bundle_id": self.next_bundle, "planned_row_count": rows},
            )["push_id"]
        )
        self.next_bundle += 1
        for start in range(0, rows, 5000):
            count = min(5000, rows - start)
            self.ok(
                "POST",
                f"/sync/push-sessions/{push_id}/chunks",
                json={"start_row_ordinal": start, "rows": [_user_row() for _ in range(count)]},
            )
        return push_id

    def commit(self, push_id: str) -> Any:
        return self.ok("POST", f"/sync/push-sessions/{push_id}/commit")


def _user_row() -> dict[str, Any]:
    key = str(uuid.uuid4())
    return {
        "schema": "business",
        "table": "users",
        "key": {"id": key},
        "op": "INSERT",
        "base_row_version": 0,
        "payload": {"name": "u " + key[:8], "email": key + "@x.org"},
    }


class SlowestCall(threading.Thread):
    """Calls `request` back to back until stopped; keeps the slowest latency."""

    def __init__(self, request: Callable[[], httpx.Response]) -> None:
        super().__init__(daemon=True)
        self.request, self.slowest, self.calls = request, 0.0, 0
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            started = time.perf_counter()
            self.request().raise_for_status()
            self.slowest = max(self.slowest, time.perf_counter() - started)
            self.calls += 1
            time.sleep(0.02)

    def stop(self) -> float:
        self.stopping.set()
        self.join()
        return self.slowest


def malformed_chunk(base: str, pid: int) -> dict[str, float]:
    client = Client(base, "mallory")
    client.connect()
    push_id = client.ok(
        "POST", "/sync/push-sessions", json={"source_bundle_id": 1, "planned_row_count": 5000}
    )["push_id"]
    body = b'{"start_row_ordinal":0,"rows":[' + b",".join([b'{"a":1}'] * 1_000_000) + b"]}"
    health = SlowestCall(lambda: httpx.get(f"{base}/syncx/health", timeout=60))
    health.start()

    def send() -> tuple[float, int]:
        started = time.perf_counter()
        response = client.http.post(f"/sync/push-sessions/{push_id}/chunks", content=body)
        return time.perf_counter() - started, response.status_code

    growth, (seconds, status) = peak_growth_mib(pid, send)
    time.sleep(0.2)
    slowest_health = health.stop()
    if status != 400:
        raise RuntimeError(f"the malformed chunk was answered {status}")
    return {"seconds": seconds, "rss_growth_mib": growth, "slowest_health_s": slowest_health}


def fairness(base: str) -> dict[str, float]:
    reader = Client(base, "yves")
    reader.connect()
    reader.commit(reader.stage(1))
    writer = Client(base, "xavier")
    writer.connect()
    push_id = writer.stage(20_000)
    pulls = SlowestCall(lambda: reader.http.get("/sync/pull"))
    pulls.start()
    waiters = [
        threading.Thread(
            target=lambda n=n: Client(base, "xavier", f"dev-{n}").http.post(
                "/sync/connect", json={"has_local_pending_rows": False}
            )
        )
        for n in range(12)
    ]
    committing = threading.Thread(target=writer.commit, args=(push_id,))
    committing.start()
    time.sleep(0.05)
    for thread in waiters:
        thread.start()
    committing.join()
    for thread in waiters:
        thread.join()
    return {"other_user_pull_slowest_s": pulls.stop(), "pulls": float(pulls.calls)}


def big_commit(base: str, pid: int) -> dict[str, float]:
    client = Client(base, "bert")
    client.connect()
    push_id = client.stage(80_000)
    started = time.perf_counter()
    growth, _ = peak_growth_mib(pid, lambda: client.commit(push_id))
    return {"rss_growth_mib": growth, "seconds": time.perf_counter() - started}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.bounds", description=__doc__)
    parser.add_argument("--admin-dsn", default=os.environ.get("TEST_DATABASE_URL", ""))
    args = parser.parse_args(argv)
    log_dir = make_tempdir("oversync-bench-bounds-")
    try:
        with (
            admin_dsn(args.admin_dsn or None) as admin,
            database(admin) as dsn,
            server(dsn, log_dir) as served,
        ):
            figures = {
                "malformed 1M-row chunk": malformed_chunk(served.base, served.pid),
                "12 lock waiters + 20k-row commit": fairness(served.base),
                "80k-row commit": big_commit(served.base, served.pid),
            }
    finally:
        shutil.rmtree(log_dir, ignore_errors=True)
    for name, values in figures.items():
        shown = ", ".join(f"{key} {value:.3f}" for key, value in values.items())
        print(f"{name}: {shown}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
