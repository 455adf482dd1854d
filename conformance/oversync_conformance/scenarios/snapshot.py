"""Snapshot sessions: a frozen image of the live rows, read in 1-based pages."""

from __future__ import annotations

from oversync_client.api.snapshot import (
    create_snapshot_session,
    delete_snapshot_session,
    get_snapshot_chunk,
)
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import (
    NO_SUCH_ID,
    category,
    connect_empty,
    delete,
    push,
    update,
)

NOT_FOUND = (404, "snapshot_session_not_found")


@scenario(tags=("snapshot", "paging"))
def snapshot_paging(ctx: ScenarioContext) -> None:
    """Live rows only, ordered by table then key, each with its own row_version; read two at a
    time (after_row_ordinal = last ordinal read); deleted (204), the session is gone (404)."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push(phone, 1, [category(n, f"category {n}") for n in (5, 3, 1, 4, 2, 6)])
    push(phone, 2, [update("categories", 3, 1, name="renamed"), delete("categories", 6, 1)])
    phone.call(create_snapshot_session.sync_detailed, expect=200)
    snapshot_id = ctx.capture("snapshot_id", "snapshot_id")
    for after in (0, 2, 4):
        phone.call(
            get_snapshot_chunk.sync_detailed,
            snapshot_id,
            after_row_ordinal=after,
            max_rows=2,
            expect=200,
            step=f"snapshot rows after {after}",
        )
    phone.call(delete_snapshot_session.sync_detailed, snapshot_id, expect=204)
    phone.call(
        get_snapshot_chunk.sync_detailed, snapshot_id, expect=NOT_FOUND, step="read after delete"
    )
    phone.call(
        delete_snapshot_session.sync_detailed, snapshot_id, expect=NOT_FOUND, step="delete again"
    )


@scenario(tags=("snapshot",))
def snapshot_empty_scope(ctx: ScenarioContext) -> None:
    """A snapshot of an empty scope: snapshot_bundle_seq 0, no rows, byte_count 0 or absent."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    phone.call(create_snapshot_session.sync_detailed, expect=200)
    snapshot_id = ctx.capture("snapshot_id", "snapshot_id")
    phone.call(get_snapshot_chunk.sync_detailed, snapshot_id, expect=200)


@scenario(tags=("snapshot", "errors"))
def snapshot_invalid(ctx: ScenarioContext) -> None:
    """Unknown snapshot ids are 404; bad cursors are 400 snapshot_chunk_invalid; a create body
    with an unknown field is 400 snapshot_session_invalid."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    phone.call(get_snapshot_chunk.sync_detailed, NO_SUCH_ID, expect=NOT_FOUND, step="unknown id")
    phone.call(
        delete_snapshot_session.sync_detailed, NO_SUCH_ID, expect=NOT_FOUND, step="delete unknown"
    )
    phone.raw(
        "POST", "/sync/snapshot-sessions", json_body={"foo": 1},
        expect=(400, "snapshot_session_invalid"), step="create with an unknown field",
    )  # fmt: skip
    phone.call(create_snapshot_session.sync_detailed, expect=200)
    snapshot_id = ctx.capture("snapshot_id", "snapshot_id")
    invalid = (400, "snapshot_chunk_invalid")
    phone.call(
        get_snapshot_chunk.sync_detailed, snapshot_id, max_rows=0, expect=invalid, step="max_rows 0"
    )
    phone.call(
        get_snapshot_chunk.sync_detailed,
        snapshot_id,
        after_row_ordinal=-1,
        expect=invalid,
        step="negative after_row_ordinal",
    )
