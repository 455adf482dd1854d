"""Pull: GET /sync/pull (protocol.md §6.7) and GET /sync/watch (the stream lives in watch.py).

A pull page is one REPEATABLE READ, READ ONLY transaction with two statements (the scope gate,
then the page), taken without the user lock, so pulls never wait for pushes.
"""

from __future__ import annotations

import logging

from fastapi.responses import Response

from oversync_protocol import models
from oversync_server import watch
from oversync_server.api import HTTPResult
from oversync_server.api.services import PullService
from oversync_server.engine import pull as pulls
from oversync_server.engine.errors import SyncError
from oversync_server.engine.retention import count_history_pruned
from oversync_server.engine.scope import require_initialized
from oversync_server.errors import failing_as
from oversync_server.runtime import Actor, SyncRuntime

log = logging.getLogger("oversync_server")


async def pull(
    runtime: SyncRuntime,
    actor: Actor,
    *,
    after_bundle_seq: int,
    max_bundles: int,
    target_bundle_seq: int,
) -> bytes:
    """One page of bundles for `actor`'s user as the PullResponse JSON body.

    Raises 409 `scope_uninitialized` / `scope_initializing` / `history_pruned`; each
    history_pruned answer bumps `sync.history_pruned_error_seq` (best effort, after the read).
    """
    try:
        async with (
            runtime.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            scope = await require_initialized(conn, actor.user_id)
            page = await pulls.pull_page(
                conn,
                scope,
                after_bundle_seq=after_bundle_seq,
                max_bundles=max_bundles,
                target_bundle_seq=target_bundle_seq,
            )
    except SyncError as error:
        if error.code == "history_pruned":
            await count_history_pruned(runtime.pool)  # best effort, after the read
        raise
    return pulls.render_page(page)


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
        """Handle GET /sync/pull."""
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        with failing_as("pull_failed", "Failed to process pull"):
            body = await pull(
                self.runtime,
                actor,
                after_bundle_seq=after_bundle_seq,
                max_bundles=max_bundles,
                target_bundle_seq=target_bundle_seq,
            )
        return Response(body, media_type="application/json")

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
        """Handle GET /sync/watch: the SSE stream of `oversync_server.watch`."""
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        return await watch.watch_bundles(self.runtime, actor, after_bundle_seq=after_bundle_seq)
