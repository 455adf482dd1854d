"""Bounded client memory: what a push holds depends on the bundle cap, not on what is pending.

A smaller-scale twin of ``python -m bench.seed_memory`` (1M rows): Python allocations traced
while pushing N pending rows in bundles of ``max_bundle_rows``; six times more rows must not
need more memory (the freeze order comes from SQLite, request rows are built per chunk, and
committed rows are staged in SQLite).
"""

from __future__ import annotations

import tracemalloc
import uuid

from sdk_helpers import Backend

from oversqlite import PushOutcome


def traced_push_peak(backend: Backend, name: str, rows: int) -> int:
    device = backend.device(name, user=name, max_bundle_rows=250, upload_chunk_rows=100)
    device.client.attach(name)
    device.db.executemany(
        "INSERT INTO users (id, name, email) VALUES (?, ?, 'someone@example.com')",
        ((str(uuid.uuid4()), f"user {i:08d} " + "x" * 80) for i in range(rows)),
    )
    tracemalloc.start()
    try:
        report = device.client.push_pending()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.outcome is PushOutcome.COMMITTED and report.row_count == rows
    assert device.client.pending_row_count() == 0
    return peak


def test_push_memory_does_not_grow_with_the_pending_rows(backend: Backend) -> None:
    small = traced_push_peak(backend, "small", 500)
    large = traced_push_peak(backend, "large", 3000)
    # 3000 rows of ~150 bytes held at once would add well over 1 MB of Python objects.
    assert large < small * 1.5 + 512 * 1024, (small, large)
