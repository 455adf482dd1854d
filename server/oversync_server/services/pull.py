"""Pull: the pull operations of the protocol."""

from __future__ import annotations

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import PullService
from oversync_server.errors import not_implemented
from oversync_server.runtime import SyncRuntime


class Pull(PullService[object]):
    """Implement the pull operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def pull(
        self,
        *,
        principal: object,
        Oversync_Source_ID: str,
        after_bundle_seq: int,
        max_bundles: int,
        target_bundle_seq: int,
    ) -> models.PullResponse | HTTPResult[models.PullResponse | models.ErrorResponse] | Response:
        """
        Handle GET /sync/pull.
        """
        raise not_implemented()

    async def watch_bundles(
        self,
        *,
        principal: object,
        Oversync_Source_ID: str,
        after_bundle_seq: int,
    ) -> (
        models.SyncWatchGetResponse
        | HTTPResult[models.SyncWatchGetResponse | models.ErrorResponse]
        | Response
    ):
        """
        Handle GET /sync/watch.
        """
        raise not_implemented()
