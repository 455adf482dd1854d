"""Snapshot: the snapshot operations of the protocol."""

from __future__ import annotations

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import SnapshotService
from oversync_server.errors import not_implemented
from oversync_server.runtime import SyncRuntime


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
        """
        Handle POST /sync/snapshot-sessions.
        """
        raise not_implemented()

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
        """
        Handle GET /sync/snapshot-sessions/{snapshot_id}.
        """
        raise not_implemented()

    async def delete_snapshot_session(
        self,
        *,
        principal: object,
        snapshot_id: str,
        Oversync_Source_ID: str,
    ) -> HTTPResult[models.ErrorResponse] | Response | None:
        """
        Handle DELETE /sync/snapshot-sessions/{snapshot_id}.
        """
        raise not_implemented()
