"""examples/two_devices.py runs against a real server and reports convergence."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serverproc import JWT_SECRET, REPO_ROOT, ServerProcess


def test_two_devices_example_converges(server: ServerProcess, tmp_path: Path) -> None:
    script = REPO_ROOT / "examples" / "two_devices.py"
    done = subprocess.run(
        [sys.executable, str(script), "--base-url", server.base_url, "--jwt-secret", JWT_SECRET],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "conflict on posts" in done.stdout and "keep_merged" in done.stdout
    assert "converged: True" in done.stdout
    assert "detached=True" in done.stdout
