"""Source rotation: a rotated snapshot retires a source in favour of a new one (protocol §11)."""

from __future__ import annotations

from oversync_client.api.push import commit_push_session, create_push_session
from oversync_client.api.snapshot import create_snapshot_session
from oversync_client.models import (
    PushSessionCreateRequest,
    SnapshotSessionCreateRequest,
    SourceReplacement,
    SourceReplacementReason,
)
from oversync_conformance.context import Expectation, ScenarioActor, ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import category, chunk, connect_empty, create, push

RETIRED = (409, "source_retired")


def rotate(actor: ScenarioActor, previous: str, new: str, expect: Expectation, step: str) -> None:
    replacement = SourceReplacement(
        previous_source_id=previous,
        new_source_id=new,
        reason=SourceReplacementReason.SOURCE_SEQUENCE_OUT_OF_ORDER,
    )
    actor.call(
        create_snapshot_session.sync_detailed,
        body=SnapshotSessionCreateRequest(source_replacement=replacement),
        expect=expect,
        step=step,
    )


@scenario(tags=("rotation", "errors"))
def source_rotation(ctx: ScenarioContext) -> None:
    """A rotated snapshot retires phone-1 for phone-2: phone-1's new pushes and its staged
    session are 409 source_retired (structured), its committed tuple still answers
    already_committed, phone-2 pushes from 1, and conflicting rotations are refused."""
    old = ctx.actor("old", user="alice", source="phone-1")
    new = ctx.actor("new", user="alice", source="phone-2")
    connect_empty(old)
    push(old, 1, [category(1, "inbox")])
    staged = create(old, 2, 1)
    chunk(old, staged, 0, [category(2, "staged before the rotation")])
    rotate(old, "phone-1", "phone-2", 200, "rotate phone-1 to phone-2")
    old.call(
        create_push_session.sync_detailed,
        body=PushSessionCreateRequest(source_bundle_id=2, planned_row_count=1),
        expect=RETIRED,
        step="push from the retired source",
    )
    old.call(
        commit_push_session.sync_detailed,
        staged,
        expect=RETIRED,
        step="commit the session staged before the rotation",
    )
    old.call(
        create_push_session.sync_detailed,
        body=PushSessionCreateRequest(source_bundle_id=1, planned_row_count=1),
        expect=200,
        step="the retired source's committed tuple: already_committed",
    )
    rotate(old, "phone-1", "phone-2", 200, "the same rotation again (a retry)")
    rotate(old, "phone-1", "phone-3", RETIRED, "rotate the retired source elsewhere")
    push(new, 1, [category(3, "from the new source")])
    rotate(
        new, "phone-2", "phone-1", (409, "source_replacement_invalid"), "rotate to a known source"
    )
    rotate(
        new, "phone-1", "phone-4", (400, "snapshot_session_invalid"),
        "previous_source_id is not the caller's source",
    )  # fmt: skip
