"""Push: the push operations of the protocol."""

from __future__ import annotations

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import PushService
from oversync_server.errors import not_implemented
from oversync_server.runtime import SyncRuntime


class Push(PushService[object]):
    """Implement the push operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def create_push_session(
        self,
        *,
        principal: object,
        Oversync_Source_ID: str,
        body: models.PushSessionCreateRequest,
    ) -> (
        models.PushSessionCreateResponse
        | HTTPResult[models.PushSessionCreateResponse | models.ErrorResponse]
        | Response
    ):
        """
        Handle POST /sync/push-sessions.
        """
        raise not_implemented()

    async def delete_push_session(
        self,
        *,
        principal: object,
        push_id: str,
        Oversync_Source_ID: str,
    ) -> HTTPResult[models.ErrorResponse] | Response | None:
        """
        Handle DELETE /sync/push-sessions/{push_id}.
        """
        raise not_implemented()

    async def upload_push_chunk(
        self,
        *,
        principal: object,
        push_id: str,
        Oversync_Source_ID: str,
        body: models.PushChunkRequest,
    ) -> (
        models.PushChunkResponse
        | HTTPResult[models.PushChunkResponse | models.ErrorResponse]
        | Response
    ):
        """
        Handle POST /sync/push-sessions/{push_id}/chunks.
        """
        raise not_implemented()

    async def commit_push_session(
        self,
        *,
        principal: object,
        push_id: str,
        Oversync_Source_ID: str,
    ) -> (
        models.PushCommitResponse
        | HTTPResult[models.PushCommitResponse | models.ErrorResponse]
        | Response
    ):
        """
        Handle POST /sync/push-sessions/{push_id}/commit.
        """
        raise not_implemented()

    async def get_committed_bundle_rows(
        self,
        *,
        principal: object,
        bundle_seq: int,
        Oversync_Source_ID: str,
        after_row_ordinal: int | None,
        max_rows: int | None,
    ) -> (
        models.CommittedBundleRowsResponse
        | HTTPResult[models.CommittedBundleRowsResponse | models.ErrorResponse]
        | Response
    ):
        """
        Handle GET /sync/committed-bundles/{bundle_seq}/rows.
        """
        raise not_implemented()
