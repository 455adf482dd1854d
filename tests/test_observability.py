"""Request ids, the request log lines and `/metrics`, against real server processes (issue 13).

A server with `log_format: json` serves pushes, a replayed push, a conflict, a history_pruned
pull, a snapshot and front refusals; its `/metrics` must count exactly those, its log must hold
one JSON line per request with the reason of each refusal. Two processes sharing a
`PROMETHEUS_MULTIPROC_DIR` (what `--workers` sets up) must report the sum of both. Under plain
uvicorn the app's own request lines must still be printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from prometheus_client.parser import text_string_to_metric_families

from oversync_client.models import PushSessionAlreadyCommitted, SnapshotSession
from oversync_server.localpg import free_port
from protocol_helpers import (
    EXAMPLE_CONFIG,
    attach,
    config_file,
    expect_error,
    insert_user,
    parsed,
    pull_page,
    push_rows,
    row,
    snapshot_create,
    start_server,
)
from push_support import create, staging, upload
from serverproc import JWT_SECRET, REPO_ROOT, ServerProcess


def scrape(server: ServerProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of `/metrics`: (name, sorted labels) -> value."""
    response = httpx.get(f"{server.base_url}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def request_lines(server: ServerProcess) -> list[dict[str, Any]]:
    """The JSON request lines of the server's log."""
    assert server.log_path is not None
    lines = []
    for text in server.log_path.read_text(errors="replace").splitlines():
        if text.startswith("{"):
            entry = json.loads(text)
            if entry["logger"] == "oversync_server.requests":
                lines.append(entry)
    return lines


def test_metrics_and_json_logs_of_a_busy_server(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, retained_bundles_per_user=1, log_format="json")
    try:
        with server.client("alice") as client:
            attach(client, "dev-a")
            push_rows(client, "dev-a", 1, [insert_user("a")])
            push_rows(client, "dev-a", 2, [insert_user("b"), insert_user("c")])
            key = str(uuid.uuid4())
            third = push_rows(client, "dev-a", 3, [insert_user("d", user_id=key)])
            # a replayed push: its bundle exists, the create answers already_committed
            parsed(create(client, "dev-a", 3, 1), PushSessionAlreadyCommitted)
            # a conflict: an update based on a version that is not the row's (logged below)
            push_id = staging(client, "dev-a", 4, 1)
            stale = row("users", "UPDATE", key, {"name": "z"}, base=third.bundle_seq - 1)
            upload(client, "dev-a", push_id, 0, [stale])
            conflict = httpx.post(
                f"{server.base_url}/sync/push-sessions/{push_id}/commit",
                headers={
                    "Authorization": f"Bearer {server.token('alice')}",
                    "Oversync-Source-ID": "dev-a",
                    "X-Request-ID": "rejected-push-1",
                },
                timeout=10,
            )
            assert conflict.status_code == 409 and conflict.json()["error"] == "push_conflict"
            assert conflict.headers["x-request-id"] == "rejected-push-1"
            # a device behind the retained history (1 bundle kept)
            expect_error(pull_page(client, "dev-b", after=1), 409, "history_pruned")
            parsed(snapshot_create(client, "dev-a"), SnapshotSession)
        watch_headers = {
            "Authorization": f"Bearer {server.token('alice')}",
            "Oversync-Source-ID": "w",
        }
        with httpx.stream(
            "GET", f"{server.base_url}/sync/watch", headers=watch_headers, timeout=10
        ) as stream:
            assert stream.status_code == 200
            assert value(scrape(server), "oversync_watch_subscribers") == 1
        # without an incoming id the server makes one; an unusable one is replaced
        health = httpx.get(f"{server.base_url}/syncx/health", timeout=10)
        generated = health.headers["x-request-id"]
        assert len(generated) == 16 and int(generated, 16) >= 0
        odd = httpx.get(
            f"{server.base_url}/syncx/health", headers={"X-Request-ID": "x" * 500}, timeout=10
        )
        assert odd.headers["x-request-id"] not in ("", "x" * 500)
        # refused by the front, before the app: too many rows in a chunk (400 chunk guard)
        too_many = httpx.post(
            f"{server.base_url}/sync/push-sessions/{push_id}/chunks",
            json={"start_row_ordinal": 0, "rows": [{}] * 6000},
            headers={"Oversync-Source-ID": "dev-a", "X-Request-ID": "front-refusal"},
            timeout=30,
        )
        assert too_many.status_code == 400 and too_many.headers["x-request-id"] == "front-refusal"

        samples = scrape(server)
        assert value(samples, "oversync_push_commits_total") == 3
        assert value(samples, "oversync_push_rows_committed_total") == 4
        assert value(samples, "oversync_push_conflicts_total") == 1
        assert value(samples, "oversync_history_pruned_total") == 1
        assert value(samples, "oversync_retry_answers_total", kind="already_committed") == 1
        assert value(samples, "oversync_snapshot_sessions_created_total") == 1
        assert value(samples, "oversync_open_sessions", kind="snapshot") == 1
        assert value(samples, "oversync_open_sessions", kind="push") == 1  # the conflicted one
        assert value(samples, "oversync_push_commit_duration_seconds_count") == 3
        requests = "oversync_requests_total"
        assert value(samples, requests, operation="commitPushSession", status="200") == 3
        assert value(samples, requests, operation="commitPushSession", status="409") == 1
        assert value(samples, requests, operation="pull", status="409") == 1
        assert value(samples, requests, operation="uploadPushChunk", status="400") == 1
        errors = "oversync_request_errors_total"
        assert value(samples, errors, operation="pull", code="history_pruned") == 1
        assert value(samples, errors, operation="uploadPushChunk", code="push_chunk_invalid") == 1
        assert value(samples, "oversync_request_duration_seconds_count", operation="connect") == 1
        # connect, 4 creates (3 + the replay) + 1 for the conflicted one, 4 chunks, 4 commits
        assert value(samples, "oversync_user_lock_wait_seconds_count") >= 1 + 5 + 4 + 4
        assert value(samples, "oversync_db_pool_connections", state="max") == 10
        assert value(samples, "oversync_db_pool_connections", state="open") >= 1

        lines = request_lines(server)
        rejected = [line for line in lines if line["request_id"] == "rejected-push-1"]
        assert len(rejected) == 1  # one line per request, its reason once
        line = rejected[0]
        assert line["level"] == "info" and line["status"] == 409
        assert line["operation"] == "commitPushSession"
        assert line["path"] == f"/sync/push-sessions/{push_id}/commit"
        assert (line["user"], line["source"]) == ("alice", "dev-a")
        assert line["error"] == "push_conflict"
        assert line["error_message"].startswith("update conflict on business.users")
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
        front = next(line for line in lines if line["request_id"] == "front-refusal")
        assert (front["status"], front["error"]) == (400, "push_chunk_invalid")
        assert "6000" in front["error_message"] and front["user"] is None
        # every request has its line: the 3 pushes alone make 9
        assert sum(line["operation"] == "commitPushSession" for line in lines) == 4
        assert all(line["request_id"] for line in lines)
    finally:
        server.stop()


def test_metrics_can_be_turned_off(database_url: str, tmp_path: Path) -> None:
    server = start_server(database_url, tmp_path, metrics_enabled=False)
    try:
        response = httpx.get(f"{server.base_url}/metrics", timeout=10)
        assert response.status_code == 404 and response.json()["error"] == "not_found"
    finally:
        server.stop()


def test_worker_processes_share_their_metrics(database_url: str, tmp_path: Path) -> None:
    """Two processes with one PROMETHEUS_MULTIPROC_DIR: either one's scrape shows both."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    config = config_file(tmp_path)
    environment = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    first = ServerProcess(
        database_url, config=config, extra_args=("--example-schema",), env=environment
    ).start(tmp_path)
    second = ServerProcess(database_url, config=config, env=environment)
    try:
        second.start(tmp_path)
        for number, server in enumerate((first, second), 1):
            with server.client(f"user-{number}") as client:
                attach(client, "dev-a")
                push_rows(client, "dev-a", 1, [insert_user(), insert_user()])
        for server in (first, second):
            samples = scrape(server)
            assert value(samples, "oversync_push_commits_total") == 2
            assert value(samples, "oversync_push_rows_committed_total") == 4
            assert value(samples, "oversync_db_pool_connections", state="max") == 20
            connects = value(samples, "oversync_requests_total", operation="connect", status="200")
            assert connects == 2
        second.stop()  # its live gauges (pool connections) stop counting
        assert value(scrape(first), "oversync_db_pool_connections", state="max") == 10
        assert value(scrape(first), "oversync_push_commits_total") == 2  # counters stay
    finally:
        second.stop()
        first.stop()


async def test_request_lines_under_plain_uvicorn(database_url: str, tmp_path: Path) -> None:
    """`uvicorn module:app` configures only its own loggers: the app's lines still appear."""
    schema = (EXAMPLE_CONFIG.parent / "schema.sql").read_text(encoding="utf-8")
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(schema)
    finally:
        await connection.close()
    (tmp_path / "plain_app.py").write_text(
        "import os\n"
        "from pathlib import Path\n"
        "from oversync_server.app import create_application\n"
        "from oversync_server.auth import JWTAuthenticator\n"
        "from oversync_server.config import load_config\n"
        "from oversync_server.runtime import SyncRuntime\n"
        f"config = load_config(Path({str(EXAMPLE_CONFIG)!r}))\n"
        "runtime = SyncRuntime(config=config, database_url=os.environ['DATABASE_URL'])\n"
        "app = create_application(runtime, JWTAuthenticator(os.environ['OVERSYNC_JWT_SECRET']))\n",
        encoding="utf-8",
    )
    port = free_port()
    log_path = tmp_path / "uvicorn.log"
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "OVERSYNC_JWT_SECRET": JWT_SECRET,
        "PYTHONPATH": str(tmp_path),
    }
    command = [sys.executable, "-m", "uvicorn", "plain_app:app", "--port", str(port)]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO_ROOT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{url}/syncx/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        refused = httpx.get(
            f"{url}/sync/capabilities",
            headers={"Authorization": "Bearer nope", "X-Request-ID": "plain-1"},
            timeout=10,
        )
        assert refused.status_code == 401
    finally:
        process.terminate()
        process.wait(timeout=30)
    output = log_path.read_text()
    line = next(text for text in output.splitlines() if "request_id=plain-1" in text)
    assert line.startswith("INFO oversync_server.requests: GET /sync/capabilities 401")
    assert "error=authentication_failed: Invalid token: malformed token" in line
    assert "sync schema created" in output  # the app's start-up lines too
