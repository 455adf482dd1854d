"""The wheel stands alone: built from this tree, installed into a fresh venv with the `server`
extra, `oversync-server serve` runs outside the repository against a real database, with the
example schema it carries as package data."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx

from oversync_server.auth import sign_token
from oversync_server.localpg import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
SECRET = "wheel-test-secret"


def _build_wheel(out: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), "."],
        cwd=REPO_ROOT,
        check=True,
        timeout=600,
    )
    (wheel,) = out.glob("oversync-*.whl")
    return wheel


def test_the_installed_wheel_serves_a_real_database(tmp_path: Path, database_url: str) -> None:
    wheel = _build_wheel(tmp_path / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "oversync_server/examples/business/schema.sql" in names
    assert "oversync_server/examples/business/config.yaml" in names

    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    bin_dir = tmp_path / "venv" / "bin"
    pip = [bin_dir / "python", "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"{wheel}[server]"], check=True, timeout=900)
    port = free_port()
    workdir = tmp_path / "elsewhere"  # not the repository: nothing may be read from it
    workdir.mkdir()
    environment = {
        key: value for key, value in os.environ.items() if key not in ("PYTHONPATH", "VIRTUAL_ENV")
    }
    environment["OVERSYNC_JWT_SECRET"] = SECRET
    log = (tmp_path / "server.log").open("wb")
    command = [bin_dir / "oversync-server", "serve", "--database-url", database_url]
    server = subprocess.Popen(
        [*command, "--port", str(port), "--example-schema", "--log-level", "warning"],
        cwd=workdir,
        env=environment,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()
            try:
                if httpx.get(f"{base}/syncx/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "server.log").read_text()
            time.sleep(0.1)
        headers = {
            "Authorization": f"Bearer {sign_token(SECRET, 'alice')}",
            "Oversync-Source-ID": "dev",
        }
        capabilities = httpx.get(f"{base}/sync/capabilities", headers=headers, timeout=10)
        assert capabilities.status_code == 200, capabilities.text
        assert "business.users" in capabilities.json()["registered_tables"]
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert server.returncode == 0, (tmp_path / "server.log").read_text()
