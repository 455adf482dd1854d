"""Pull: GET /sync/pull (protocol.md §6.7) and GET /sync/watch (the stream lives in watch.py).

A pull page is one REPEATABLE READ, READ ONLY transaction (the scope gate, the page plan, keyset
batches of its rows; `engine.pull`), taken without the user lock, so pulls never wait for
pushes. A page larger than one chunk is streamed while its transaction stays open
(`_StreamedPage`: what can fail with an error status is checked before the first byte).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable

from fastapi.responses import Response
from starlette.types import Receive, Scope, Send

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


class _StreamedPage(Response):
    """A pull page streamed from its open read transaction; `close` ends the transaction and
    returns the connection however the response ends (finished, failed or disconnected).

    Everything a pull can answer with an error status is checked before the first byte (the
    scope gate and the history floor in `plan_page`, which also reads the page's first rows).
    A failure after that (a lost database connection, a statement timeout) can no longer change
    the 200: the server then drops the connection before the chunked body's last chunk, so the
    client sees a truncated response (a transport error, which it retries), never a short page
    that parses. A client that disconnects stops the reading after the chunk in hand."""

    def __init__(
        self,
        chunks: AsyncGenerator[bytes, None],
        started: list[bytes],
        close: Callable[[], Awaitable[None]],
    ) -> None:
        super().__init__(media_type="application/json")
        # the length is unknown: the body goes out chunked
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self.chunks, self.started, self.close = chunks, started, close

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gone = asyncio.ensure_future(_disconnected(receive))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            for chunk in self.started:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            async for chunk in self.chunks:
                if gone.done() and gone.exception() is None:
                    return  # nobody reads the rest
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            gone.cancel()
            try:
                await self.chunks.aclose()  # its next statement, if sent, ends first
            finally:
                await self.close()


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def pull(
    runtime: SyncRuntime,
    actor: Actor,
    *,
    after_bundle_seq: int,
    max_bundles: int,
    target_bundle_seq: int,
) -> Response:
    """One page of bundles for `actor`'s user as the PullResponse JSON body: a plain response
    when the page fits in one chunk, else streamed from its read transaction.

    Raises 409 `scope_uninitialized` / `scope_initializing` / `history_pruned`; each
    history_pruned answer bumps `sync.history_pruned_error_seq` (best effort, after the read).
    """
    conn = await runtime.pool.acquire()
    transaction = conn.transaction(isolation="repeatable_read", readonly=True)

    released = False

    async def close() -> None:
        nonlocal released
        if released:
            return
        released = True
        try:
            if not conn.is_closed() and conn.is_in_transaction():
                await transaction.rollback()  # read only: nothing to keep
        except Exception:  # a lost connection: the pool discards it on release
            log.debug("pull transaction could not be rolled back", exc_info=True)
        finally:
            await runtime.pool.release(conn)

    chunks: AsyncGenerator[bytes, None] | None = None
    try:
        await transaction.start()
        scope = await require_initialized(conn, actor.user_id)
        plan = await pulls.plan_page(
            conn,
            scope,
            after_bundle_seq=after_bundle_seq,
            max_bundles=max_bundles,
            target_bundle_seq=target_bundle_seq,
            max_bytes=runtime.config.max_bytes_per_pull,
        )
        chunks = pulls.page_chunks(conn, plan)
        first = await anext(chunks)
        second = await anext(chunks, None)
    except BaseException as error:
        if chunks is not None:
            await chunks.aclose()
        await close()
        if isinstance(error, SyncError) and error.code == "history_pruned":
            await count_history_pruned(runtime.pool)  # best effort, after the read
        raise
    if second is None:  # the whole page is here
        await close()
        return Response(first, media_type="application/json")
    return _StreamedPage(chunks, [first, second], close)


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
            return await pull(
                self.runtime,
                actor,
                after_bundle_seq=after_bundle_seq,
                max_bundles=max_bundles,
                target_bundle_seq=target_bundle_seq,
            )

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
