"""examples/schema_change.py converges, starting its own throwaway PostgreSQL and server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from serverproc import REPO_ROOT


def test_schema_change_example_converges(tmp_path: Path) -> None:
    script = REPO_ROOT / "examples" / "schema_change.py"
    done = subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "laptop: push committed (the server filled pinned = false)" in out
    assert "phone: pull applied_incremental (the new column is ignored)" in out
    assert "re-hydrating ['posts'] at the next sync, 1 change(s) still pending" in out
    assert "converged: True; pinned values [0, 1, 0]" in out
    # The old app said once per client that it ignores the new column.
    assert done.stderr.count("ignoring server column(s) ['pinned'] of posts") == 2
