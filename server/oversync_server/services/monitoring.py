"""Monitoring: the monitoring operations of the protocol."""

from __future__ import annotations

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import MonitoringService
from oversync_server.errors import not_implemented
from oversync_server.runtime import SyncRuntime


class Monitoring(MonitoringService):
    """Implement the monitoring operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def get_health(
        self,
    ) -> (
        models.StatusResponse | HTTPResult[models.StatusResponse | models.ErrorResponse] | Response
    ):
        """
        Handle GET /syncx/health.
        """
        raise not_implemented()

    async def get_status(
        self,
    ) -> (
        models.StatusResponse | HTTPResult[models.StatusResponse | models.ErrorResponse] | Response
    ):
        """
        Handle GET /syncx/status.
        """
        raise not_implemented()
