"""Push sessions: create, chunk, commit, committed-bundle rows, idempotency and every refusal."""

from __future__ import annotations

from collections.abc import Mapping

from oversync_client.api.pull import pull
from oversync_client.api.push import (
    commit_push_session,
    create_push_session,
    delete_push_session,
    get_committed_bundle_rows,
    upload_push_chunk,
)
from oversync_client.models import (
    PushChunkRequest,
    PushRequestRow,
    PushRequestRowPayload,
    PushSessionCreateRequest,
    SyncKey,
)
from oversync_conformance.context import Expectation, ScenarioActor, ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import (
    NO_SUCH_ID,
    SCHEMA,
    category,
    chunk,
    commit,
    connect_empty,
    create,
    delete,
    insert,
    push,
    row_id,
    sync_key,
    update,
)

CHUNK_INVALID = (400, "push_chunk_invalid")


def send_chunk(
    actor: ScenarioActor,
    push_id: str,
    rows: list[PushRequestRow],
    step: str,
    *,
    start: int = 0,
    expect: Expectation = CHUNK_INVALID,
) -> None:
    actor.call(
        upload_push_chunk.sync_detailed,
        push_id,
        body=PushChunkRequest(start_row_ordinal=start, rows=rows),
        expect=expect,
        step=step,
    )


@scenario(tags=("push",))
def push_commit_and_fetch(ctx: ScenarioContext) -> None:
    """One bundle end to end: create (staging), one chunk, commit (bundle_seq 1, bundle_hash),
    the committed rows, and the same bundle through pull."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push_id = create(phone, 1, 2)
    chunk(phone, push_id, 0, [category(1, "inbox"), category(2, "work", parent=1)])
    commit(phone, push_id)
    seq = ctx.capture("bundle_seq", "bundle_seq")
    phone.call(get_committed_bundle_rows.sync_detailed, seq, expect=200, step="committed rows")
    phone.call(pull.sync_detailed, expect=200)


@scenario(tags=("push", "paging"))
def push_chunks_and_row_paging(ctx: ScenarioContext) -> None:
    """Five rows uploaded in chunks of three and two, then the committed bundle read two rows
    at a time: 0-based ordinals, next_row_ordinal = last returned ordinal, has_more."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    rows = [category(n, f"category {n}") for n in range(1, 6)]
    push_id = create(phone, 1, 5)
    chunk(phone, push_id, 0, rows[:3])
    chunk(phone, push_id, 3, rows[3:])
    commit(phone, push_id)
    seq = ctx.capture("bundle_seq", "bundle_seq")
    for after in (None, 1, 3, 4):
        phone.call(
            get_committed_bundle_rows.sync_detailed,
            seq,
            max_rows=2,
            **({} if after is None else {"after_row_ordinal": after}),
            expect=200,
            step="committed rows, first page" if after is None else f"committed rows after {after}",
        )


@scenario(tags=("push", "idempotency"))
def push_already_committed(ctx: ScenarioContext) -> None:
    """Re-creating a committed (source, source_bundle_id) answers already_committed with the
    original bundle; the committed push_id is gone (404 on commit and delete)."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push_id = create(phone, 1, 1)
    chunk(phone, push_id, 0, [category(1, "inbox")])
    commit(phone, push_id)
    phone.call(
        create_push_session.sync_detailed,
        body=PushSessionCreateRequest(source_bundle_id=1, planned_row_count=1),
        expect=200,
        step="create the committed tuple again: already_committed",
    )
    phone.call(
        commit_push_session.sync_detailed,
        push_id,
        expect=(404, "push_session_not_found"),
        step="commit the committed push_id again",
    )
    phone.call(
        delete_push_session.sync_detailed,
        push_id,
        expect=(404, "push_session_not_found"),
        step="delete the committed push_id",
    )


@scenario(tags=("push",))
def push_session_replace_and_delete(ctx: ScenarioContext) -> None:
    """Creating a session for a staged tuple replaces it (the old push_id is 404); a staging
    session can be deleted (204) and is then gone."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    first = create(phone, 1, 1)
    chunk(phone, first, 0, [category(1, "first try")])
    second = create(phone, 1, 1)
    send_chunk(
        phone, first, [category(1, "first try")], "chunk to the replaced session",
        expect=(404, "push_session_not_found"),
    )  # fmt: skip
    phone.call(delete_push_session.sync_detailed, second, expect=204)
    send_chunk(
        phone, second, [category(1, "second try")], "chunk to the deleted session",
        expect=(404, "push_session_not_found"),
    )  # fmt: skip
    phone.call(
        delete_push_session.sync_detailed,
        second,
        expect=(404, "push_session_not_found"),
        step="delete it again",
    )
    push(phone, 1, [category(1, "third try")])


