"""Cancellation and progress of one running operation.

A :class:`CancelToken` stops an operation at its next safe point: before any HTTP request and
during a retry's backoff. Every flow is already crash-safe at those points (a frozen outbox is
resent with the same identity, a partial snapshot stage is started over, each pulled bundle is
applied in its own transaction with the checkpoint), so a cancelled operation leaves durable
state consistent, and calling it again continues. Best-effort session deletes are skipped while
an operation is being cancelled or interrupted (Ctrl-C): the server expires them anyway.

Progress goes to a callback as :class:`Progress` values; see :class:`Phase` for what ``done``
and ``total`` count in each phase.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from oversqlite._errors import SyncError

__all__ = [
    "CancelToken",
    "Control",
    "OperationCancelledError",
    "Phase",
    "Progress",
    "ProgressCallback",
]

logger = logging.getLogger("oversqlite")


class OperationCancelledError(SyncError):
    """The operation was cancelled at a safe point; durable state is consistent.

    Nothing is lost: call the operation again to continue where it stopped.
    """

    def __init__(self, operation: str) -> None:
        super().__init__(f"{operation}: cancelled; call it again to continue")
        self.operation = operation


class CancelToken:
    """Set once to cancel the operations it was passed to (thread-safe, not reusable).

    >>> token = CancelToken()
    >>> token.cancelled
    False
    >>> token.cancel()
    >>> token.cancelled
    True
    """

    def __init__(self) -> None:
        self._event = threading.Event()

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; ``True`` as soon as the token is cancelled."""
        return self._event.wait(max(0.0, seconds))


class Phase(enum.StrEnum):
    SNAPSHOT_DOWNLOAD = "snapshot_download"
    """Rows of a snapshot (hydrate, rebuild) staged, of the snapshot's ``row_count``."""
    SNAPSHOT_APPLY = "snapshot_apply"
    """Staged snapshot rows written into the managed tables, of the snapshot's ``row_count``."""
    PUSH = "push"
    """Rows of the bundle uploaded (after each chunk), of the bundle's row count."""
    PULL = "pull"
    """Bundles applied in this pull; ``total`` is the stable bundle sequence minus the start
    checkpoint (an upper bound: bundles of other scopes do not count)."""


@dataclass(frozen=True)
class Progress:
    phase: Phase
    done: int
    total: int | None


ProgressCallback = Callable[[Progress], None]


class Control:
    """The cancel token and progress callback of the operation running on a client.

    One per client; :meth:`running` installs them for the duration of one public call.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    @contextmanager
    def running(
        self, name: str, cancel: CancelToken | None, progress: ProgressCallback | None
    ) -> Iterator[None]:
        previous = getattr(self._local, "frame", None)
        if previous is not None:  # a nested public call (sync -> detach): keep the outer ones
            cancel = cancel or previous[1]
            progress = progress or previous[2]
        self._local.frame = (name, cancel, progress)
        try:
            yield
        finally:
            self._local.frame = previous

    def _frame(self) -> tuple[str, CancelToken | None, ProgressCallback | None]:
        frame = getattr(self._local, "frame", None)
        return frame if frame is not None else ("", None, None)

    @property
    def cancelling(self) -> bool:
        """Cancelled, or unwinding from Ctrl-C / a cancellation: skip best-effort calls."""
        token = self._frame()[1]
        handling = sys.exc_info()[0]
        interrupted = handling is not None and issubclass(
            handling, KeyboardInterrupt | OperationCancelledError
        )
        return interrupted or (token is not None and token.cancelled)

    def check(self) -> None:
        """A safe point: raise :class:`OperationCancelledError` if cancelled."""
        name, token, _ = self._frame()
        if token is not None and token.cancelled:
            raise OperationCancelledError(name or "operation")

    def sleep(self, seconds: float) -> None:
        """A backoff sleep that ends early (raising) when the operation is cancelled."""
        token = self._frame()[1]
        if token is None:
            threading.Event().wait(seconds)
            return
        if token.wait(seconds):
            self.check()

    def report(self, phase: Phase, done: int, total: int | None) -> None:
        callback = self._frame()[2]
        if callback is None:
            return
        try:
            callback(Progress(phase, done, total))
        except Exception:  # a broken progress callback must not break the sync
            logger.exception("progress callback failed")
