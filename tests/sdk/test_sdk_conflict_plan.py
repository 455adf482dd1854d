"""The resolution table: what each answer means for every local op and server state."""

from __future__ import annotations

from typing import Any

import pytest

from oversqlite import AcceptServer, Conflict, InvalidConflictResolutionError, KeepLocal, KeepMerged
from oversqlite._conflicts import LocalWrite, plan_resolution

SERVER_ROW = {"id": "k", "name": "server"}
MERGED = {"id": "k", "name": "merged"}


def conflict(local_op: str, server: str) -> Conflict:
    return Conflict(
        table="users",
        key={"id": "k"},
        local_op=local_op,
        local_payload=None if local_op == "DELETE" else {"id": "k", "name": "local"},
        base_row_version=3,
        server_row_version=0 if server == "missing" else 7,
        server_row_deleted=server == "deleted",
        server_row=SERVER_ROW if server == "live" else None,
    )


LIVE, DEAD, GONE = (7, False), (7, True), None

# (local op, server state, resolution) -> (local write, row state, requeue) or None = invalid
TABLE: list[tuple[str, str, Any, tuple[LocalWrite, Any, bool] | None]] = [
    ("INSERT", "live", AcceptServer(), (LocalWrite.SERVER_ROW, LIVE, False)),
    ("INSERT", "deleted", AcceptServer(), (LocalWrite.DELETE, DEAD, False)),
    ("INSERT", "missing", AcceptServer(), (LocalWrite.DELETE, GONE, False)),
    ("UPDATE", "live", AcceptServer(), (LocalWrite.SERVER_ROW, LIVE, False)),
    ("UPDATE", "deleted", AcceptServer(), (LocalWrite.DELETE, DEAD, False)),
    ("DELETE", "live", AcceptServer(), (LocalWrite.SERVER_ROW, LIVE, False)),
    ("DELETE", "missing", AcceptServer(), (LocalWrite.DELETE, GONE, False)),
    ("INSERT", "live", KeepLocal(), (LocalWrite.NOTHING, LIVE, True)),
    ("INSERT", "deleted", KeepLocal(), (LocalWrite.NOTHING, DEAD, True)),
    ("INSERT", "missing", KeepLocal(), (LocalWrite.NOTHING, GONE, True)),
    ("UPDATE", "live", KeepLocal(), (LocalWrite.NOTHING, LIVE, True)),
    ("UPDATE", "deleted", KeepLocal(), None),
    ("UPDATE", "missing", KeepLocal(), None),
    ("DELETE", "live", KeepLocal(), (LocalWrite.NOTHING, LIVE, True)),
    ("DELETE", "deleted", KeepLocal(), (LocalWrite.NOTHING, DEAD, False)),
    ("DELETE", "missing", KeepLocal(), (LocalWrite.NOTHING, GONE, False)),
    ("INSERT", "live", KeepMerged(MERGED), (LocalWrite.MERGED_ROW, LIVE, True)),
    ("INSERT", "deleted", KeepMerged(MERGED), (LocalWrite.MERGED_ROW, DEAD, True)),
    ("UPDATE", "live", KeepMerged(MERGED), (LocalWrite.MERGED_ROW, LIVE, True)),
    ("UPDATE", "deleted", KeepMerged(MERGED), None),
    ("DELETE", "live", KeepMerged(MERGED), None),
    ("UPDATE", "live", "not a resolution", None),
    ("UPDATE", "live", None, None),
]


@pytest.mark.parametrize(("local_op", "server", "resolution", "expected"), TABLE)
def test_resolution_table(local_op: str, server: str, resolution: Any, expected: Any) -> None:
    c = conflict(local_op, server)
    if expected is None:
        with pytest.raises(InvalidConflictResolutionError):
            plan_resolution(c, resolution)
        return
    plan = plan_resolution(c, resolution)
    assert (plan.write, plan.row_state, plan.requeue) == expected
    if plan.write is LocalWrite.SERVER_ROW:
        assert plan.payload == SERVER_ROW
    if plan.write is LocalWrite.MERGED_ROW:
        assert plan.payload == MERGED


def test_server_state_is_derived_from_the_conflict() -> None:
    assert conflict("UPDATE", "live").server_state == "live"
    assert conflict("UPDATE", "deleted").server_state == "deleted"
    assert conflict("UPDATE", "missing").server_state == "missing"
