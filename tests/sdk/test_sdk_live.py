"""examples/live_sync.py and examples/async_app.py against a real server process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serverproc import JWT_SECRET, REPO_ROOT, ServerProcess


def _run_example(name: str, server: ServerProcess, cwd: Path) -> subprocess.CompletedProcess[str]:
    script = REPO_ROOT / "examples" / name
    return subprocess.run(
        [sys.executable, str(script), "--base-url", server.base_url, "--jwt-secret", JWT_SECRET],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )


def test_live_sync_example_delivers_writes_without_sync_calls(
    server: ServerProcess, tmp_path: Path
) -> None:
    done = _run_example("live_sync.py", server, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "[laptop] watching" in done.stdout and "[phone] watching" in done.stdout
    assert done.stdout.count("(no sync() call)") == 6
    assert "converged: True, 6 users on each device" in done.stdout


def test_async_app_example_works_inside_an_event_loop(
    server: ServerProcess, tmp_path: Path
) -> None:
    done = _run_example("async_app.py", server, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "desk has 3010 users, tablet has 3010" in done.stdout
    assert "FAILED" not in done.stdout
