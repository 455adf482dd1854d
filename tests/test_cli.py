"""`oversync-server serve` without a database URL: its own persistent PostgreSQL on a stable port,
a clean Ctrl-C; `db-url` for psql, `db-stop`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from oversync_server.auth import verify_token
from oversync_server.localpg import free_port, make_tempdir
from serverproc import JWT_SECRET


def _serve(pgdata: str, port: int, pgport: int) -> subprocess.Popen[str]:
    environment = {
        **os.environ,
        "OVERSYNC_PGDATA": pgdata,
        "OVERSYNC_PGPORT": str(pgport),
        "OVERSYNC_JWT_SECRET": JWT_SECRET,
    }
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
    port, pgport = free_port(), free_port()
    process = _serve(pgdata, port, pgport)
    try:
        status = _wait_healthy(port, process)
        assert status["app_name"] == "oversync-py"
        assert len(status["registered_tables"]) == 8  # type: ignore[arg-type]
        assert _postmaster_running(pgdata)
    finally:
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert "oversync-server token --user alice" in output
    assert not _postmaster_running(pgdata), "Ctrl-C must stop the PostgreSQL serve started"

    # The data survives: a second start finds the bootstrapped sync schema and validates it.
    process = _serve(pgdata, port, pgport)
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


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environment = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DATABASE_URL", "OVERSYNC_DATABASE_URL")
    }
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "oversync_server.cli", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


def test_db_url_starts_the_local_database_on_its_stable_port_for_psql() -> None:
    pgdata = str(make_tempdir("oversync-dburl-") / "pgdata")
    pgport = free_port()
    env = {"OVERSYNC_PGDATA": pgdata, "OVERSYNC_PGPORT": str(pgport)}
    first = _cli("db-url", env=env)
    try:
        assert first.returncode == 0, first.stderr
        url = first.stdout.strip()
        assert url == f"postgresql://postgres@127.0.0.1:{pgport}/oversync"
        assert "it keeps running: `oversync-server db-stop` stops it" in first.stderr
        # psql "$(oversync-server db-url)" -f my_schema.sql
        schema = Path(pgdata).parent / "my_schema.sql"
        schema.write_text("CREATE TABLE mine (id uuid PRIMARY KEY);\n")
        shell = subprocess.run(
            ["sh", "-c", f'psql "$({sys.executable} -m oversync_server.cli db-url)" -f {schema}'],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=60,
        )
        assert shell.returncode == 0 and "CREATE TABLE" in shell.stdout, shell.stderr
        again = _cli("db-url", env=env)  # running: the same URL, nothing started
        assert again.stdout.strip() == url and "started" not in again.stderr
    finally:
        stopped = _cli("db-stop", env=env)
    assert stopped.returncode == 0 and "stopped the local PostgreSQL" in stopped.stdout
    assert not _postmaster_running(pgdata)
    assert "no local PostgreSQL is running" in _cli("db-stop", env=env).stdout
    shutil.rmtree(Path(pgdata).parent)


def test_db_url_prints_the_configured_database() -> None:
    result = _cli("db-url", env={"OVERSYNC_DATABASE_URL": "postgresql://db.example/app"})
    assert result.returncode == 0 and result.stdout == "postgresql://db.example/app\n"


def test_a_busy_local_database_port_stops_serve_with_a_clear_error() -> None:
    pgdata = str(make_tempdir("oversync-busy-") / "pgdata")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        env = {"OVERSYNC_PGDATA": pgdata, "OVERSYNC_PGPORT": str(taken)}
        result = _cli("serve", "--port", str(free_port()), env=env)
    shutil.rmtree(Path(pgdata).parent)
    assert result.returncode == 2
    assert f"port {taken} on 127.0.0.1 is in use by another program" in result.stderr
    assert "set OVERSYNC_PGPORT to a free port" in result.stderr
