"""Prometheus metrics of the sync server, served at `GET /metrics` (docs/server/monitoring.md).

The request-level figures are recorded by `observability` from what each request answered (its
operation, status, error code and, for a few small bodies, what they say); the user-lock wait
comes from the pool (`SyncPool.on_user_lock_wait`), the pool figures from a refresh every few
seconds, the open sessions from the database at each scrape (cluster-wide).

With several worker processes, `PROMETHEUS_MULTIPROC_DIR` (set before the workers start, empty
at the supervisor's start) switches prometheus_client to its multiprocess mode: every process
writes its values to files there and a scrape, answered by any worker, sums them. The gauges of
live things (watch streams, pool connections) count live processes only ("livesum"): a worker
that stops marks its files dead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily, Metric

from oversync_server.runtime import SyncRuntime

log = logging.getLogger("oversync_server")

MULTIPROCESS_DIR = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
CONTENT_TYPE = CONTENT_TYPE_LATEST
POOL_REFRESH_SECONDS = 5.0
# no `_created` series beside every counter and histogram
disable_created_metrics()  # type: ignore[no-untyped-call]
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REQUESTS = Counter(
    "oversync_requests", "HTTP requests answered, by operation and status", ["operation", "status"]
)
REQUEST_SECONDS = Histogram(
    "oversync_request_duration_seconds",
    "Time to answer a request, by operation (watch streams excluded)",
    ["operation"],
    buckets=_LATENCY_BUCKETS,
)
ERRORS = Counter(
    "oversync_request_errors",
    "ErrorResponse answers, by operation and error code",
    ["operation", "code"],
)
PUSH_COMMITS = Counter("oversync_push_commits", "Bundles committed by push commits")
ROWS_COMMITTED = Counter("oversync_push_rows_committed", "Rows of the bundles committed by push")
COMMIT_SECONDS = Histogram(
    "oversync_push_commit_duration_seconds",
    "Time to answer a successful push commit",
    buckets=_LATENCY_BUCKETS,
)
CONFLICTS = Counter("oversync_push_conflicts", "Push commits refused with 409 push_conflict")
HISTORY_PRUNED = Counter(
    "oversync_history_pruned", "Answers 409 history_pruned (a client behind the retained history)"
)
RETRIES = Counter(
    "oversync_retry_answers",
    "Answers about retries: already_committed (a replayed push), retry_later (connect while"
    " another source initializes), service_unavailable (503, retry after Retry-After)",
    ["kind"],
)
LOCK_WAIT_SECONDS = Histogram(
    "oversync_user_lock_wait_seconds",
    "A writer's wait for its user's lock (the per-user serialisation of writes)",
    buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0),
)
SNAPSHOT_SESSIONS = Counter("oversync_snapshot_sessions_created", "Snapshot sessions created")
WATCH_SUBSCRIBERS = Gauge(
    "oversync_watch_subscribers", "Open watch streams", multiprocess_mode="livesum"
)
POOL_CONNECTIONS = Gauge(
    "oversync_db_pool_connections",
    "PostgreSQL pool connections: open, in_use and max (summed over worker processes)",
    ["state"],
    multiprocess_mode="livesum",
)

# The labelled children of the per-request metrics, looked up once (`labels()` locks and
# builds its key on every call).
_request_counters: dict[tuple[str, int], Any] = {}
_request_timers: dict[str, Any] = {}


def request_counter(operation: str, status: int) -> Any:
    child = _request_counters.get((operation, status))
    if child is None:
        child = _request_counters[(operation, status)] = REQUESTS.labels(operation, str(status))
    return child


def request_timer(operation: str) -> Any:
    child = _request_timers.get(operation)
    if child is None:
        child = _request_timers[operation] = REQUEST_SECONDS.labels(operation)
    return child


_OPEN_SESSIONS = """
SELECT (SELECT count(*) FROM sync.push_sessions WHERE expires_at > now()),
       (SELECT count(*) FROM sync.snapshot_sessions WHERE expires_at > now())
