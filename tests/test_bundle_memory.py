"""Bounded server memory for big bundles (issue: bounds): a commit of 80,000 rows streams its
stage through the finalizer and hashes incrementally, so the server's peak RSS grows by far less
than the bundle's size. Measured from /proc of the real server process."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest

from serverproc import ServerProcess

ROWS = 80_000
CHUNK = 5_000
MiB = 1024 * 1024


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _reset_peak(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False where not permitted."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def test_an_80k_row_commit_keeps_server_memory_flat(server: ServerProcess) -> None:
    assert server.process is not None
    pid = server.process.pid
    headers = {"Authorization": f"Bearer {server.token('alice')}", "Oversync-Source-ID": "dev-a"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=300.0) as http:
        connect = http.post("/sync/connect", json={"has_local_pending_rows": False})
        assert connect.status_code == 200, connect.text
        created = http.post(
            "/sync/push-sessions", json={"source_bundle_id": 1, "planned_row_count": ROWS}
        )
        assert created.status_code == 200, created.text
        push_id = created.json()["push_id"]
        for start in range(0, ROWS, CHUNK):
            rows = []
            for _ in range(CHUNK):
                key = str(uuid.uuid4())
                rows.append(
                    {
                        "schema": "business",
                        "table": "users",
                        "key": {"id": key},
                        "op": "INSERT",
                        "base_row_version": 0,
                        "payload": {"name": "someone " + key[:8], "email": key + "@x.org"},
                    }
                )
            body = json.dumps({"start_row_ordinal": start, "rows": rows})
            uploaded = http.post(f"/sync/push-sessions/{push_id}/chunks", content=body)
            assert uploaded.status_code == 200, uploaded.text
        before = _status_kib(pid, "VmRSS")
        if not _reset_peak(pid):
            pytest.skip("cannot reset the server's peak RSS here (clear_refs not writable)")
        committed = http.post(f"/sync/push-sessions/{push_id}/commit")
        assert committed.status_code == 200, committed.text
        assert committed.json()["row_count"] == ROWS
        growth_mib = (_status_kib(pid, "VmHWM") - before) / 1024
    print(f"80k-row commit: server peak RSS growth {growth_mib:.1f} MiB")
    assert growth_mib < 64
