"""CPU time and memory of process trees, read from /proc (through psutil where it has the field).

The machine is shared, so cost is process CPU time (utime + stime), never wall clock: a server
with worker processes is the sum over its whole tree, and children that already exited count
through their parent's `children_*` times. Peak memory is VmHWM after a `clear_refs` reset.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of `pid` and all its descendants, living or reaped."""
    if pid is None:
        return 0.0
    total = 0.0
    for process in _tree(pid):
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def own_cpu_seconds() -> float:
    """CPU seconds of this process (all its threads): what the load generator cost."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _status_kib(pid: int, field: str) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def rss_mib(pid: int) -> float:
    """Current resident memory of the tree (sum over its processes), MiB."""
    return sum(_status_kib(p.pid, "VmRSS") for p in _tree(pid)) / 1024


def reset_peak(pid: int) -> None:
    """Peak RSS := current RSS, for every process of the tree (needs /proc/<pid>/clear_refs)."""
    for process in _tree(pid):
        try:
            Path(f"/proc/{process.pid}/clear_refs").write_text("5")
        except OSError:
            pass


def peak_mib(pid: int) -> float:
    """VmHWM summed over the tree, MiB: since start, or since the last `reset_peak`."""
    return sum(_status_kib(p.pid, "VmHWM") for p in _tree(pid)) / 1024


def own_rss_mib() -> float:
    """This process's resident memory alone, MiB (not the servers it started as children)."""
    return _status_kib(os.getpid(), "VmRSS") / 1024


def own_peak_mib() -> float:
    """This process's VmHWM alone, MiB: since start, or since `reset_peak(os.getpid())` (which
    also resets its children's; they are not counted here)."""
    return _status_kib(os.getpid(), "VmHWM") / 1024


@dataclass
class Usage:
    """What one measured stretch cost: wall seconds and CPU seconds of each side."""

    wall: float = 0.0
    server_cpu: float = 0.0
    db_cpu: float | None = None
    client_cpu: float = 0.0


@contextmanager
def metered(server_pid: int | None, db_pid: int | None) -> Iterator[Usage]:
    """Fill a `Usage` with the deltas over the `with` block."""
    usage = Usage()
    server0, db0 = cpu_seconds(server_pid), cpu_seconds(db_pid)
    client0, wall0 = own_cpu_seconds(), time.perf_counter()
    try:
        yield usage
    finally:
        usage.wall = time.perf_counter() - wall0
        usage.client_cpu = own_cpu_seconds() - client0
        usage.server_cpu = cpu_seconds(server_pid) - server0
        usage.db_cpu = None if db_pid is None else cpu_seconds(db_pid) - db0
