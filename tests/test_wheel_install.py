"""The wheel stands alone: built from this tree, installed into a fresh venv with the `server`
extra by deploy/Containerfile's own pip line, `oversync-server serve` runs outside the
repository against a real database, with the example schema it carries as package data; and
deploy/oversync-server.service verifies with that install (`systemd-analyze verify`, its
ExecStart answering `--help`)."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

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


DEPLOY = REPO_ROOT / "deploy"


def _containerfile_pip_line() -> str:
    """The Containerfile's `RUN pip install ...` command."""
    text = (DEPLOY / "Containerfile").read_text(encoding="utf-8")
    (line,) = [line for line in text.splitlines() if line.startswith("RUN pip install")]
    return line.removeprefix("RUN ")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with the built wheel installed by the Containerfile's pip line: its bin."""
    root = tmp_path_factory.mktemp("wheel")
    wheel = _build_wheel(root / "dist")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "oversync_server/examples/business/schema.sql" in names
    assert "oversync_server/examples/business/config.yaml" in names
    venv.EnvBuilder(with_pip=True).create(root / "venv")
    bin_dir = root / "venv" / "bin"
    command = _containerfile_pip_line().replace("/tmp/dist", str(root / "dist"))
    environment = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    subprocess.run(["bash", "-ec", command], check=True, timeout=900, env=environment)
    assert not (root / "dist").exists()  # the line cleans up after itself
    return bin_dir


def test_the_installed_wheel_serves_a_real_database(
    installed: Path, tmp_path: Path, database_url: str
) -> None:
    bin_dir = installed
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


def test_the_systemd_unit_verifies_and_its_command_runs(installed: Path, tmp_path: Path) -> None:
    unit = (DEPLOY / "oversync-server.service").read_text(encoding="utf-8")
    (exec_start,) = re.findall(r"^ExecStart=(.+)$", unit, flags=re.M)
    program, *arguments = shlex.split(exec_start)
    assert program == "/opt/oversync/bin/oversync-server" and arguments[0] == "serve"
    local = unit.replace(program, str(installed / "oversync-server"))
    (tmp_path / "oversync-server.service").write_text(local, encoding="utf-8")
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:  # Debian's systemd; not in every container
        verified = subprocess.run(
            [analyze, "verify", str(tmp_path / "oversync-server.service")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert verified.returncode == 0, verified.stderr
    helped = subprocess.run(
        [installed / "oversync-server", *arguments, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert helped.returncode == 0 and "OVERSYNC_DATABASE_URL" in helped.stdout, helped.stderr
