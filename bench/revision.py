"""An older revision of the project, materialised beside the work tree to be measured with it.

`git archive REV | tar -x` into a temp dir: read-only for the repository (no checkout, no
worktree, no index change), and the revision's server then runs from that copy with the same
virtualenv (bench/serving.py puts the copy's folders first on PYTHONPATH).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bench.serving import REPO_ROOT


@dataclass(frozen=True)
class Revision:
    commit: str  # full id
    short: str
    subject: str
    tree: Path  # where its files are


def _git(*args: str) -> str:
    done = subprocess.run(
        ["git", "--no-optional-locks", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def describe_work_tree() -> str:
    """`<short HEAD>` plus `+changes` when tracked files differ from it (read-only)."""
    try:
        head = _git("rev-parse", "--short", "HEAD")
        dirty = _git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "work tree"
    return f"{head}+changes" if dirty else head


@contextmanager
def materialised(rev: str) -> Iterator[Revision]:
    """The files of `rev` (any commit-ish) in a temp dir, removed afterwards."""
    try:
        commit = _git("rev-parse", "--verify", f"{rev}^{{commit}}")
    except subprocess.CalledProcessError as error:
        raise SystemExit(f"--compare {rev}: not a commit ({error.stderr.strip()})") from None
    short = _git("rev-parse", "--short", commit)
    subject = _git("log", "-1", "--format=%s", commit)
    root = Path(tempfile.mkdtemp(prefix=f"oversync-bench-{short}-"))
    try:
        archive = subprocess.Popen(
            ["git", "archive", "--format=tar", commit], cwd=REPO_ROOT, stdout=subprocess.PIPE
        )
        assert archive.stdout is not None
        subprocess.run(["tar", "-x", "-C", str(root)], stdin=archive.stdout, check=True)
        archive.stdout.close()
        if archive.wait() != 0:
            raise RuntimeError(f"git archive {commit} failed")
        yield Revision(commit, short, subject, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
