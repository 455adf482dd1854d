"""Storage compatibility: the `sync.*` rows a fixed workload writes are the ones the code before
the batch-capture work wrote (tests/data/storage_compat_golden.json, made by
tests/storage_compat_workload.py against revision 8e9a512; its docstring says how).

The workload covers inserts, full and partial updates, deletes, FK parent/child rows in one
bundle, ON DELETE CASCADE chains (pushed and server-originated), coalescing (insert then update,
insert then delete), a key-changing update, bytea, big integers and floats, three users and
five sources. Compared: user, scope and source state, `row_state`, `bundle_log` (row_count,
byte_count, bundle_hash) and `bundle_rows` (order, ops, keys and payload text byte for byte),
the catalog and meta rows, and that no stage, push-session or snapshot rows are left.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storage_compat_workload import run

GOLDEN = Path(__file__).parent / "data" / "storage_compat_golden.json"
REPO_ROOT = Path(__file__).resolve().parents[1]


def _normalised(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def test_sync_rows_match_the_golden_file(pg_cluster: str, tmp_path: Path) -> None:
    expected = json.loads(GOLDEN.read_text())
    got = _normalised(run(REPO_ROOT, pg_cluster, tmp_path))
    assert sorted(got) == sorted(expected)
    for section in expected:
        if got[section] != expected[section]:
            pairs = zip(got[section], expected[section], strict=False)
            first = next(
                (i for i, (g, e) in enumerate(pairs) if g != e),
                min(len(got[section]), len(expected[section])),
            )
            raise AssertionError(
                f"sync rows differ in {section} at row {first}:\n"
                f"got      {got[section][first : first + 2]}\n"
                f"expected {expected[section][first : first + 2]}\n"
                f"({len(got[section])} rows, expected {len(expected[section])})"
            )
    assert expected["leftovers"] == [
        {
            "bundle_capture_stage": 0,
            "push_session_rows": 0,
            "push_sessions": 0,
            "snapshot_sessions": 0,
        }
    ]
