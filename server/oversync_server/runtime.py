"""The shared state of one server process: configuration, the PostgreSQL pool and the lifecycle.

Nothing here is per-user: all sync state lives in PostgreSQL, so any number of server processes
can serve one database. Services receive the runtime and take what they need from it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import asyncpg

from oversync_server.auth import Principal
from oversync_server.config import ServiceConfig
from oversync_server.engine.errors import SyncError, authentication_failed, invalid_request

if TYPE_CHECKING:
    from oversync_server.engine.catalog import Catalog

log = logging.getLogger("oversync_server")

Lifecycle = Literal["running", "shutting_down", "closed"]
Hook = Callable[["SyncRuntime"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of a `/sync/*` operation: the user (scope) and the writing source."""

    user_id: str
    source_id: str


@dataclass
class SyncRuntime:
    config: ServiceConfig
    database_url: str
    pool_min_size: int = 1
    pool_max_size: int = 10
    lifecycle: Lifecycle = "running"
    inflight_operations: int = 0
    start_hooks: list[Hook] = field(default_factory=list)
    stop_hooks: list[Hook] = field(default_factory=list)
    # Called once when a graceful shutdown begins (before in-flight requests drain): e.g. the
    # watch hub ends its streams, which are not in-flight work.
    shutdown_begin_hooks: list[Callable[[], None]] = field(default_factory=list)
    dev_endpoints: bool = False
    # The registered tables as found in PostgreSQL, set by the bootstrap start hook.
    catalog: Catalog | None = None
    _pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise SyncError("service_unavailable", "Sync service is not started")
        return self._pool

    async def start(self) -> None:
        self._pool = await asyncpg.create_pool(
            self.database_url, min_size=self.pool_min_size, max_size=self.pool_max_size
        )
        self.lifecycle = "running"
        for hook in self.start_hooks:
            await hook(self)

    def begin_shutdown(self) -> None:
        """Refuse new sync operations (503) and end what is not in-flight work; idempotent."""
        if self.lifecycle != "running":
            return
        self.lifecycle = "shutting_down"
        for hook in self.shutdown_begin_hooks:
            try:
                hook()
            except Exception:
                log.exception("error while beginning shutdown")

    async def stop(self) -> None:
        self.begin_shutdown()
        self.lifecycle = "shutting_down"
        for hook in reversed(self.stop_hooks):
            try:
                await hook(self)
            except Exception:  # keep closing the rest
                log.exception("error while stopping")
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self.lifecycle = "closed"

    def actor(self, principal: object, source_header: str) -> Actor:
        """The actor of a request; refuses a blank source id or a missing principal."""
        if self.lifecycle != "running":
            raise SyncError("service_unavailable", "Sync service is shutting down")
        if not isinstance(principal, Principal) or not principal.user_id.strip():
            raise authentication_failed("authenticated user_id not found in request context")
        source_id = source_header.strip()
        if not source_id:
            raise invalid_request("Oversync-Source-ID header is required")
        return Actor(principal.user_id.strip(), source_id)
