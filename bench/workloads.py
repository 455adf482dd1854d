"""One measurement of one server: each function runs a workload once and returns its figures.

Every workload goes through real HTTP (bench/wire.py) and is metered with process CPU time of the
server's tree, of the database (when this run started it) and of the load generator itself.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from bench import procstat
from bench.serving import Served
from bench.wire import AsyncDevice, Device, Row, post_row, user_row

Figures = dict[str, float]


@dataclass
class Target:
    """A server under test: `key` is its column (A = this tree, B = --compare)."""

    key: str
    label: str
    served: Served
    dsn: str
    db_pid: int | None

    def meter(self) -> AbstractContextManager[procstat.Usage]:
        return procstat.metered(self.served.pid, self.db_pid)


def _per(value: float | None, count: float, scale: float) -> float | None:
    return None if value is None or count == 0 else value * scale / count


def _cost(figures: Figures, usage: procstat.Usage, count: float, unit: str, scale: float) -> None:
    """Add server/db/client CPU per `unit` (ms per bundle, µs per row) to `figures`."""
    for side, value in (
        ("server", usage.server_cpu),
        ("db", usage.db_cpu),
        ("client", usage.client_cpu),
    ):
        per = _per(value, count, scale)
        if per is not None:
            figures[f"{side}_cpu_{unit}"] = per


# ------------------------------------------------------------------------------ push


def push(
    target: Target, table: str, size: int, budget: float, min_runs: int, user: str, *, full: bool
) -> Figures:
    """Rows/s of one device pushing `size`-row bundles into business.`table` back to back
    (create + chunks + commit; `full` adds the committed-rows download). Posts reference an
    author the device pushed first, so their deferred FK is checked at every commit."""
    device = Device(target.served.base, user, "pusher")
    try:
        device.connect()
        author = user_row(0)
        if table == "posts":
            device.push([author])
        counter = 0

        def rows() -> list[Row]:
            nonlocal counter
            counter += size
            if table == "users":
                return [user_row(counter + i) for i in range(size)]
            return [post_row(counter + i, author["key"]["id"]) for i in range(size)]

        device.push(rows(), full=full)  # warm: this user's first bundle, statements prepared
        pushed, bundles, spent = 0, 0, 0.0
        with target.meter() as usage:
            started = time.perf_counter()
            while bundles < min_runs or time.perf_counter() - started < budget:
                batch = rows()
                begin = time.perf_counter()
                device.push(batch, full=full)
                spent += time.perf_counter() - begin
                pushed += size
                bundles += 1
        figures: Figures = {"rows_per_s": pushed / spent, "bundles": float(bundles)}
        _cost(figures, usage, bundles, "ms_per_bundle", 1e3)
        _cost(figures, usage, pushed, "us_per_row", 1e6)
        return figures
    finally:
        device.close()


# ------------------------------------------------------------------------------ concurrency


async def _concurrent(target: Target, devices: int, seconds: float, tag: str) -> Figures:
    clients = [AsyncDevice(target.served.base, f"{tag}-{n}", f"device-{n}") for n in range(devices)]
    try:
        await asyncio.gather(*(client.connect() for client in clients))
        await asyncio.gather(*(client.push([user_row(0)]) for client in clients))  # warm
        latencies: list[float] = []
        in_window = 0
        failures = 0

        async def run(client: AsyncDevice, deadline: float) -> None:
            nonlocal in_window, failures
            index = 1
            while time.perf_counter() < deadline:
                row = user_row(index)
                begin = time.perf_counter()
                try:
                    await client.push([row])
                except (RuntimeError, OSError):
                    failures += 1  # the same source_bundle_id is retried: a new session
                    continue
                end = time.perf_counter()
                latencies.append(end - begin)
                in_window += end <= deadline
                index += 1

        with target.meter() as usage:
            deadline = time.perf_counter() + seconds
            await asyncio.gather(*(run(client, deadline) for client in clients))
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    done = len(latencies)
    ordered = sorted(latencies)
    figures: Figures = {
        "bundles_per_s": in_window / seconds,
        "p50_ms": statistics.median(ordered) * 1e3 if ordered else 0.0,
        "p99_ms": ordered[min(done - 1, int(done * 0.99))] * 1e3 if ordered else 0.0,
        "bundles": float(done),
        "failures": float(failures),
    }
    # the tail (bundles in flight at the deadline) is inside the metered stretch and counted
    _cost(figures, usage, done, "ms_per_bundle", 1e3)
    return figures


def concurrency(target: Target, devices: int, seconds: float, tag: str) -> Figures:
    """`devices` concurrent devices, each its own user and connection, pushing 1-row bundles
    (create + chunk + commit) back to back for `seconds`: bundles/s, latency, CPU per bundle."""
    return asyncio.run(_concurrent(target, devices, seconds, tag))


# ------------------------------------------------------------------------------ pull, snapshot


def seed(target: Target, user: str, bundles: int, rows_per_bundle: int) -> None:
    """Give `user` `bundles` committed bundles of `rows_per_bundle` user rows (not measured)."""
    device = Device(target.served.base, user, "seeder")
    try:
        device.connect()
        for bundle in range(bundles):
            start = bundle * rows_per_bundle
            device.push([user_row(start + i) for i in range(rows_per_bundle)])
    finally:
        device.close()


def _peak(target: Target, figures: Figures, action: Callable[[], None]) -> None:
    """Run `action`; add the server tree's RSS before and its peak meanwhile (MiB)."""
    pid = target.served.pid
    before = procstat.rss_mib(pid)
    procstat.reset_peak(pid)
    action()
    peak = procstat.peak_mib(pid)
    figures["rss_before_mib"] = before
    figures["peak_rss_mib"] = peak
    figures["peak_growth_mib"] = peak - before


def pull(target: Target, user: str, budget: float, min_runs: int, expect: int) -> Figures:
    """Rows/s of a device pulling all of `user`'s bundles from checkpoint 0, repeated."""
    device = Device(target.served.base, user, "puller")
    try:
        device.connect()
        got = device.pull_all()  # warm
        if got != expect:
            raise RuntimeError(f"pull returned {got} rows, expected {expect}")
        figures: Figures = {}
        pulled, runs = 0, 0

        def repeat() -> None:
            nonlocal pulled, runs
            started = time.perf_counter()
            while runs < min_runs or time.perf_counter() - started < budget:
                pulled += device.pull_all()
                runs += 1

        with target.meter() as usage:
            _peak(target, figures, repeat)
        figures["rows_per_s"] = pulled / usage.wall
        _cost(figures, usage, pulled, "us_per_row", 1e6)
        return figures
    finally:
        device.close()


def snapshot(target: Target, user: str, page_rows: int, budget: float, min_runs: int) -> Figures:
    """Rows/s of creating a snapshot of `user`'s scope and paging through it, and the server's
    peak RSS meanwhile (VmHWM after a clear_refs reset)."""
    device = Device(target.served.base, user, "snapshotter")
    try:
        device.connect()
        figures: Figures = {}
        rows, runs = 0, 0

        def repeat() -> None:
            nonlocal rows, runs
            started = time.perf_counter()
            while runs < min_runs or time.perf_counter() - started < budget:
                rows += device.snapshot_all(page_rows)
                runs += 1

        with target.meter() as usage:
            _peak(target, figures, repeat)
        figures["rows_per_s"] = rows / usage.wall
        _cost(figures, usage, rows, "us_per_row", 1e6)
        return figures
    finally:
        device.close()
