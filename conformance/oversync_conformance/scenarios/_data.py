"""Building blocks of the scenarios: fixed row ids, push rows, and the common call sequences.

Row ids are fixed: rows belong to a user's scope, and every run uses fresh users, so fixed ids
never collide and keep payloads (and therefore bundle hashes) identical between runs. The rows
avoid server-defaulted columns (timestamps) unless a scenario is about them.
"""

from __future__ import annotations

from typing import Any

from oversync_client.api.lifecycle import connect
from oversync_client.api.push import (
    commit_push_session,
    create_push_session,
    get_committed_bundle_rows,
    upload_push_chunk,
)
from oversync_client.models import (
    ConnectRequest,
    PushChunkRequest,
    PushCommitResponse,
    PushRequestRow,
    PushRequestRowPayload,
    PushSessionCreateRequest,
    PushSessionStaging,
    SyncKey,
)
from oversync_conformance.context import ScenarioActor, parsed

SCHEMA = "business"
NO_SUCH_ID = "00000000-0000-4000-8000-00000000dead"


def row_id(number: int) -> str:
    """A fixed canonical uuid: ``row_id(1)`` is ``00000000-0000-4000-8000-000000000001``."""
    return f"00000000-0000-4000-8000-{number:012d}"


def sync_key(value: str) -> SyncKey:
    key = SyncKey()
    key["id"] = value
    return key


def insert(table: str, number: int, base: int = 0, **columns: Any) -> PushRequestRow:
    payload = PushRequestRowPayload.from_dict({"id": row_id(number), **columns})
    return PushRequestRow(
        table=table, key=sync_key(row_id(number)), op="INSERT", schema=SCHEMA,
        base_row_version=base, payload=payload,
    )  # fmt: skip


def update(table: str, number: int, base: int, **columns: Any) -> PushRequestRow:
    payload = PushRequestRowPayload.from_dict({"id": row_id(number), **columns})
    return PushRequestRow(
        table=table, key=sync_key(row_id(number)), op="UPDATE", schema=SCHEMA,
        base_row_version=base, payload=payload,
    )  # fmt: skip


def delete(table: str, number: int, base: int) -> PushRequestRow:
    return PushRequestRow(
        table=table, key=sync_key(row_id(number)), op="DELETE", schema=SCHEMA, base_row_version=base
    )


def category(number: int, name: str, parent: int | None = None, base: int = 0) -> PushRequestRow:
    parent_id = row_id(parent) if parent is not None else None
    return insert("categories", number, base, name=name, parent_id=parent_id)


def connect_empty(actor: ScenarioActor) -> None:
    """Attach a source with nothing to upload: the fresh scope becomes initialized."""
    actor.call(
        connect.sync_detailed,
        body=ConnectRequest(has_local_pending_rows=False),
        expect=200,
        step="connect (initialize_empty)",
    )


def create(actor: ScenarioActor, source_bundle_id: int, planned: int, **kwargs: Any) -> str:
    response = actor.call(
        create_push_session.sync_detailed,
        body=PushSessionCreateRequest(
            source_bundle_id=source_bundle_id, planned_row_count=planned, **kwargs
        ),
        expect=200,
    )
    return parsed(response, PushSessionStaging).push_id


def chunk(actor: ScenarioActor, push_id: str, start: int, rows: list[PushRequestRow]) -> None:
    actor.call(
        upload_push_chunk.sync_detailed,
        push_id,
        body=PushChunkRequest(start_row_ordinal=start, rows=rows),
        expect=200,
        step="upload push chunk" if start == 0 else f"upload push chunk at {start}",
    )


def commit(actor: ScenarioActor, push_id: str) -> int:
    response = actor.call(commit_push_session.sync_detailed, push_id, expect=200)
    return parsed(response, PushCommitResponse).bundle_seq


def push(actor: ScenarioActor, source_bundle_id: int, rows: list[PushRequestRow]) -> int:
    """Create, upload in one chunk, commit and fetch the committed rows; the bundle_seq."""
    push_id = create(actor, source_bundle_id, len(rows))
    chunk(actor, push_id, 0, rows)
    bundle_seq = commit(actor, push_id)
    actor.call(get_committed_bundle_rows.sync_detailed, bundle_seq, expect=200, max_rows=1000)
    return bundle_seq
