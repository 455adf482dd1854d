"""Background sync: one thread that pushes soon after local writes and pulls on wake-ups.

The loop watches ``PRAGMA data_version`` on the client's status connection (it changes when any
other connection commits, so a local write costs one cheap pragma per tick to notice) and the
pending row count. It runs ``sync()`` (or only the push / the pull while the other direction is
paused) when rows are pending, when the watch stream announces a bundle, and every poll
interval. Transport errors and 429/502/503/504 mark the client offline and are retried with
jittered exponential backoff; other errors are reported and retried after the longest backoff.
A second thread keeps the ``/sync/watch`` stream open when asked to (``watch=True``) and the
server advertises it; it reconnects with backoff and falls back to polling when the server
refuses watch.

Events go to the ``on_event`` callback (called on the background thread; it must not block)
and into a bounded queue read by :meth:`BackgroundSync.events`.
"""

from __future__ import annotations

import enum
import logging
import queue
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx

from oversqlite._control import CancelToken, OperationCancelledError
from oversqlite._errors import (
    PushRejectedError,
    StateError,
    SyncError,
    TransportError,
)
from oversqlite._results import PushReport, RejectedChange, ResolvedConflict, SyncReport
from oversqlite._watch import WatchUnavailableError, watch_events

if TYPE_CHECKING:
    from oversqlite._client import Client

__all__ = ["BackgroundSync", "EventCallback", "EventKind", "SyncEvent"]

logger = logging.getLogger("oversqlite")

TICK = 0.1
"""Seconds between two looks at ``data_version`` (how soon a local write is pushed)."""
DEFAULT_POLL_INTERVAL = 5.0
DEFAULT_WATCH_POLL_INTERVAL = 60.0
"""Pull interval while the watch stream is open (a safety net; events do the work)."""
BACKOFF_MIN, BACKOFF_MAX = 0.5, 30.0
EVENT_QUEUE_SIZE = 1000


class EventKind(enum.StrEnum):
    SYNCED = "synced"
    """A sync round finished (``report``)."""
    PENDING_CHANGED = "pending_changed"
    """The pending row count changed (``pending_row_count``)."""
    CONFLICT_RESOLVED = "conflict_resolved"
    """The resolver settled a conflict during a push (``conflict``)."""
    CHANGE_REJECTED = "change_rejected"
    """The server rejected pushed rows for good (``error``)."""
    ERROR = "error"
    """A sync round failed (``error``); it is retried after a backoff."""
    ONLINE = "online"
    """The server answered again after transport errors."""
    OFFLINE = "offline"
    """The server cannot be reached (``error``); retrying with backoff."""
    WATCHING = "watching"
    """The ``/sync/watch`` stream is open: bundles of other devices arrive within moments."""
    POLLING = "polling"
    """No watch stream (off, refused or broken): pulling every poll interval."""


@dataclass(frozen=True)
class SyncEvent:
    kind: EventKind
    report: SyncReport | None = None
    pending_row_count: int | None = None
    conflict: ResolvedConflict | None = None
    # CHANGE_REJECTED: the change the server refused for good (now in `rejected_changes()`)
    rejected: RejectedChange | None = None
    error: BaseException | None = None


EventCallback = Callable[[SyncEvent], None]


class _Backoff:
    def __init__(self) -> None:
        self.delay = 0.0

    def next(self) -> float:
        self.delay = min(BACKOFF_MAX, max(BACKOFF_MIN, self.delay * 2))
        return self.delay * random.uniform(0.8, 1.2)

    def reset(self) -> None:
        self.delay = 0.0


