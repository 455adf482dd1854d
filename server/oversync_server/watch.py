"""Bundle change watch: `GET /sync/watch` wake-ups over Server-Sent Events (protocol.md §7,
reference/server.md §9).

Every committed bundle sends `pg_notify('oversync_bundle_change_v1',
'{"user_pk":N,"bundle_seq":N,"source_id":"...","source_bundle_id":N}')` inside its transaction
(storage-push's capture code), so PostgreSQL delivers it only on COMMIT, to every server process
LISTENing on the database. Each process runs:

* one `BundleChangeListener`: a dedicated asyncpg connection (not a pool slot) that LISTENs and
  publishes each notification to the hub; on a lost connection it reconnects with backoff
  (100 ms doubling to 2 s) and then publishes a catch-up event (the user's latest bundle_seq)
  for every user with subscribers, covering whatever was committed while it was away;
* one `BundleHub`: process-local subscribers per user_pk, each with a buffer of one event where
  the newest wins and only events past the last delivered `bundle_seq` count (wake-up hints,
  coalesced, never one event per bundle).

The SSE stream sends `event: bundle\\ndata: {...}\\n\\n` and a `: heartbeat\\n\\n` comment every
`watch_heartbeat_seconds`. On subscribe, the user's latest bundle_seq is read *after* the
subscriber is registered, so a commit racing the subscription is never missed.

Bounds: at most `max_watch_streams_per_user` streams per user and `max_watch_streams_per_process`
in all (0 = unlimited) in this process, else 429 `too_many_watch_streams`; a stream ends when
its credential expires (`Principal.expires_at`; the client reconnects with a fresh token) and
all streams end at once when a graceful shutdown begins (`runtime.shutdown_begin_hooks`; they are
not in-flight work). A host application's `runtime.watch_policy` can refuse an actor (403
`bundle_change_watch_forbidden`).

Wiring: `install_bundle_watch(runtime)` registers the listener's start/stop hooks (nothing when
`bundle_change_watch` is off); `bundle_watch(runtime)` returns the process's instance
(`subscriber_count(user_id)` serves `/test/watch-subscribers`); `watch_bundles(runtime, actor,
after_bundle_seq=...)` is the handler `services/pull.py` delegates to.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from fastapi.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from oversync_server.config import WATCH_NOTIFY_CHANNEL
from oversync_server.engine.errors import SyncError
from oversync_server.engine.pool import database_unavailable
from oversync_server.engine.scope import require_initialized
from oversync_server.errors import unavailable_error
from oversync_server.runtime import Actor, SyncRuntime

__all__ = [
    "BundleChangeListener",
    "BundleEvent",
    "BundleHub",
    "BundleWatch",
    "EventStream",
    "Subscription",
    "bundle_watch",
    "install_bundle_watch",
    "parse_notification",
    "too_many_streams",
    "watch_bundles",
]

log = logging.getLogger("oversync_server")

LISTENER_APPLICATION_NAME = "oversync-watch-listener"
RECONNECT_INITIAL_SECONDS = 0.1
RECONNECT_MAX_SECONDS = 2.0
# How often the idle listener connection is probed: a dead TCP peer never says goodbye.
PROBE_INTERVAL_SECONDS = 10.0
PROBE_TIMEOUT_SECONDS = 5.0
FIRST_CONNECT_TIMEOUT_SECONDS = 5.0
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",
}
HEARTBEAT = b": heartbeat\n\n"


@dataclass(frozen=True, slots=True)
class BundleEvent:
    """A wake-up: the user's bundle `bundle_seq` committed (source fields absent in catch-ups)."""

    bundle_seq: int
    source_id: str | None = None
    source_bundle_id: int | None = None

    def sse(self) -> bytes:
        """The SSE frame; `data` is the wire's BundleChangeEvent in Go's field order."""
        data: dict[str, Any] = {"bundle_seq": self.bundle_seq}
        if self.source_id:
            data["source_id"] = self.source_id
        if self.source_bundle_id:
            data["source_bundle_id"] = self.source_bundle_id
        text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
        return f"event: bundle\ndata: {text}\n\n".encode()


