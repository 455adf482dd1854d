"""The janitor: a background task that deletes expired push and snapshot sessions.

Expired sessions already answer 410; deleting them is shared housekeeping, so it runs here,
outside every user lock and request transaction (the reference deletes every user's expired
sessions inside each push create and snapshot create). Every `janitor_interval_seconds`
(0 = off) a sweep runs short autocommit statements until nothing expired is left:

1. the staged/frozen rows of expired sessions (push session rows, snapshot session rows and
   this server's snapshot pages), `janitor_batch_size` rows per statement, so a session of
   100,000 rows never becomes one huge cascading delete;
2. then the expired session rows themselves, `janitor_batch_size` per statement.

A session is expired once `expires_at < now()`, the test the chunk read applies, so no chunk
can be served from a half-deleted session. Each statement picks its victims with
`FOR UPDATE SKIP LOCKED`: a session that a request holds
(e.g. a chunk upload that is about to extend it) is skipped, several server processes can sweep
at once without waiting for each other, and a row that a concurrent transaction just extended
is re-checked and left alone. Each batch takes its own pool connection, so a long sweep never
holds one for long.

    janitor = install_janitor(runtime)      # start/stop with the runtime (app.py)
    deleted = await janitor.sweep()         # also usable on demand, e.g. in tests
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass

from oversync_server.engine.pool import database_unavailable
from oversync_server.runtime import SyncRuntime

__all__ = ["Janitor", "SweepResult", "install_janitor"]

log = logging.getLogger("oversync_server")


def _rows_sql(sessions: str, rows: str, key: str, ordinal: str = "row_ordinal") -> str:
    """Delete up to $1 rows of expired, unlocked sessions (by the rows' primary key)."""
    return f"""
DELETE FROM sync.{rows}
WHERE ({key}, {ordinal}) IN (
    SELECT r.{key}, r.{ordinal}
    FROM sync.{sessions} AS s JOIN sync.{rows} AS r ON r.{key} = s.{key}
    WHERE s.expires_at < now()
    LIMIT $1
    FOR UPDATE OF s SKIP LOCKED
)
"""


def _sessions_sql(sessions: str, key: str) -> str:
    """Delete up to $1 expired, unlocked sessions (any rows left cascade)."""
    return f"""
DELETE FROM sync.{sessions}
WHERE {key} IN (
    SELECT {key} FROM sync.{sessions}
    WHERE expires_at < now()
    LIMIT $1
    FOR UPDATE SKIP LOCKED
)
"""


# (what, {SweepResult field: children statement}, sessions statement), children first.
_KINDS = (
    (
        "push",
        {"push_session_rows": _rows_sql("push_sessions", "push_session_rows", "push_id")},
        _sessions_sql("push_sessions", "push_id"),
    ),
    (
        "snapshot",
        {
            "snapshot_session_rows": _rows_sql(
                "snapshot_sessions", "snapshot_session_rows", "snapshot_id"
            ),
            "snapshot_pages": _rows_sql(
                "snapshot_sessions", "snapshot_pages", "snapshot_id", "first_ordinal"
            ),
        },
        _sessions_sql("snapshot_sessions", "snapshot_id"),
    ),
)


@dataclass
class SweepResult:
    """What one sweep deleted."""

    push_sessions: int = 0
    push_session_rows: int = 0
    snapshot_sessions: int = 0
    snapshot_session_rows: int = 0
    snapshot_pages: int = 0
    """Pages of this server's snapshot sessions (`sync.snapshot_pages`)."""

    @property
    def total(self) -> int:
        return (
            self.push_sessions
            + self.push_session_rows
            + self.snapshot_sessions
            + self.snapshot_session_rows
            + self.snapshot_pages
        )


def _count(status: str) -> int:
    """The row count of a `DELETE n` command tag."""
    return int(status.rsplit(" ", 1)[-1])


class Janitor:
    """The periodic sweep of one server process (`start`/`stop` are runtime hooks)."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime
        self.sweeps = 0  # completed sweeps (tests wait on it)
        self._task: asyncio.Task[None] | None = None

    @property
    def interval(self) -> float:
        return self.runtime.config.janitor_interval_seconds

    async def start(self, _: SyncRuntime | None = None) -> None:
        if self._task is None and self.interval > 0:
            self._task = asyncio.create_task(self._run(), name="oversync-janitor")

    async def stop(self, _: SyncRuntime | None = None) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                result = await self.sweep()
            except Exception as error:  # a background loop must survive anything
                if database_unavailable(error):
                    log.warning("janitor: database unavailable: %s", error)
                else:
                    log.warning("janitor: sweep failed", exc_info=True)
                continue
            if result.total:
                log.info("janitor: deleted expired sessions: %s", result)

    async def sweep(self) -> SweepResult:
        """Delete every expired push and snapshot session now, batch by batch."""
        batch = self.runtime.config.janitor_batch_size
        result = SweepResult()
        for kind, children, sessions_sql in _KINDS:
            for field, rows_sql in children.items():
                setattr(result, field, await self._drain(rows_sql, batch))
            setattr(result, f"{kind}_sessions", await self._drain(sessions_sql, batch))
        self.sweeps += 1
        return result

    async def _drain(self, sql: str, batch: int) -> int:
        """Run the batch statement until a batch comes back short; the rows deleted."""
        total = 0
        while True:
            async with self.runtime.pool.acquire() as conn:
                deleted = _count(await conn.execute(sql, batch))
            total += deleted
            if deleted < batch:
                return total
            await asyncio.sleep(0)  # let requests run between batches


_ATTRIBUTE = "janitor"


def install_janitor(runtime: SyncRuntime) -> Janitor:
    """Create the process's janitor and register it as runtime start/stop hooks (idempotent)."""
    existing = getattr(runtime, _ATTRIBUTE, None)
    if isinstance(existing, Janitor):
        return existing
    janitor = Janitor(runtime)
    setattr(runtime, _ATTRIBUTE, janitor)
    runtime.start_hooks.append(janitor.start)
    runtime.stop_hooks.append(janitor.stop)
    return janitor
