"""`oversync-server serve` without a database URL: its own persistent PostgreSQL, a clean Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx

from oversync_server.auth import verify_token
from oversync_server.localpg import free_port, make_tempdir
from serverproc import JWT_SECRET


def _serve(pgdata: str, port: int) -> subprocess.Popen[str]:
    environment = {**os.environ, "OVERSYNC_PGDATA": pgdata, "OVERSYNC_JWT_SECRET": JWT_SECRET}
    environment.pop("DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "oversync_server.cli", "serve", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=environment,
    )


def _wait_healthy(port: int, process: subprocess.Popen[str]) -> dict[str, object]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read() if process.stdout else ""
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/syncx/health", timeout=1)
            if response.status_code == 200:
                body: dict[str, object] = response.json()
                return body
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError("server did not become healthy")


def _postmaster_running(pgdata: str) -> bool:
    return os.path.exists(os.path.join(pgdata, "postmaster.pid"))


def test_serve_starts_its_own_database_and_stops_cleanly_on_ctrl_c() -> None:
    pgdata = str(make_tempdir("oversync-serve-") / "pgdata")
    port = free_port()
    process = _serve(pgdata, port)
    try:
        status = _wait_healthy(port, process)
        assert status["app_name"] == "nethttp-server-example"
        assert len(status["registered_tables"]) == 8  # type: ignore[arg-type]
        assert _postmaster_running(pgdata)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "oversync-server token --user alice" in output
    assert not _postmaster_running(pgdata), "Ctrl-C must stop the PostgreSQL serve started"

    # The data survives: a second start finds the bootstrapped sync schema and validates it.
    process = _serve(pgdata, port)
    try:
        _wait_healthy(port, process)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "sync schema created" not in output


def test_token_command_issues_a_verifiable_jwt() -> None:
    environment = {**os.environ, "OVERSYNC_JWT_SECRET": JWT_SECRET}
    token = subprocess.run(
        [sys.executable, "-m", "oversync_server.cli", "token", "--user", "alice"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    ).stdout.strip()
    assert verify_token(JWT_SECRET, token)["sub"] == "alice"
