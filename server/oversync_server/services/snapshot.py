"""Snapshot: POST/GET/DELETE /sync/snapshot-sessions (reference/protocol.md §6.9-§6.11).

Thin: the actor, the page-size rules and the error mapping live here; the work is in
`engine.snapshots` (materialise, page, delete) and `engine.rotation` (source replacement).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import SnapshotService
from oversync_server.engine import snapshots
from oversync_server.engine.errors import SyncError
from oversync_server.engine.identifiers import identifier_problem
from oversync_server.engine.rotation import SourceReplacement
from oversync_server.engine.schema import catalog_of
from oversync_server.errors import failing_as
from oversync_server.runtime import SyncRuntime
from oversync_wire.timefmt import rfc3339_nano


def _replacement(body: models.SnapshotSessionCreateRequest | None) -> SourceReplacement | None:
    """The requested rotation; 400 `snapshot_session_invalid` for an unusable new source id
    (`engine.identifiers`; a blank one is refused by the rotation itself)."""
    requested = body.source_replacement if body is not None else None
    if requested is None:
        return None
    new_source_id = requested.new_source_id.strip()
    if new_source_id and (problem := identifier_problem(new_source_id)):
        raise SyncError("snapshot_session_invalid", f"source_replacement.new_source_id {problem}")
    return SourceReplacement(
        previous_source_id=requested.previous_source_id,
        new_source_id=requested.new_source_id,
        reason=requested.reason.value,
    )


def session_body(session: snapshots.SnapshotSession) -> dict[str, Any]:
    """The SnapshotSession document in Go's field order; `byte_count` omitted when 0."""
    body: dict[str, Any] = {
        "snapshot_id": str(session.snapshot_id),
        "snapshot_bundle_seq": session.snapshot_bundle_seq,
        "row_count": session.row_count,
    }
    if session.byte_count:
        body["byte_count"] = session.byte_count
    body["expires_at"] = rfc3339_nano(session.expires_at)
    return body


class Snapshot(SnapshotService[object]):
    """Implement the snapshot operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def create_snapshot_session(
        self,
        *,
        principal: object,
        Oversync_Source_ID: str,
        body: models.SnapshotSessionCreateRequest | None,
    ) -> (
        models.SnapshotSession
        | HTTPResult[models.SnapshotSession | models.ErrorResponse]
        | Response
    ):
        """Handle POST /sync/snapshot-sessions."""
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        with failing_as("snapshot_session_create_failed", "Failed to create snapshot session"):
            session = await snapshots.create_snapshot(
                self.runtime.pool,
                catalog=catalog_of(self.runtime),
                config=self.runtime.config,
                user_id=actor.user_id,
                source_id=actor.source_id,
                replacement=_replacement(body),
            )
        text = json.dumps(session_body(session), separators=(",", ":"), ensure_ascii=False)
        return Response(text, media_type="application/json")

    async def get_snapshot_chunk(
        self,
        *,
        principal: object,
        snapshot_id: str,
        Oversync_Source_ID: str,
        after_row_ordinal: int,
        max_rows: int | None,
    ) -> (
        models.SnapshotChunkResponse
        | HTTPResult[models.SnapshotChunkResponse | models.ErrorResponse]
        | Response
    ):
        """Handle GET /sync/snapshot-sessions/{snapshot_id}."""
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        config = self.runtime.config
        rows = min(
            max_rows or config.default_rows_per_snapshot_chunk, config.max_rows_per_snapshot_chunk
        )
        with failing_as("snapshot_chunk_failed", "Failed to get snapshot chunk"):
            async with self.runtime.pool.acquire() as conn:
                body = await snapshots.read_chunk(
                    conn,
                    snapshot_id=snapshot_id,
                    user_id=actor.user_id,
                    after_row_ordinal=after_row_ordinal,
                    max_rows=rows,
                )
        return Response(body, media_type="application/json")

    async def delete_snapshot_session(
        self,
        *,
        principal: object,
        snapshot_id: str,
        Oversync_Source_ID: str,
    ) -> HTTPResult[models.ErrorResponse] | Response | None:
        """Handle DELETE /sync/snapshot-sessions/{snapshot_id}."""
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        with failing_as("snapshot_session_delete_failed", "Failed to delete snapshot session"):
            async with self.runtime.pool.acquire() as conn:
                await snapshots.delete_snapshot(
                    conn, snapshot_id=snapshot_id, user_id=actor.user_id
                )
        return Response(status_code=204)