@scenario(tags=("push", "errors"))
def push_create_invalid(ctx: ScenarioContext) -> None:
    """Push-session create refuses source_bundle_id <= 0 and planned_row_count <= 0
    (push_session_invalid) and bodies that do not decode (invalid_request)."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    for source_bundle_id, planned, what in ((0, 1, "source_bundle_id 0"), (1, 0, "no rows")):
        phone.call(
            create_push_session.sync_detailed,
            body=PushSessionCreateRequest(
                source_bundle_id=source_bundle_id, planned_row_count=planned
            ),
            expect=(400, "push_session_invalid"),
            step=f"create with {what}",
        )
    phone.raw(
        "POST", "/sync/push-sessions", json_body={"source_bundle_id": "one", "planned_row_count": 1},
        expect=(400, "invalid_request"), step="create with a string source_bundle_id",
    )  # fmt: skip
    phone.raw(
        "POST", "/sync/push-sessions", content="[1,", expect=(400, "invalid_request"),
        headers={"Oversync-Source-ID": "phone-1", "Content-Type": "application/json"},
        step="create with malformed JSON",
    )  # fmt: skip


def raw_row(
    op: str,
    *,
    payload: Mapping[str, object] | None = None,
    key: dict[str, str] | None = None,
    schema: str = SCHEMA,
) -> PushRequestRow:
    """A categories row with any op, key, schema or payload, valid or not."""
    wire_key = sync_key(row_id(1))
    if key is not None:
        wire_key = SyncKey.from_dict(key)
    row = PushRequestRow(table="categories", key=wire_key, op=op, schema=schema)
    if payload is not None:
        row.payload = PushRequestRowPayload.from_dict(dict(payload))
    return row


@scenario(tags=("push", "errors"))
def push_chunk_invalid(ctx: ScenarioContext) -> None:
    """Every row rule of a chunk (400 push_chunk_invalid, checked before the session is looked
    up), then the session rules: unknown push_id 404, out-of-order start 409, beyond the
    planned row count 400."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push_id = create(phone, 1, 2)
    good = {"id": row_id(1), "name": "a"}
    mixed_case = "A0000000-0000-4000-8000-00000000000B"
    cases: list[tuple[str, list[PushRequestRow]]] = [
        ("no rows", []),
        ("an unregistered table", [insert("no_such_table", 1, name="a")]),
        ("an invalid schema name", [raw_row("INSERT", payload=good, schema="bad-schema")]),
        ("an invalid op", [raw_row("UPSERT", payload=good)]),
        ("a key without the sync key column", [raw_row("INSERT", payload=good, key={"uid": "x"})]),
        ("a non-canonical uuid key", [raw_row("INSERT", payload=good, key={"id": mixed_case})]),
        ("a DELETE with a payload", [raw_row("DELETE", payload=good)]),
        ("an INSERT without a payload", [raw_row("INSERT")]),
        ("the hidden scope column", [raw_row("INSERT", payload={**good, "_sync_scope_id": "x"})]),
        ("a payload id that differs from the key", [raw_row("INSERT", payload={"id": row_id(2)})]),
        ("an invalid column name", [raw_row("INSERT", payload={**good, "bad-name": 1})]),
        ("the same row twice", [category(1, "a"), update("categories", 1, 0, name="b")]),
    ]
    for what, rows in cases:
        send_chunk(phone, push_id, rows, f"chunk with {what}")
    send_chunk(
        phone, NO_SUCH_ID, [raw_row("UPSERT", payload=good)],
        "invalid rows to an unknown session: the rows are checked first",
    )  # fmt: skip
    phone.raw(
        "POST", f"/sync/push-sessions/{push_id}/chunks",
        json_body={"start_row_ordinal": 0, "rows": [{
            "schema": SCHEMA, "table": "categories", "key": {"id": row_id(1)}, "op": "DELETE",
            "base_row_version": 0, "payload": None}]},
        expect=CHUNK_INVALID, step="chunk with a DELETE carrying payload null",
    )  # fmt: skip
    send_chunk(phone, push_id, [category(1, "a")], "a negative start", start=-1)
    send_chunk(
        phone, NO_SUCH_ID, [category(1, "a")], "chunk to an unknown push_id",
        expect=(404, "push_session_not_found"),
    )  # fmt: skip
    send_chunk(
        phone, "not-a-uuid", [category(1, "a")], "chunk to a push_id that is not a uuid",
        expect=(404, "push_session_not_found"),
    )  # fmt: skip
    send_chunk(
        phone, push_id, [category(1, "a")], "chunk starting at 1 instead of 0", start=1,
        expect=(409, "push_chunk_out_of_order"),
    )  # fmt: skip
    send_chunk(
        phone, push_id, [category(n, "a") for n in (1, 2, 3)], "three rows for two planned",
    )  # fmt: skip
    chunk(phone, push_id, 0, [category(1, "a")])
    send_chunk(
        phone, push_id, [category(1, "a")], "the same chunk again", expect=(409, "push_chunk_out_of_order"),
    )  # fmt: skip