"""


def refresh_pool(runtime: SyncRuntime) -> None:
    """Set this process's pool gauges from its pool (nothing before the start)."""
    pool = runtime._pool
    if pool is None:
        return
    size = pool.get_size()
    POOL_CONNECTIONS.labels("open").set(size)
    POOL_CONNECTIONS.labels("in_use").set(size - pool.get_idle_size())
    POOL_CONNECTIONS.labels("max").set(pool.get_max_size())


class _Figures:
    """A collector of figures read once, for one scrape."""

    def __init__(self, metrics: list[Metric]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        return iter(self.metrics)


async def _database_figures(runtime: SyncRuntime) -> list[Metric]:
    """The open push and snapshot sessions of all users (nothing if the database is slow)."""
    pool = runtime._pool
    if pool is None or runtime.lifecycle != "running":
        return []
    try:
        async with asyncio.timeout(2.0), pool.acquire(timeout=1.0) as connection:
            row = await connection.fetchrow(_OPEN_SESSIONS)
    except Exception as error:  # the metrics of this process still answer
        log.debug("open sessions not read for /metrics: %s", error)
        return []
    family = GaugeMetricFamily(
        "oversync_open_sessions",
        "Unexpired push and snapshot sessions of all users (from the database)",
        labels=["kind"],
    )
    if row is None:
        return []
    family.add_metric(["push"], float(row[0]))
    family.add_metric(["snapshot"], float(row[1]))
    return [family]


async def exposition(runtime: SyncRuntime) -> bytes:
    """The text of a scrape: every process's metrics (multiprocess mode) or this one's, and the
    database's figures."""
    refresh_pool(runtime)
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    figures = await _database_figures(runtime)
    if figures:
        extra = CollectorRegistry(auto_describe=False)
        extra.register(_Figures(figures))
        text += generate_latest(extra)
    return text


def install(runtime: SyncRuntime) -> None:
    """Record the pool's figures and user-lock waits while the runtime runs."""
    task: asyncio.Task[Any] | None = None

    async def refresh_forever() -> None:
        while True:
            refresh_pool(runtime)
            await asyncio.sleep(POOL_REFRESH_SECONDS)

    async def start(_: SyncRuntime) -> None:
        nonlocal task
        runtime.pool.on_user_lock_wait = LOCK_WAIT_SECONDS.observe
        task = asyncio.get_running_loop().create_task(refresh_forever())

    async def stop(_: SyncRuntime) -> None:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if MULTIPROCESS_DIR:  # this worker's live gauges stop counting
            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]

    runtime.start_hooks.append(start)
    runtime.stop_hooks.append(stop)


# The figures the sync inspector shows at a glance: (label, metric family, sample filter).
_KEY_FIGURES: tuple[tuple[str, str, str], ...] = (
    ("requests served", "oversync_requests", "_total"),
    ("push commits", "oversync_push_commits", "_total"),
    ("rows committed by push", "oversync_push_rows_committed", "_total"),
    ("push conflicts (409)", "oversync_push_conflicts", "_total"),
    ("history_pruned answers", "oversync_history_pruned", "_total"),
    ("retry answers", "oversync_retry_answers", "_total"),
    ("snapshot sessions created", "oversync_snapshot_sessions_created", "_total"),
)


def key_figures() -> list[tuple[str, str]]:
    """Counters of every process since it started (all workers in multiprocess mode), and the
    mean commit latency and user-lock wait, as (label, value) text pairs."""
    if MULTIPROCESS_DIR:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    else:
        registry = REGISTRY
    totals: dict[str, float] = {}
    for family in registry.collect():
        for sample in family.samples:
            totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
    figures = [
        (label, f"{totals.get(name + suffix, 0.0):.0f}") for label, name, suffix in _KEY_FIGURES
    ]
    for label, name in (
        ("mean push commit time", "oversync_push_commit_duration_seconds"),
        ("mean user-lock wait", "oversync_user_lock_wait_seconds"),
    ):
        count = totals.get(f"{name}_count", 0.0)
        mean = totals.get(f"{name}_sum", 0.0) / count if count else 0.0
        figures.append((label, f"{mean * 1000:.1f} ms"))
    return figures
