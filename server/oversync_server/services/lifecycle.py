"""Lifecycle: the lifecycle operations of the protocol."""

from __future__ import annotations

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import LifecycleService
from oversync_server.errors import not_implemented
from oversync_server.runtime import SyncRuntime


class Lifecycle(LifecycleService[object]):
    """Implement the lifecycle operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def connect(
        self,
        *,
        principal: object,
        Oversync_Source_ID: str,
        body: models.ConnectRequest,
    ) -> (
        models.ConnectResponse
        | HTTPResult[models.ConnectResponse | models.ErrorResponse]
        | Response
    ):
        """
        Handle POST /sync/connect.
        """
        raise not_implemented()