def parse_notification(payload: str) -> tuple[int, BundleEvent] | None:
    """`(user_pk, event)` of a NOTIFY payload, or None when it is not a valid bundle change."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    user_pk, bundle_seq = _positive(data.get("user_pk")), _positive(data.get("bundle_seq"))
    if user_pk is None or bundle_seq is None:
        return None
    source_id = data.get("source_id")
    return user_pk, BundleEvent(
        bundle_seq=bundle_seq,
        source_id=source_id if isinstance(source_id, str) and source_id else None,
        source_bundle_id=_positive(data.get("source_bundle_id")),
    )


def _positive(value: object) -> int | None:
    """`value` if it is a JSON integer > 0, else None."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return None


# ------------------------------------------------------------------------------------ the hub


def too_many_streams(detail: str) -> SyncError:
    return SyncError(
        "too_many_watch_streams",
        f"too many bundle change watch streams: {detail}; close one or poll instead",
    )


@dataclass(eq=False)
class Subscription:
    """One watcher: a buffer of one event (newest wins) past `last_seq`."""

    user_pk: int
    user_id: str
    last_seq: int
    pending: BundleEvent | None = None
    closed: bool = False
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, event: BundleEvent) -> None:
        """Queue `event` unless it is not newer than what this watcher has or holds."""
        if self.closed or event.bundle_seq <= self.last_seq:
            return
        self.last_seq = event.bundle_seq
        self.pending = event
        self._wake.set()

    def close(self) -> None:
        self.closed = True
        self._wake.set()

    async def next_event(self, timeout: float | None) -> BundleEvent | None:
        """The queued event, waiting up to `timeout` seconds (None: no limit); None on timeout
        or close."""
        if self.pending is None and not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
        self._wake.clear()
        event, self.pending = self.pending, None
        return event


class BundleHub:
    """Process-local fan-out of bundle events to the subscribers of each user_pk."""

    def __init__(self) -> None:
        self._subscribers: dict[int, set[Subscription]] = {}
        self._per_user: dict[str, int] = {}
        self._total = 0

    def publish(self, user_pk: int, event: BundleEvent) -> None:
        for subscription in self._subscribers.get(user_pk, ()):
            subscription.offer(event)

    def subscribe(
        self, user_pk: int, user_id: str, after: int, *, per_user: int = 0, per_process: int = 0
    ) -> Subscription:
        """Register a watcher that has seen everything up to `after`; pair with `unsubscribe`.

        Raises 429 `too_many_watch_streams` when the user already has `per_user` streams or the
        process `per_process` (0 = unlimited).
        """
        if per_process and self._total >= per_process:
            raise too_many_streams(f"this server has {self._total} open watch streams")
        if per_user and self._per_user.get(user_id, 0) >= per_user:
            raise too_many_streams(f"user {user_id} has {per_user} open watch streams")
        subscription = Subscription(user_pk=user_pk, user_id=user_id, last_seq=after)
        self._subscribers.setdefault(user_pk, set()).add(subscription)
        self._per_user[user_id] = self._per_user.get(user_id, 0) + 1
        self._total += 1
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        """Remove a watcher (idempotent) and wake its stream so it ends."""
        subscription.close()
        watchers = self._subscribers.get(subscription.user_pk)
        if watchers is None or subscription not in watchers:
            return
        watchers.discard(subscription)
        if not watchers:
            del self._subscribers[subscription.user_pk]
        self._total -= 1
        left = self._per_user[subscription.user_id] - 1
        if left:
            self._per_user[subscription.user_id] = left
        else:
            del self._per_user[subscription.user_id]

    def user_pks(self) -> list[int]:
        """The users with at least one watcher (for catch-up after a reconnect)."""
        return list(self._subscribers)

    def subscriber_count(self, user_id: str) -> int:
        return self._per_user.get(user_id, 0)

    @property
    def stream_count(self) -> int:
        """Open streams of this process."""
        return self._total

    def close_all(self) -> None:
        """End every stream (service shutdown)."""
        for watchers in self._subscribers.values():
            for subscription in watchers:
                subscription.close()


# ------------------------------------------------------------------------------- the listener

_LATEST = """
SELECT user_pk, next_bundle_seq - 1 AS latest
FROM sync.user_state
WHERE user_pk = ANY($1::bigint[])
"""


