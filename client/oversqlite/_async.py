"""``AsyncClient``: the :class:`~oversqlite.Client` for asyncio programs.

Design: every operation runs the synchronous client's code on one worker thread per client,
so there is exactly one copy of the planning, SQL and protocol logic; the event loop never
blocks on SQLite or the network. Cancelling the awaiting task (``asyncio.timeout``, task
cancellation, a FastAPI request going away) sets the operation's :class:`CancelToken`: the
worker stops at its next safe point (before any HTTP request, during a backoff), which leaves
durable state consistent, and the ``CancelledError`` reaches the caller at once. The next
operation queues behind the winding-down one on the same worker thread. Status reads go through
the client's read connection on the default executor, so they answer during a sync.

A sans-IO core was the alternative; it would mean rewriting every flow as a state machine for
no gain here: SQLite has no async driver, so its work must run on a thread anyway.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from types import TracebackType
from typing import Any, ParamSpec, Self, TypeVar

import httpx

from oversqlite._background import BackgroundSync, EventCallback
from oversqlite._client import Client
from oversqlite._config import ClientConfig
from oversqlite._control import CancelToken, ProgressCallback
from oversqlite._results import (
    AttachResult,
    DetachResult,
    PullReport,
    PushReport,
    SourceInfo,
    SyncReport,
    SyncStatus,
    SyncThenDetachResult,
)
from oversqlite._transport import TokenSource

__all__ = ["AsyncClient"]

P = ParamSpec("P")
T = TypeVar("T")


class AsyncClient:
    """The same operations and results as :class:`~oversqlite.Client`, awaitable.

    Usage::

        async with AsyncClient("app.db", config, base_url=URL, token=token) as client:
            await client.attach("alice")
            report = await client.sync()

    ``progress`` callbacks run on the worker thread; use ``loop.call_soon_threadsafe`` to touch
    loop objects from them.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: ClientConfig,
        *,
        base_url: str,
        token: TokenSource,
        transport: httpx.BaseTransport | None = None,
        tracer: Callable[[str], None] | None = None,
    ) -> None:
        self.sync_client = Client(
            path, config, base_url=base_url, token=token, transport=transport, tracer=tracer
        )
        """The underlying synchronous client (for code that runs in threads)."""
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="oversqlite-async")

    async def _run(
        self, method: Callable[..., T], *args: Any, cancellable: bool = True, **kwargs: Any
    ) -> T:
        loop = asyncio.get_running_loop()
        token = CancelToken()
        if cancellable:
            kwargs["cancel"] = token
        future = loop.run_in_executor(self._worker, functools.partial(method, *args, **kwargs))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            token.cancel()  # the worker stops at its next safe point
            future.add_done_callback(_consume)
            raise

    async def _read(self, method: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, method)

    # ------------------------------------------------------------------ lifecycle

    async def open(self) -> Self:
        await self._run(self.sync_client.open, cancellable=False)
        return self

    async def close(self) -> None:
        """Stop background sync, wait for the running operation, close. Idempotent."""
        await self._run(self.sync_client.close, cancellable=False)
        self._worker.shutdown(wait=False)

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def attach(
        self, user_id: str, *, progress: ProgressCallback | None = None
    ) -> AttachResult:
        return await self._run(self.sync_client.attach, user_id, progress=progress)

    async def detach(self) -> DetachResult:
        return await self._run(self.sync_client.detach, cancellable=False)

    async def sync_then_detach(
        self, *, progress: ProgressCallback | None = None
    ) -> SyncThenDetachResult:
        return await self._run(self.sync_client.sync_then_detach, progress=progress)

    async def uninstall_sync(self) -> None:
        await self._run(self.sync_client.uninstall_sync, cancellable=False)

    # ------------------------------------------------------------------ sync

    async def push_pending(self, *, progress: ProgressCallback | None = None) -> PushReport:
        return await self._run(self.sync_client.push_pending, progress=progress)

    async def pull_to_stable(self, *, progress: ProgressCallback | None = None) -> PullReport:
        return await self._run(self.sync_client.pull_to_stable, progress=progress)

    async def sync(self, *, progress: ProgressCallback | None = None) -> SyncReport:
        return await self._run(self.sync_client.sync, progress=progress)

    async def rebuild(self, *, progress: ProgressCallback | None = None) -> PullReport:
        return await self._run(self.sync_client.rebuild, progress=progress)

    # ------------------------------------------------------------------ status (never waits)

    async def status(self) -> SyncStatus:
        return await self._read(self.sync_client.status)

    async def pending_row_count(self) -> int:
        return await self._read(self.sync_client.pending_row_count)

    async def last_bundle_seq_seen(self) -> int:
        return await self._read(self.sync_client.last_bundle_seq_seen)

    async def source_info(self) -> SourceInfo:
        return await self._read(self.sync_client.source_info)

    # ------------------------------------------------------------------ background sync

    def start(
        self,
        *,
        watch: bool = False,
        on_event: EventCallback | None = None,
        poll_interval: float | None = None,
    ) -> BackgroundSync:
        """:meth:`Client.start`: background sync on its own thread (``on_event`` runs there)."""
        return self.sync_client.start(watch=watch, on_event=on_event, poll_interval=poll_interval)

    async def stop(self) -> None:
        await self._read(self.sync_client.stop)


def _consume(future: asyncio.Future[Any]) -> None:
    """Retrieve a cancelled operation's outcome so asyncio does not log it as unhandled."""
    if not future.cancelled():
        future.exception()
