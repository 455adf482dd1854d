"""Connect lifecycle: the first-connect resolutions and the scope state machine (protocol §10)."""

from __future__ import annotations

from oversync_client.api.lifecycle import connect
from oversync_client.api.pull import pull, watch_bundles
from oversync_client.api.push import commit_push_session, create_push_session, upload_push_chunk
from oversync_client.api.snapshot import create_snapshot_session
from oversync_client.models import (
    ConnectRequest,
    ConnectResponse,
    PushChunkRequest,
    PushSessionCreateRequest,
)
from oversync_conformance.context import ScenarioActor, ScenarioContext, ScenarioFailure, parsed
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import (
    NO_SUCH_ID,
    category,
    chunk,
    commit,
    create,
)


def attach(actor: ScenarioActor, pending: bool, resolution: str) -> ConnectResponse:
    response = actor.call(
        connect.sync_detailed,
        body=ConnectRequest(has_local_pending_rows=pending),
        expect=200,
        step=f"connect with{'' if pending else 'out'} pending rows: {resolution}",
    )
    answer = parsed(response, ConnectResponse)
    if answer.resolution != resolution:
        raise ScenarioFailure(f"expected {resolution}, got {answer.resolution}")
    return answer


def push_create(
    actor: ScenarioActor, expect: int | tuple[int, str], step: str, init: str | None = None
) -> None:
    body = PushSessionCreateRequest(source_bundle_id=1, planned_row_count=1)
    if init is not None:
        body.initialization_id = init
    actor.call(create_push_session.sync_detailed, body=body, expect=expect, step=step)


@scenario(tags=("lifecycle",))
def connect_initialize_empty(ctx: ScenarioContext) -> None:
    """A fresh scope and a source with nothing to upload: initialize_empty; every later connect,
    from any source of the user, is remote_authoritative; the empty scope pulls nothing."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    laptop = ctx.actor("laptop", user="alice", source="laptop-1")
    attach(phone, False, "initialize_empty")
    attach(phone, False, "remote_authoritative")
    attach(laptop, True, "remote_authoritative")
    laptop.call(pull.sync_detailed, expect=200, step="pull the empty scope")


@scenario(tags=("lifecycle", "push"))
def connect_initialize_local(ctx: ScenarioContext) -> None:
    """A source with local rows gets the initialization lease (initialize_local); reconnecting
    keeps the same initialization_id; another source must retry later; the scope is closed to
    pull and snapshots until the seeding push commits; then everyone is remote_authoritative."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    laptop = ctx.actor("laptop", user="alice", source="laptop-1")
    lease = attach(phone, True, "initialize_local")
    init = str(lease.initialization_id)
    attach(phone, True, "initialize_local")  # the same initialization_id, a refreshed lease
    attach(laptop, False, "retry_later")
    laptop.call(pull.sync_detailed, expect=(409, "scope_initializing"), step="pull while seeding")
    laptop.call(
        watch_bundles.sync_detailed, expect=(409, "scope_initializing"), step="watch while seeding"
    )
    phone.call(
        create_snapshot_session.sync_detailed,
        expect=(409, "scope_initializing"),
        step="snapshot while seeding",
    )
    push_create(phone, (400, "push_session_invalid"), "seeding push without initialization_id")
    push_create(laptop, (409, "initialization_stale"), "seeding push from another source", init)
    push_create(phone, (409, "initialization_stale"), "seeding push with a wrong id", NO_SUCH_ID)
    push_id = create(phone, 1, 2, initialization_id=init)
    chunk(phone, push_id, 0, [category(1, "inbox"), category(2, "work", parent=1)])
    commit(phone, push_id)
    attach(phone, True, "remote_authoritative")
    attach(laptop, True, "remote_authoritative")
    push_create(phone, (400, "push_session_invalid"), "initialization_id after seeding", init)
    laptop.call(pull.sync_detailed, expect=200, step="pull the seeded bundle")


@scenario(tags=("lifecycle", "errors"))
def connect_abandon_seeding(ctx: ScenarioContext) -> None:
    """The lease holder reconnecting without pending rows abandons seeding: initialize_empty;
    its seeding session is then stale (409 initialization_stale on chunk and commit) and its
    old initialization_id is refused (400 push_session_invalid)."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    lease = attach(phone, True, "initialize_local")
    init = str(lease.initialization_id)
    seeding = create(phone, 1, 1, initialization_id=init)
    chunk(phone, seeding, 0, [category(1, "inbox")])
    attach(phone, False, "initialize_empty")
    stale = (409, "initialization_stale")
    phone.call(
        upload_push_chunk.sync_detailed,
        seeding,
        body=PushChunkRequest(start_row_ordinal=1, rows=[category(2, "work")]),
        expect=stale,
        step="chunk to the abandoned seeding session (the lease is checked first)",
    )
    phone.call(
        commit_push_session.sync_detailed,
        seeding,
        expect=stale,
        step="commit the abandoned seeding session",
    )
    push_create(phone, (400, "push_session_invalid"), "push with the abandoned id", init)


@scenario(tags=("lifecycle", "errors"))
def scope_uninitialized(ctx: ScenarioContext) -> None:
    """Before any connect the scope is uninitialized: push, pull and snapshots are 409
    scope_uninitialized; a push naming an initialization_id is 410 initialization_expired."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    push_create(phone, (409, "scope_uninitialized"), "push before connect")
    push_create(phone, (410, "initialization_expired"), "push with a lease id", NO_SUCH_ID)
    phone.call(pull.sync_detailed, expect=(409, "scope_uninitialized"), step="pull before connect")
    phone.call(
        create_snapshot_session.sync_detailed,
        expect=(409, "scope_uninitialized"),
        step="snapshot before connect",
    )


@scenario(tags=("lifecycle", "errors"))
def connect_invalid_body(ctx: ScenarioContext) -> None:
    """A connect body that is not JSON, has a wrongly typed field or is empty: 400
    invalid_request; `{}` is a valid request (no pending rows)."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    json_header = {"Oversync-Source-ID": "phone-1", "Content-Type": "application/json"}
    phone.raw(
        "POST", "/sync/connect", content="{not json", headers=json_header,
        expect=(400, "invalid_request"), step="connect with malformed JSON",
    )  # fmt: skip
    phone.raw(
        "POST", "/sync/connect", json_body={"has_local_pending_rows": "yes"},
        expect=(400, "invalid_request"), step="connect with a string for a boolean",
    )  # fmt: skip
    phone.raw(
        "POST", "/sync/connect", content="", headers=json_header,
        expect=(400, "invalid_request"), step="connect with an empty body",
    )  # fmt: skip
    phone.raw("POST", "/sync/connect", json_body={}, expect=200, step="connect with {}")
