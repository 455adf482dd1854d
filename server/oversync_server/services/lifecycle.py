"""Lifecycle: POST /sync/connect, the first-connect state machine (protocol.md §6.1, §10).

| scope                        | has_local_pending_rows | resolution                               |
| ---------------------------- | ---------------------- | ---------------------------------------- |
| INITIALIZED                  | any                    | remote_authoritative                     |
| UNINITIALIZED (or expired)   | true                   | initialize_local (new id, lease now+TTL) |
| UNINITIALIZED (or expired)   | false                  | initialize_empty (-> INITIALIZED)        |
| INITIALIZING by this source  | true                   | initialize_local (same id, lease renewed)|
| INITIALIZING by this source  | false                  | initialize_empty (seeding abandoned)     |
| INITIALIZING by another      | any                    | retry_later (+ retry_after_seconds >= 1) |

Runs under the user lock in one READ COMMITTED transaction, as the reference does.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta
from typing import Any

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import LifecycleService
from oversync_server.engine import scope as scopes
from oversync_server.engine.scope import Connection, ScopeCode
from oversync_server.errors import failing_as
from oversync_server.runtime import Actor, SyncRuntime
from oversync_wire.timefmt import rfc3339_nano

log = logging.getLogger("oversync_server")


def json_response(body: dict[str, Any], status: int = 200) -> Response:
    """A compact JSON body written as is (used where Go's rendering matters, e.g. timestamps)."""
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        media_type="application/json",
    )


async def resolve_connect(
    conn: Connection,
    actor: Actor,
    *,
    has_local_pending_rows: bool,
    lease_ttl: timedelta,
    at: datetime | None = None,
) -> dict[str, Any]:
    """Apply the connect decision table to the user's locked scope; the response body.

    Call under `user_lock`, inside a transaction.
    """
    moment = at or scopes.now()
    scope = await scopes.lock_scope(conn, actor.user_id, at=moment)
    if scope.state is ScopeCode.INITIALIZED:
        return {"resolution": "remote_authoritative"}
    mine = scope.state is ScopeCode.UNINITIALIZED or (
        scope.initializer_source_id == actor.source_id
    )
    if not mine:
        lease = scope.lease_expires_at
        assert lease is not None  # INITIALIZING rows always carry a lease (a CHECK in storage)
        return {
            "resolution": "retry_later",
            "lease_expires_at": rfc3339_nano(lease),
            "retry_after_seconds": max(1, int((lease - moment).total_seconds())),
        }
    if not has_local_pending_rows:
        await scopes.mark_initialized(conn, scope.user_pk, source_id=actor.source_id)
        return {"resolution": "initialize_empty"}
    if scope.state is ScopeCode.INITIALIZING:  # same source reconnecting: same id, new lease
        scope = await scopes.refresh_lease(conn, scope, lease_ttl=lease_ttl, at=moment)
    else:
        scope = await scopes.begin_initialization(
            conn, scope, source_id=actor.source_id, lease_ttl=lease_ttl, at=moment
        )
    assert scope.initialization_id is not None and scope.lease_expires_at is not None
    return {
        "resolution": "initialize_local",
        "initialization_id": str(scope.initialization_id),
        "lease_expires_at": rfc3339_nano(scope.lease_expires_at),
    }


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
        """Handle POST /sync/connect."""
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        ttl = timedelta(seconds=self.runtime.config.initialization_lease_ttl_seconds)
        with failing_as("connect_failed", "Failed to resolve connect lifecycle"):
            async with (
                scopes.user_lock(self.runtime.pool, actor.user_id) as conn,
                conn.transaction(),
            ):
                result = await resolve_connect(
                    conn, actor, has_local_pending_rows=body.has_local_pending_rows, lease_ttl=ttl
                )
        return json_response(result)
