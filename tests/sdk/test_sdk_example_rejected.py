"""examples/rejected_change.py runs against a real server and exits 0 only when it worked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serverproc import JWT_SECRET, REPO_ROOT, ServerProcess


def test_rejected_change_example(server: ServerProcess, tmp_path: Path) -> None:
    script = REPO_ROOT / "examples" / "rejected_change.py"
    done = subprocess.run(
        [sys.executable, str(script), "--base-url", server.base_url, "--jwt-secret", JWT_SECRET],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rejected: DELETE users" in done.stdout and "FAILED" not in done.stdout
    assert done.stdout.rstrip().endswith("done")
