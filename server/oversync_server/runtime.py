"""The shared state of one server process: configuration, the PostgreSQL pool and the lifecycle.

Nothing here is per-user state: all sync state lives in PostgreSQL, so any number of server
processes can serve one database (the pool's per-user turns are only a local waiting room in front
of the PostgreSQL user lock, `engine.scope.user_lock`). The pool is sized and bounded by the
configuration (`engine.pool`). Services receive the runtime and take what they need from it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from oversync_server.auth import Principal
from oversync_server.config import ServiceConfig
from oversync_server.engine.errors import SyncError, authentication_failed, invalid_request
from oversync_server.engine.identifiers import identifier_problem
from oversync_server.engine.pool import SessionTimeouts, SyncPool, create_pool

if TYPE_CHECKING:
    from oversync_server.engine.catalog import Catalog

log = logging.getLogger("oversync_server")

Lifecycle = Literal["running", "shutting_down", "closed"]
Hook = Callable[["SyncRuntime"], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Actor:
    """The caller of a `/sync/*` operation: the user (scope) and the writing source.

    `expires_at` is when the caller's credential expires (Unix seconds; `Principal.expires_at`),
    so long-lived requests (watch streams) can end then.
    """

    user_id: str
    source_id: str
    expires_at: float | None = field(default=None, compare=False)


# A host application's per-actor watch gate (reference: BundleChangeWatchAllowed): False refuses
# the actor's `GET /sync/watch` with 403 `bundle_change_watch_forbidden` and reports
# `features.bundle_change_watch: false` in its capabilities.
WatchPolicy = Callable[[Actor], bool]


@dataclass
class SyncRuntime:
    config: ServiceConfig
    database_url: str
    lifecycle: Lifecycle = "running"
    inflight_operations: int = 0
    start_hooks: list[Hook] = field(default_factory=list)
    stop_hooks: list[Hook] = field(default_factory=list)
    # Called once when a graceful shutdown begins (before in-flight requests drain): e.g. the
    # watch hub ends its streams, which are not in-flight work.
    shutdown_begin_hooks: list[Callable[[], None]] = field(default_factory=list)
    dev_endpoints: bool = False
    # Why the start was refused (the database cannot be served as configured), for `serve` to
    # print as one line instead of a traceback.
    startup_refusal: str | None = None
    watch_policy: WatchPolicy | None = None
    # The registered tables as found in PostgreSQL, set by the bootstrap start hook.
    catalog: Catalog | None = None
    _pool: SyncPool | None = None

    @property
    def pool(self) -> SyncPool:
        if self._pool is None:
            raise SyncError("service_unavailable", "Sync service is not started")
        return self._pool

    async def start(self) -> None:
        config = self.config
        self._pool = await create_pool(
            self.database_url,
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            acquire_timeout=config.pool_acquire_timeout_seconds,
            user_lock_timeout=config.user_lock_timeout_seconds,
            session=SessionTimeouts(
                lock_timeout=config.lock_timeout_seconds,
                statement_timeout=config.statement_timeout_seconds,
                idle_in_transaction_session_timeout=config.idle_in_transaction_timeout_seconds,
            ),
            transaction_pooling=config.pool_mode == "transaction",
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

    def watch_allowed(self, actor: Actor) -> bool:
        """Whether `actor` may watch: the feature is on and `watch_policy` (if set) allows it."""
        if not self.config.bundle_change_watch:
            return False
        return self.watch_policy is None or bool(self.watch_policy(actor))

    def actor(self, principal: object, source_header: str) -> Actor:
        """The actor of a request; refuses a missing principal or an unusable user id (401) and
        a blank or unusable source id (400; `engine.identifiers`)."""
        if self.lifecycle != "running":
            raise SyncError("service_unavailable", "Sync service is shutting down")
        if not isinstance(principal, Principal) or not principal.user_id.strip():
            raise authentication_failed("authenticated user_id not found in request context")
        user_id = principal.user_id.strip()
        if problem := identifier_problem(user_id):
            raise authentication_failed(f"authenticated user id {problem}")
        source_id = source_header.strip()
        if not source_id:
            raise invalid_request("Oversync-Source-ID header is required")
        if problem := identifier_problem(source_id):
            raise invalid_request(f"Oversync-Source-ID header {problem}")
        return Actor(user_id, source_id, principal.expires_at)
