"""Monitoring: the unauthenticated health and status documents."""

from __future__ import annotations

from oversync_client.api.monitoring import get_health, get_status
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario


@scenario(tags=("monitoring",))
def health_and_status(ctx: ScenarioContext) -> None:
    """GET /syncx/health and /syncx/status without credentials: 200, a healthy running service,
    the registered tables and the feature flags (counters vary on a shared server)."""
    anonymous = ctx.actor("monitor", user="ops", source="monitor").with_auth("none")
    anonymous.call(get_health.sync_detailed, expect=200)
    anonymous.call(get_status.sync_detailed, expect=200)
