"""Discovery: the capabilities document (reference/protocol.md §8.1)."""

from __future__ import annotations

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import DiscoveryService
from oversync_server.config import MAX_BUNDLES_PER_PULL, PROTOCOL_VERSION, ServiceConfig
from oversync_server.engine.catalog import Catalog
from oversync_server.engine.schema import catalog_of
from oversync_server.runtime import SyncRuntime


def features(config: ServiceConfig, *, watch: bool | None = None) -> models.Features:
    """The 20 feature flags of the reference, plus oversync-py's `client_schema_version_gate`
    (`client_schema_versions` is sent), `authenticated_user` (`user_id` is sent) and
    `registered_table_columns` (each table spec lists its `columns`); watch follows the configuration, or `watch` (an actor's
    answer of the runtime's watch policy) when given."""
    return models.Features(
        accepted_push_replay_visibility=True,
        authenticated_user=True,
        bundle_change_watch=config.bundle_change_watch if watch is None else watch,
        bundle_pull=True,
        bundle_push=True,
        capabilities_endpoint=True,
        client_schema_version_gate=True,
        committed_bundle_row_fetch=True,
        committed_bundle_visibility=True,
        connect_lifecycle=True,
        graceful_shutdown=True,
        history_pruned_errors=True,
        history_pruned_visibility=True,
        push_session_chunking=True,
        registered_table_columns=True,
        registered_write_rejection_enforced=True,
        retained_floor_visibility=True,
        retained_window_visibility=True,
        scope_initialization_leases=True,
        server_checkpoint_tracking=False,
        snapshot_chunking=True,
        status_endpoint=True,
        structured_sync_keys=True,
    )


def bundle_limits(config: ServiceConfig) -> models.BundleLimits:
    """Every limit that is set; zero (unset or unlimited) limits are left out, as Go omits them."""
    limits = {
        "max_rows_per_bundle": config.max_rows_per_bundle,
        "max_bytes_per_bundle": config.max_bytes_per_bundle,
        "max_bundles_per_pull": MAX_BUNDLES_PER_PULL,
        "default_rows_per_push_chunk": config.default_rows_per_push_chunk,
        "max_rows_per_push_chunk": config.max_rows_per_push_chunk,
        "push_session_ttl_seconds": config.push_session_ttl_seconds,
        "default_rows_per_committed_bundle_chunk": config.default_rows_per_committed_bundle_chunk,
        "max_rows_per_committed_bundle_chunk": config.max_rows_per_committed_bundle_chunk,
        "default_rows_per_snapshot_chunk": config.default_rows_per_snapshot_chunk,
        "max_rows_per_snapshot_chunk": config.max_rows_per_snapshot_chunk,
        "snapshot_session_ttl_seconds": config.snapshot_session_ttl_seconds,
        "max_rows_per_snapshot_session": config.max_rows_per_snapshot_session,
        "max_bytes_per_snapshot_session": config.max_bytes_per_snapshot_session,
        "initialization_lease_ttl_seconds": config.initialization_lease_ttl_seconds,
    }
    return models.BundleLimits.model_validate({k: v for k, v in limits.items() if v > 0})


def capabilities(
    config: ServiceConfig,
    *,
    watch: bool | None = None,
    catalog: Catalog | None = None,
    user_id: str | None = None,
) -> models.CapabilitiesResponse:
    """The capabilities document; `catalog` adds each table's columns, `user_id` the caller."""
    tables = config.registered_tables

    def columns(schema: str, table: str) -> list[str] | None:
        info = None if catalog is None else catalog.by_name(schema, table)
        return None if info is None else [column.name for column in info.payload_columns]

    return models.CapabilitiesResponse(
        protocol_version=PROTOCOL_VERSION,
        schema_version=config.schema_version,
        app_name=config.app_name,
        registered_tables=[table.qualified_name for table in tables],
        registered_table_specs=[
            models.RegisteredTableSpec(
                schema_=table.schema,
                table=table.table,
                sync_key_columns=list(table.sync_key_columns),
                columns=columns(table.schema, table.table),
            )
            for table in tables
        ],
        features=features(config, watch=watch),
        bundle_limits=bundle_limits(config),
        client_schema_versions=client_schema_versions(config),
        user_id=user_id,
    )


def client_schema_versions(config: ServiceConfig) -> models.ClientSchemaVersions:
    """The version gate: the app schema versions served (`max_supported` 0 = no upper bound)."""
    return models.ClientSchemaVersions(
        min_supported=config.min_client_schema_version,
        max_supported=config.max_client_schema_version,
    )


class Discovery(DiscoveryService[object]):
    """Implement the discovery operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def get_capabilities(
        self,
        *,
        principal: object,
        Oversync_Source_ID: str,
    ) -> (
        models.CapabilitiesResponse
        | HTTPResult[models.CapabilitiesResponse | models.ErrorResponse]
        | Response
    ):
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        return capabilities(
            self.runtime.config,
            watch=self.runtime.watch_allowed(actor),
            catalog=catalog_of(self.runtime),
            user_id=actor.user_id,
        )