class BundleChangeListener:
    """LISTENs on the notify channel over a dedicated connection and feeds the hub.

    `start()` returns once the first LISTEN is active (or after a short timeout, retrying in the
    background); `stop()` ends the loop and closes the connection.
    """

    def __init__(self, hub: BundleHub, database_url: str, channel: str = WATCH_NOTIFY_CHANNEL):
        self.hub = hub
        self.database_url = database_url
        self.channel = channel
        self.connections = 0  # successful LISTENs so far (a reconnect makes it > 1)
        self._task: asyncio.Task[None] | None = None
        self._listening = asyncio.Event()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="oversync-watch-listener")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._listening.wait(), FIRST_CONNECT_TIMEOUT_SECONDS)
        if not self._listening.is_set():
            log.warning("bundle change listener is not connected yet; retrying in background")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._listening.clear()

    async def _run(self) -> None:
        delay = RECONNECT_INITIAL_SECONDS
        failures = 0
        while True:
            try:
                await self._listen_once()
                delay, failures = RECONNECT_INITIAL_SECONDS, 0  # it was connected: start over
            except Exception as exc:  # a background loop must survive anything and keep retrying
                failures += 1
                # the first failure with its traceback; while the database stays away, one line
                log.warning(
                    "bundle change listener lost its connection (attempt %d, retrying in %.1fs):"
                    " %s: %s",
                    failures,
                    delay,
                    type(exc).__name__,
                    exc,
                    exc_info=failures == 1,
                )
            self._listening.clear()
            await asyncio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)

    async def _listen_once(self) -> None:
        """One connection's life: LISTEN, catch up, then wait until the connection is lost."""
        lost = asyncio.Event()
        connection = await asyncpg.connect(
            self.database_url, server_settings={"application_name": LISTENER_APPLICATION_NAME}
        )
        try:
            connection.add_termination_listener(lambda _: lost.set())
            await connection.add_listener(self.channel, self._on_notify)
            self.connections += 1
            self._listening.set()
            # After LISTEN is active: anything committed while we were not listening.
            await self.catch_up(connection)
            while not lost.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(lost.wait(), PROBE_INTERVAL_SECONDS)
                if not lost.is_set():
                    await connection.fetchval("SELECT 1", timeout=PROBE_TIMEOUT_SECONDS)
        finally:
            await _close_quietly(connection)

    async def catch_up(self, connection: asyncpg.Connection) -> None:
        """Publish each watched user's latest bundle_seq (a catch-up event: bundle_seq only)."""
        user_pks = self.hub.user_pks()
        if not user_pks:
            return
        try:
            rows = await connection.fetch(_LATEST, user_pks)
        except asyncpg.PostgresError:  # e.g. the sync schema is being recreated
            log.warning("bundle change catch-up failed", exc_info=True)
            return
        for row in rows:
            if row["latest"] > 0:
                self.hub.publish(row["user_pk"], BundleEvent(bundle_seq=row["latest"]))

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        parsed = parse_notification(payload) if isinstance(payload, str) else None
        if parsed is None:
            log.warning("ignoring an invalid bundle change notification: %.200s", payload)
            return
        self.hub.publish(*parsed)


async def _close_quietly(connection: asyncpg.Connection) -> None:
    if connection.is_closed():
        return
    try:
        await asyncio.wait_for(connection.close(), PROBE_TIMEOUT_SECONDS)
    except Exception:
        connection.terminate()


# --------------------------------------------------------------------------- wiring + handler


class BundleWatch:
    """The watch of one server process: the hub and (when enabled) its listener."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime
        self.hub = BundleHub()
        listener_url = runtime.config.watch_database_url or runtime.database_url
        self.listener = BundleChangeListener(self.hub, listener_url)

    @property
    def enabled(self) -> bool:
        return self.runtime.config.bundle_change_watch

    async def start(self, _: SyncRuntime | None = None) -> None:
        if self.enabled:
            await self.listener.start()

    async def stop(self, _: SyncRuntime | None = None) -> None:
        self.hub.close_all()
        await self.listener.stop()

    def subscriber_count(self, user_id: str) -> int:
        """Process-local count of open watch streams of `user_id`."""
        return self.hub.subscriber_count(user_id)


_ATTRIBUTE = "bundle_watch"


def install_bundle_watch(runtime: SyncRuntime) -> BundleWatch:
    """Create the process's watch and register its listener as runtime start/stop hooks."""
    existing = getattr(runtime, _ATTRIBUTE, None)
    if isinstance(existing, BundleWatch):
        return existing
    watch = BundleWatch(runtime)
    setattr(runtime, _ATTRIBUTE, watch)
    runtime.start_hooks.append(watch.start)
    runtime.stop_hooks.append(watch.stop)
    # Streams are not in-flight work: a graceful shutdown ends them at once, so the server
    # does not wait for (or cancel) them while draining requests.
    runtime.shutdown_begin_hooks.append(watch.hub.close_all)
    return watch


