"""Bounded client memory: what a push holds depends on the bundle cap, not on what is pending.

A smaller-scale twin of ``python -m bench.seed_memory`` (1M rows): Python allocations traced
while pushing N pending rows in bundles of ``max_bundle_rows``; eight times more rows must
not need more memory (the freeze order comes from SQLite, request rows are built per chunk, and
committed rows are staged in SQLite).
"""

from __future__ import annotations

import gc
import tracemalloc
import uuid

from sdk_helpers import Backend, Device, business_config

from oversqlite import PushOutcome


def traced_push_peak(backend: Backend, name: str, rows: int) -> int:
    # Not backend.device(): its fault-injecting transport keeps every request body.
    config = business_config(max_bundle_rows=500, upload_chunk_rows=100)
    path = backend.root / f"{name}.db"
    device = Device(path, base_url=backend.base_url(), token=backend.token(name), config=config)
    backend.devices.append(device)
    device.client.attach(name)
    device.db.executemany(
        "INSERT INTO users (id, name, email) VALUES (?, ?, 'someone@example.com')",
        ((str(uuid.uuid4()), f"user {i:08d} " + "x" * 80) for i in range(rows)),
    )
    gc.collect()
    tracemalloc.start()
    try:
        # Collect cyclic garbage (httpx leaves a few reference cycles per request) after every
        # chunk: the peak then measures what the push holds, not when the collector last ran.
        report = device.client.push_pending(progress=lambda _: gc.collect())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.outcome is PushOutcome.COMMITTED and report.row_count == rows
    assert device.client.pending_row_count() == 0
    return peak


def test_push_memory_does_not_grow_with_the_pending_rows(backend: Backend) -> None:
    small = traced_push_peak(backend, "small", 1000)
    large = traced_push_peak(backend, "large", 8000)
    # Holding the 7000 extra rows (~150 bytes of values each) at once would take well over
    # 4 MB of Python objects; what grows is bounded caches.
    assert large - small < 1024 * 1024, (small, large)