class BackgroundSync:
    """The background loop of one :class:`~oversqlite.Client` (made by ``Client.start()``)."""

    def __init__(
        self,
        client: Client,
        *,
        watch: bool,
        on_event: EventCallback | None,
        poll_interval: float | None,
    ) -> None:
        self._client = client
        self._watch_wanted = watch
        self._on_event = on_event
        self._poll_interval = poll_interval
        self._events: queue.Queue[SyncEvent] = queue.Queue(EVENT_QUEUE_SIZE)
        self._stopping = CancelToken()
        self._wake = threading.Event()
        self._pull_wanted = threading.Event()
        self._urgent = threading.Event()  # sync_soon(): skip a pending backoff
        self._uploads = threading.Event()
        self._downloads = threading.Event()
        self._uploads.set()
        self._downloads.set()
        self._watching = False
        self._online = True
        self._stream: httpx.Response | None = None
        self._threads: list[threading.Thread] = []

    # ------------------------------------------------------------------ control

    def start(self) -> None:
        loop = threading.Thread(target=self._run, name="oversqlite-sync", daemon=True)
        self._threads = [loop]
        if self._watch_wanted:
            watcher = threading.Thread(target=self._watch, name="oversqlite-watch", daemon=True)
            self._threads.append(watcher)
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads; a running sync stops at its next safe point."""
        self._stopping.cancel()
        self._wake.set()
        stream = self._stream
        if stream is not None:
            _interrupt(stream)
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(timeout)

    @property
    def running(self) -> bool:
        return any(thread.is_alive() for thread in self._threads)

    @property
    def online(self) -> bool:
        """False after transport errors, until the server answers again."""
        return self._online

    @property
    def watching(self) -> bool:
        """True while the ``/sync/watch`` stream is open."""
        return self._watching

    def pause_uploads(self) -> None:
        self._uploads.clear()

    def resume_uploads(self) -> None:
        self._uploads.set()
        self._wake.set()

    def pause_downloads(self) -> None:
        self._downloads.clear()

    def resume_downloads(self) -> None:
        self._downloads.set()
        self._pull_wanted.set()
        self._wake.set()

    def sync_soon(self) -> None:
        """Run a sync round now (e.g. when the app comes to the foreground)."""
        self._pull_wanted.set()
        self._urgent.set()
        self._wake.set()

    def events(self, timeout: float | None = None) -> Iterator[SyncEvent]:
        """Events as they happen, until ``timeout`` seconds pass without one (None: forever)."""
        while True:
            try:
                yield self._events.get(timeout=timeout)
            except queue.Empty:
                return

    # ------------------------------------------------------------------ events

    def _emit(self, event: SyncEvent) -> None:
        try:
            self._events.put_nowait(event)
        except queue.Full:  # nobody reads the stream: keep the newest events
            try:
                self._events.get_nowait()
                self._events.put_nowait(event)
            except (queue.Empty, queue.Full):
                pass
        if self._on_event is not None:
            try:
                self._on_event(event)
            except Exception:
                logger.exception("on_event callback failed")

    def _went_online(self, online: bool, error: BaseException | None = None) -> None:
        if online != self._online:
            self._online = online
            self._emit(SyncEvent(EventKind.ONLINE if online else EventKind.OFFLINE, error=error))

    # ------------------------------------------------------------------ the sync loop

    def _interval(self) -> float:
        if self._poll_interval is not None:
            return self._poll_interval
        return DEFAULT_WATCH_POLL_INTERVAL if self._watching else DEFAULT_POLL_INTERVAL

    def _run(self) -> None:
        client, backoff = self._client, _Backoff()
        last_version, last_pending = -1, -1
        next_pull = 0.0  # pull at once: catch up with what happened while the app was closed
        retry_at = 0.0
        while not self._stopping.cancelled:
            try:
                version = self._data_version()
                pending = client.pending_row_count() if version != last_version else last_pending
            except SyncError as exc:  # closed under us
                logger.debug("background sync: %s", exc)
                return
            last_version = version
            if pending != last_pending:
                last_pending = pending
                self._emit(SyncEvent(EventKind.PENDING_CHANGED, pending_row_count=pending))
            now = time.monotonic()
            push = pending > 0 and self._uploads.is_set()
            pull = self._downloads.is_set() and (self._pull_wanted.is_set() or now >= next_pull)
            if (push or pull) and (now >= retry_at or self._urgent.is_set()):
                self._pull_wanted.clear()
                self._urgent.clear()
                delay = self._round(push=push, pull=pull, backoff=backoff)
                if self._stopping.cancelled:
                    return
                retry_at = time.monotonic() + delay
                next_pull = time.monotonic() + self._interval()
                last_version = -1  # our own commits changed data_version: look again
            self._wake.wait(TICK)
            self._wake.clear()

    def _data_version(self) -> int:
        with self._client._reading("background") as conn:
            return int(conn.execute("PRAGMA data_version").fetchone()[0])

    def _round(self, *, push: bool, pull: bool, backoff: _Backoff) -> float:
        """One sync round; the seconds to wait before the next one may start."""
        client, cancel = self._client, self._stopping
        try:
            if self._uploads.is_set() and self._downloads.is_set():
                report = client.sync(cancel=cancel)
                self._report(report)
            elif push:
                self._report_push(client.push_pending(cancel=cancel))
            elif pull:
                client.pull_to_stable(cancel=cancel)
        except OperationCancelledError:
            return 0.0
        except TransportError as exc:  # includes RetryExhaustedError
            self._went_online(False, exc)
            delay = backoff.next()
            logger.info("background sync offline (%s); retrying in %.1fs", exc, delay)
            return delay
        except PushRejectedError as exc:
            self._went_online(True)
            self._emit(SyncEvent(EventKind.CHANGE_REJECTED, error=exc))
            return backoff.next()
        except (SyncError, OSError) as exc:
            self._went_online(True)
            self._emit(SyncEvent(EventKind.ERROR, error=exc))
            if isinstance(exc, StateError):  # needs the app (attach, rebuild): do not spin
                backoff.delay = BACKOFF_MAX
            delay = backoff.next()
            logger.warning("background sync failed (%s); retrying in %.1fs", exc, delay)
            return delay
        self._went_online(True)
        backoff.reset()
        return 0.0

    def _report(self, report: SyncReport) -> None:
        self._report_push(report.push)
        self._emit(SyncEvent(EventKind.SYNCED, report=report))

    def _report_push(self, report: PushReport) -> None:
        for conflict in report.conflicts:
            self._emit(SyncEvent(EventKind.CONFLICT_RESOLVED, conflict=conflict))
        for rejected in report.rejected:
            self._emit(SyncEvent(EventKind.CHANGE_REJECTED, rejected=rejected))

    # ------------------------------------------------------------------ the watch thread

    def _watch_supported(self) -> bool:
        ctx = self._client._context("watch")
        source = self._client.source_info().source_id
        return ctx.capabilities(source).features.bundle_change_watch is True

    def _watch(self) -> None:
        backoff = _Backoff()
        while not self._stopping.cancelled:
            try:
                if not self._watch_supported():
                    logger.info("the server does not advertise bundle_change_watch: polling")
                    self._emit(SyncEvent(EventKind.POLLING))
                    return
                self._stream_once(backoff)
            except WatchUnavailableError as exc:
                logger.info("watch refused (%s): polling", exc.code)
                self._emit(SyncEvent(EventKind.POLLING, error=exc))
                return
            except (SyncError, OSError) as exc:
                if self._stopping.cancelled:
                    return
                logger.debug("watch stream ended: %s", exc)
            finally:
                if self._watching:
                    self._watching = False
                    if not self._stopping.cancelled:
                        self._emit(SyncEvent(EventKind.POLLING))
            self._pull_wanted.set()  # a catch-up pull for whatever the broken stream missed
            self._wake.set()
            if self._stopping.wait(backoff.next()):
                return

    def _stream_once(self, backoff: _Backoff) -> None:
        client = self._client
        if not client.status().attached:
            raise StateError("watch: not attached yet")
        source = client.source_info().source_id
        after = client.last_bundle_seq_seen()
        http = client._context("watch").api.http
        with watch_events(http, source, after, on_open=self._opened) as bundles:
            self._watching = True
            backoff.reset()
            self._emit(SyncEvent(EventKind.WATCHING))
            for seq in bundles:
                if seq > client.last_bundle_seq_seen():
                    self._pull_wanted.set()
                    self._wake.set()
                if self._stopping.cancelled:
                    return
        self._stream = None

    def _opened(self, response: httpx.Response) -> None:
        self._stream = response
        if self._stopping.cancelled:
            response.close()


def _interrupt(response: httpx.Response) -> None:
    """End a read blocked on the watch stream from another thread: shut the socket down
    (closing it alone does not wake a blocked ``recv``)."""
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    try:
        if isinstance(sock, socket.socket):
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
