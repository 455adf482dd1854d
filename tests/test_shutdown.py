"""Graceful shutdown (issue 9, item 5), end to end on a real server process: SIGTERM lets an
in-flight commit finish (and a retry finds it committed), answers a request that arrives during
the drain 503, ends watch streams at once, and exits 0 without an ERROR in the log."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from oversync_client.models import PushCommitResponse
from protocol_helpers import attach, config_file, insert_user
from push_support import already, create, staging, upload
from serverproc import ServerProcess

COMMIT_ROWS = 60_000


def _stop_with_sigterm(server: ServerProcess, timeout: float = 60.0) -> float:
    """Send SIGTERM and wait for the exit (asserting code 0); how long the exit took."""
    assert server.process is not None
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=timeout)
    assert server.process.returncode == 0, server.log()
    return time.monotonic() - started


def _assert_clean_log(server: ServerProcess) -> None:
    log = server.log_path.read_text(errors="replace") if server.log_path else ""
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]


def _start(database_url: str, directory: Path, workers: int, **overrides: Any) -> ServerProcess:
    config = config_file(directory, **overrides)
    server = ServerProcess(
        database_url, config=config, extra_args=("--example-schema",), workers=workers
    )
    return server.start(directory)


# One process, and a supervisor whose workers each drain (serve --workers 2).
by_workers = pytest.mark.parametrize("workers", [1, 2])


@by_workers
def test_sigterm_lets_an_in_flight_commit_finish(
    database_url: str, tmp_path: Path, workers: int
) -> None:
    server = _start(database_url, tmp_path, workers, shutdown_grace_seconds=30.0)
    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
            push_id = staging(client, "dev-a", 1, COMMIT_ROWS)
            rows = [insert_user(name=f"u{index}") for index in range(COMMIT_ROWS)]
            for start in range(0, COMMIT_ROWS, 5000):
                upload(client, "dev-a", push_id, start, rows[start : start + 5000])

        # A request whose body is still on its way when the drain begins: answered 503.
        late = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        body = json.dumps({"has_local_pending_rows": False}).encode()
        late.sendall(
            b"POST /sync/connect HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {server.token('bob')}\r\nOversync-Source-ID: b\r\n".encode()
            + f"Content-Length: {len(body)}\r\n\r\n".encode()
        )

        outcome: dict[str, Any] = {}

        def commit() -> None:
            response = httpx.post(
                f"{server.base_url}/sync/push-sessions/{push_id}/commit",
                headers={
                    "Authorization": f"Bearer {server.token('alice')}",
                    "Oversync-Source-ID": "dev-a",
                },
                timeout=120,
            )
            outcome["response"] = response
            outcome["at"] = time.monotonic()

        committing = threading.Thread(target=commit)
        committing.start()
        time.sleep(0.3)  # the commit is running
        assert server.process is not None
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)  # the drain has begun
        late.sendall(body)
        late.settimeout(30)
        answer = b""
        while part := late.recv(65536):  # until the server closes the connection
            answer += part
        late.close()
        committing.join(timeout=120)
        print(f"\ncommit answered {outcome['at'] - signalled:.2f}s after SIGTERM")
        server.process.wait(timeout=60)
        assert server.process.returncode == 0, server.log()
    finally:
        server.stop()

    response = outcome["response"]
    assert response.status_code == 200, response.text
    assert outcome["at"] > signalled, "the commit must still have been running at SIGTERM"
    committed = PushCommitResponse.from_dict(response.json())
    assert committed.row_count == COMMIT_ROWS
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 503"), answer[:300]
    assert b"retry-after: 1" in head.lower()
    assert json.loads(payload)["error"] == "service_unavailable"
    _assert_clean_log(server)

    # After a restart the same source bundle is already committed.
    again = ServerProcess(database_url, config=server.config, extra_args=server.extra_args)
    again.start(tmp_path)
    try:
        with again.client("alice") as client:
            retried = already(create(client, "dev-a", 1, COMMIT_ROWS))
            assert retried.bundle_seq == committed.bundle_seq
    finally:
        again.stop()


@by_workers
def test_sigterm_ends_watch_streams_at_once(
    database_url: str, tmp_path: Path, workers: int
) -> None:
    server = _start(database_url, tmp_path, workers, shutdown_grace_seconds=30.0)
    ended = threading.Event()
    opened = threading.Event()

    def watch() -> None:
        headers = {"Authorization": f"Bearer {server.token('alice')}", "Oversync-Source-ID": "w"}
        with httpx.stream(
            "GET", f"{server.base_url}/sync/watch", headers=headers, timeout=None
        ) as response:
            assert response.status_code == 200
            opened.set()
            try:
                for _ in response.iter_lines():
                    pass
            except httpx.TransportError:
                pass
        ended.set()

    try:
        with server.client("alice") as client:
            attach(client, "w")
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        assert opened.wait(10)
        took = _stop_with_sigterm(server)
    finally:
        server.stop()
    assert ended.wait(5), "the watch stream must end when the server stops"
    assert took < 10, f"stopping took {took:.1f}s: a watch stream is not in-flight work"
    _assert_clean_log(server)
