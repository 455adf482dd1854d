"""Monitoring: GET /syncx/status and GET /syncx/health (reference/protocol.md §8.2).

Both answer the same StatusResponse; health answers 503 when it is unhealthy: the service is not
running, or some user's retained floor is above its latest bundle (impossible under the storage
CHECK, but counted as the reference does). Unauthenticated; not counted as in-flight operations.
Each call costs about the same whatever the table sizes: on large tables the bundle totals and
the user min/max fields are estimates (`engine.status`); the health verdict is always exact.
"""

from __future__ import annotations

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import MonitoringService
from oversync_server.config import PROTOCOL_VERSION
from oversync_server.engine.errors import SyncError
from oversync_server.engine.status import StatusCounters, read_counters
from oversync_server.errors import failing_as
from oversync_server.runtime import SyncRuntime
from oversync_server.services.discovery import features


async def status_document(runtime: SyncRuntime) -> models.StatusResponse:
    """The status document: the runtime's lifecycle plus the storage counters."""
    try:
        pool = runtime.pool
    except SyncError:
        if runtime.lifecycle == "running":
            raise
        # Closed: the pool is gone, but health must still say "unhealthy" rather than fail.
        return build_status(runtime, StatusCounters())
    async with pool.acquire() as conn:
        counters = await read_counters(conn)
    return build_status(runtime, counters)


def build_status(runtime: SyncRuntime, counters: StatusCounters) -> models.StatusResponse:
    running = runtime.lifecycle == "running"
    healthy = running and counters.user_state_retention_floor_ahead_count == 0
    config = runtime.config
    return models.StatusResponse.model_validate(
        {
            "status": "healthy" if healthy else "unhealthy",
            "version": PROTOCOL_VERSION,
            "app_name": config.app_name,
            "lifecycle": runtime.lifecycle,
            "accepting_operations": running,
            "inflight_operations": max(0, runtime.inflight_operations),
            "registered_tables": [table.qualified_name for table in config.registered_tables],
            "features": features(config),
            **counters.as_dict(),
        }
    )


class Monitoring(MonitoringService):
    """Implement the monitoring operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def get_health(
        self,
    ) -> (
        models.StatusResponse | HTTPResult[models.StatusResponse | models.ErrorResponse] | Response
    ):
        """Handle GET /syncx/health: 200 healthy, 503 unhealthy, same body."""
        with failing_as("health_failed", "Failed to get health status"):
            document = await status_document(self.runtime)
        status = 200 if document.status == models.Status.healthy else 503
        return HTTPResult(status_code=status, body=document)

    async def get_status(
        self,
    ) -> (
        models.StatusResponse | HTTPResult[models.StatusResponse | models.ErrorResponse] | Response
    ):
        """Handle GET /syncx/status."""
        with failing_as("status_failed", "Failed to get service status"):
            return await status_document(self.runtime)
