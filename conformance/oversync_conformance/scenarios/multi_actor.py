"""Several actors: two devices of one user share a scope; two users never see each other."""

from __future__ import annotations

from oversync_client.api.lifecycle import connect
from oversync_client.api.pull import pull
from oversync_client.api.push import (
    commit_push_session,
    delete_push_session,
    get_committed_bundle_rows,
    upload_push_chunk,
)
from oversync_client.api.snapshot import (
    create_snapshot_session,
    delete_snapshot_session,
    get_snapshot_chunk,
)
from oversync_client.models import ConnectRequest, PushChunkRequest
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import (
    category,
    chunk,
    commit,
    connect_empty,
    create,
    push,
    update,
)


@scenario(tags=("multi-actor", "lifecycle", "conflicts"))
def two_devices_one_user(ctx: ScenarioContext) -> None:
    """The phone seeds the scope; the laptop attaches (remote_authoritative), hydrates from a
    snapshot and edits a row; the phone pulls the edit, loses a race on the same row (push
    conflict naming the laptop's version), then wins with the right base; the laptop pulls it."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    laptop = ctx.actor("laptop", user="alice", source="laptop-1")
    phone.call(connect.sync_detailed, body=ConnectRequest(has_local_pending_rows=True), expect=200)
    init = ctx.capture("initialization_id", "initialization_id")
    push_id = create(phone, 1, 2, initialization_id=init)
    chunk(phone, push_id, 0, [category(1, "inbox"), category(2, "work")])
    commit(phone, push_id)
    laptop.call(
        connect.sync_detailed, body=ConnectRequest(has_local_pending_rows=False), expect=200
    )
    laptop.call(create_snapshot_session.sync_detailed, expect=200)
    snapshot_id = ctx.capture("snapshot_id", "snapshot_id")
    laptop.call(get_snapshot_chunk.sync_detailed, snapshot_id, expect=200)
    laptop.call(delete_snapshot_session.sync_detailed, snapshot_id, expect=204)
    push(laptop, 1, [update("categories", 2, 1, name="work (laptop)")])
    phone.call(pull.sync_detailed, after_bundle_seq=1, expect=200, step="phone pulls the edit")
    push_id = create(phone, 2, 1)
    chunk(phone, push_id, 0, [update("categories", 2, 1, name="work (phone)")])
    phone.call(
        commit_push_session.sync_detailed,
        push_id,
        expect=(409, "push_conflict"),
        step="phone edits with a stale base",
    )
    push(phone, 2, [update("categories", 2, 2, name="work (phone)")])
    laptop.call(pull.sync_detailed, after_bundle_seq=2, expect=200, step="laptop pulls it")


@scenario(tags=("multi-actor", "isolation"))
def two_users_isolated(ctx: ScenarioContext) -> None:
    """Alice and Bob write the same row id: each has bundle_seq 1 and sees only their own rows;
    neither can touch the other's push or snapshot sessions (403)."""
    alice = ctx.actor("alice", user="alice", source="phone-1")
    bob = ctx.actor("bob", user="bob", source="phone-1")
    connect_empty(alice)
    connect_empty(bob)
    push(alice, 1, [category(1, "alice's")])
    push(bob, 1, [category(1, "bob's")])
    alice.call(pull.sync_detailed, expect=200, step="alice pulls her bundle only")
    bob.call(pull.sync_detailed, expect=200, step="bob pulls his bundle only")
    bob.call(
        get_committed_bundle_rows.sync_detailed,
        2,
        expect=(404, "committed_bundle_not_found"),
        step="bob asks for bundle 2 (only alice has one)",
    )
    push_id = create(alice, 2, 1)
    chunk(alice, push_id, 0, [category(2, "alice's second")])
    forbidden = (403, "push_session_forbidden")
    bob.call(
        upload_push_chunk.sync_detailed,
        push_id,
        body=PushChunkRequest(start_row_ordinal=1, rows=[category(3, "bob's intrusion")]),
        expect=forbidden,
        step="bob uploads a chunk to it",
    )
    bob.call(commit_push_session.sync_detailed, push_id, expect=forbidden, step="bob commits it")
    bob.call(delete_push_session.sync_detailed, push_id, expect=forbidden, step="bob deletes it")
    commit(alice, push_id)
    alice.call(create_snapshot_session.sync_detailed, expect=200)
    snapshot_id = ctx.capture("snapshot_id", "snapshot_id")
    forbidden = (403, "snapshot_session_forbidden")
    bob.call(get_snapshot_chunk.sync_detailed, snapshot_id, expect=forbidden, step="bob reads it")
    bob.call(
        delete_snapshot_session.sync_detailed, snapshot_id, expect=forbidden, step="bob deletes it"
    )
    alice.call(get_snapshot_chunk.sync_detailed, snapshot_id, expect=200)