def bundle_watch(runtime: SyncRuntime) -> BundleWatch:
    """The process's watch (installed on first use if the composition root did not)."""
    return install_bundle_watch(runtime)


_LATEST_OF_USER = "SELECT next_bundle_seq - 1 FROM sync.user_state WHERE user_pk = $1"


async def watch_bundles(runtime: SyncRuntime, actor: Actor, *, after_bundle_seq: int) -> Response:
    """`GET /sync/watch`: 403 when the watch policy refuses the actor, 503 when disabled, 429 over
    the stream caps, 409 unless the scope is initialized, else the stream (ending when the
    actor's credential expires).

    Setup (scope gate, subscribe, catch-up read) happens before the 200, so its failures are
    proper errors; the pool connection is released before streaming starts.
    """
    watch = bundle_watch(runtime)
    if watch.enabled and not runtime.watch_allowed(actor):
        raise SyncError(
            "bundle_change_watch_forbidden", "Bundle change watch is not enabled for this client"
        )
    if not watch.enabled:
        raise SyncError("bundle_change_watch_disabled", "Bundle change watch is disabled")
    if after_bundle_seq < 0:
        raise SyncError("invalid_request", "after_bundle_seq must be >= 0")
    await watch.listener.start()  # no-op once started; covers a watch installed after start
    hub = watch.hub
    config = runtime.config
    subscription: Subscription | None = None
    try:
        async with runtime.pool.acquire() as conn:
            async with conn.transaction(readonly=True):
                scope = await require_initialized(conn, actor.user_id)
            # Register first, then read: a commit racing the subscription is seen either way.
            subscription = hub.subscribe(
                scope.user_pk,
                actor.user_id,
                after_bundle_seq,
                per_user=config.max_watch_streams_per_user,
                per_process=config.max_watch_streams_per_process,
            )
            latest = await conn.fetchval(_LATEST_OF_USER, scope.user_pk)
    except BaseException as error:
        if subscription is not None:
            hub.unsubscribe(subscription)
        if isinstance(error, SyncError) or not isinstance(error, Exception):
            raise
        if database_unavailable(error):
            raise unavailable_error(error) from error
        log.exception("Failed to subscribe bundle change watch")
        raise SyncError(
            "bundle_change_watch_failed", "Failed to subscribe bundle change watch"
        ) from error
    if runtime.lifecycle != "running":  # a shutdown began while subscribing
        hub.unsubscribe(subscription)
        raise SyncError("service_unavailable", "Sync service is shutting down")
    if latest is not None and latest > after_bundle_seq:
        subscription.offer(BundleEvent(bundle_seq=latest))
    return EventStream(
        hub, subscription, config.watch_heartbeat_seconds, expires_at=actor.expires_at
    )


class EventStream(StreamingResponse):
    """The SSE response of one subscription; unsubscribes however the response ends."""

    def __init__(
        self,
        hub: BundleHub,
        subscription: Subscription,
        heartbeat_seconds: float,
        *,
        expires_at: float | None = None,
    ):
        self._events = _events(subscription, heartbeat_seconds, expires_at)
        super().__init__(self._events, headers=SSE_HEADERS)
        self._hub = hub
        self._subscription = subscription

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._hub.unsubscribe(self._subscription)
            await self._events.aclose()


async def _events(
    subscription: Subscription, heartbeat_seconds: float, expires_at: float | None = None
) -> AsyncGenerator[bytes]:
    """Events as they come and a heartbeat comment every interval, until the watcher closes or
    `expires_at` (Unix seconds) passes."""
    loop = asyncio.get_running_loop()
    interval = heartbeat_seconds if heartbeat_seconds > 0 else None
    next_beat = None if interval is None else loop.time() + interval
    end = None if expires_at is None else loop.time() + (expires_at - time.time())
    while not subscription.closed:
        if end is not None and loop.time() >= end:
            return  # the credential expired: the client reconnects with a fresh one
        wakes = [moment for moment in (next_beat, end) if moment is not None]
        timeout = max(0.0, min(wakes) - loop.time()) if wakes else None
        event = await subscription.next_event(timeout)
        if event is not None:
            yield event.sse()
        if next_beat is not None and interval is not None and loop.time() >= next_beat:
            yield HEARTBEAT
            next_beat = loop.time() + interval