@scenario(tags=("push", "errors"))
def push_commit_invalid(ctx: ScenarioContext) -> None:
    """Commit refuses a session whose staged rows do not add up (fewer than planned, or the same
    row in two chunks): 400 push_commit_invalid; an unknown push_id is 404."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push_id = create(phone, 1, 2)
    chunk(phone, push_id, 0, [category(1, "a")])
    phone.call(
        commit_push_session.sync_detailed,
        push_id,
        expect=(400, "push_commit_invalid"),
        step="commit one staged row of two",
    )
    chunk(phone, push_id, 1, [update("categories", 1, 0, name="b")])
    phone.call(
        commit_push_session.sync_detailed,
        push_id,
        expect=(400, "push_commit_invalid"),
        step="commit the same row staged in two chunks",
    )
    phone.call(
        commit_push_session.sync_detailed,
        NO_SUCH_ID,
        expect=(404, "push_session_not_found"),
        step="commit an unknown push_id",
    )


def try_commit(actor: ScenarioActor, row: PushRequestRow, step: str, expect: Expectation) -> None:
    push_id = create(actor, 2, 1)
    chunk(actor, push_id, 0, [row])
    actor.call(commit_push_session.sync_detailed, push_id, expect=expect, step=step)


@scenario(tags=("push", "conflicts"))
def push_conflicts(ctx: ScenarioContext) -> None:
    """Structured 409 push_conflict at commit, nothing applied: insert over a live row, update
    with a stale base, delete of a missing row, insert over a tombstone with base 0; then the
    re-insert with the tombstone's version commits."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    push(phone, 1, [category(1, "inbox")])
    conflict = (409, "push_conflict")
    try_commit(phone, category(1, "again"), "insert over a live row", conflict)
    try_commit(phone, update("categories", 1, 7, name="x"), "update with a stale base", conflict)
    try_commit(phone, delete("categories", 9, 1), "delete a row that does not exist", conflict)
    try_commit(phone, delete("categories", 1, 1), "delete at the current version", 200)
    push_id = create(phone, 3, 1)
    chunk(phone, push_id, 0, [category(1, "back", base=0)])
    phone.call(
        commit_push_session.sync_detailed,
        push_id,
        expect=conflict,
        step="insert over a tombstone with base 0",
    )
    push(phone, 3, [category(1, "back", base=2)])


@scenario(tags=("push", "errors"))
def push_source_sequence(ctx: ScenarioContext) -> None:
    """source_bundle_id must be contiguous from 1 per source: a gap is 409
    source_sequence_out_of_order; another source of the same user counts from 1."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    laptop = ctx.actor("laptop", user="alice", source="laptop-1")
    connect_empty(phone)
    out_of_order = (409, "source_sequence_out_of_order")
    for number in (1, 2):
        phone.call(
            create_push_session.sync_detailed,
            body=PushSessionCreateRequest(source_bundle_id=number + 1, planned_row_count=1),
            expect=out_of_order,
            step=f"create source_bundle_id {number + 1} before {number} is committed",
        )
        push(phone, number, [category(number, f"phone {number}")])
    push(laptop, 1, [category(3, "laptop")])
