"""The composition root: the generated FastAPI application wired to this package's services."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.security import HTTPAuthorizationCredentials

from oversync_server import devendpoints, inspector, observability
from oversync_server.api import Credentials, RequirementSets, create_app
from oversync_server.auth import Authenticator, Principal
from oversync_server.config import ServiceConfig
from oversync_server.engine import schema as sync_schema
from oversync_server.engine.errors import authentication_failed
from oversync_server.errors import exception_handlers
from oversync_server.janitor import install_janitor
from oversync_server.middleware import SyncMiddleware
from oversync_server.push_fastpath import PushFastPath
from oversync_server.runtime import SyncRuntime, WatchPolicy
from oversync_server.services.discovery import Discovery
from oversync_server.services.lifecycle import Lifecycle
from oversync_server.services.monitoring import Monitoring
from oversync_server.services.pull import Pull
from oversync_server.services.push import Push
from oversync_server.services.snapshot import Snapshot
from oversync_server.watch import install_bundle_watch


def create_application(
    runtime: SyncRuntime, authenticator: Authenticator, *, watch_policy: WatchPolicy | None = None
) -> FastAPI:
    """Build the app; the runtime (pool, bootstrap, watch listener, janitor) starts with the
    app's lifespan. `watch_policy` (or `runtime.watch_policy`) is the host application's
    per-actor watch gate: False answers that actor's watch 403 `bundle_change_watch_forbidden`
    and reports `bundle_change_watch: false` in its capabilities."""
    if watch_policy is not None:
        runtime.watch_policy = watch_policy
    sync_schema.install(runtime)  # bootstrap (or validate) the sync schema at start
    install_bundle_watch(runtime)  # the LISTEN side of bundle-change wake-ups
    install_janitor(runtime)  # deletes expired push and snapshot sessions in the background

    async def principal_of(token: str) -> Principal:
        principal = await authenticator.authenticate(token)
        observability.note_user(principal.user_id)  # for the request's log line
        return principal

    async def authorize(_: RequirementSets, credentials: Credentials) -> Principal:
        bearer = credentials.get("bearerAuth")
        if not isinstance(bearer, HTTPAuthorizationCredentials) or not bearer.credentials:
            raise authentication_failed("Authorization header required")
        return await principal_of(bearer.credentials)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            await runtime.start()
        except sync_schema.UnsupportedSchemaError as error:
            runtime.startup_refusal = str(error)
            raise
        try:
            yield
        finally:
            await runtime.stop()

    push = Push(runtime)
    app = create_app(
        lifecycle=Lifecycle(runtime),
        push=push,
        pull=Pull(runtime),
        snapshot=Snapshot(runtime),
        discovery=Discovery(runtime),
        monitoring=Monitoring(runtime),
        authorize=authorize,
        exception_handlers=exception_handlers(),
        lifespan=lifespan,
    )
    if runtime.dev_endpoints:  # development/test endpoints: never on by default
        app.include_router(devendpoints.router(runtime, authenticator))
    if runtime.config.inspector_token:  # the read-only operator page, behind its own token
        app.include_router(inspector.router(runtime))
    # the hot push requests without FastAPI's routing (inside SyncMiddleware: push_fastpath)
    app.add_middleware(PushFastPath, push=push, authenticate=principal_of)
    app.add_middleware(SyncMiddleware, runtime=runtime)
    observability.install(app, runtime)  # outermost: request ids, request log lines, /metrics
    app.state.runtime = runtime
    return app


def build_app(config: ServiceConfig, database_url: str, authenticator: Authenticator) -> FastAPI:
    return create_application(SyncRuntime(config=config, database_url=database_url), authenticator)
