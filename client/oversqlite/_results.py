"""Typed results: expected outcomes are values, not exceptions."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "AttachOutcome",
    "AttachResult",
    "DetachOutcome",
    "DetachResult",
    "PullOutcome",
    "PullReport",
    "PushOutcome",
    "PushReport",
    "RejectedChange",
    "ResolvedConflict",
    "RestoreSummary",
    "SourceInfo",
    "SyncReport",
    "SyncStatus",
    "SyncThenDetachResult",
]


@dataclass(frozen=True)
class RestoreSummary:
    """A snapshot that replaced the local managed tables."""

    snapshot_bundle_seq: int
    row_count: int


class AttachOutcome(enum.StrEnum):
    RESUMED = "resumed_attached_state"
    """Already attached to this user: nothing asked of the server."""
    STARTED_EMPTY = "started_empty"
    """The server had no data and nothing local was pending: this device starts the scope."""
    SEEDED_FROM_LOCAL = "seeded_from_local"
    """The server had no data: this device's pending rows seed it on the next push."""
    USED_REMOTE_STATE = "used_remote_state"
    """The server had data: the local managed tables now hold its snapshot."""
    RETRY_LATER = "retry_later"
    """Another device is initializing the scope: call attach() again after ``retry_after``."""


@dataclass(frozen=True)
class AttachResult:
    outcome: AttachOutcome
    user_id: str
    retry_after: float | None = None
    """Seconds to wait before attaching again (``RETRY_LATER`` only)."""
    restore: RestoreSummary | None = None
    """The snapshot applied (``USED_REMOTE_STATE`` only)."""
    discarded_local_rows: int = 0
    """Anonymous pending rows dropped because the server's state was authoritative."""

    @property
    def attached(self) -> bool:
        return self.outcome is not AttachOutcome.RETRY_LATER


class DetachOutcome(enum.StrEnum):
    DETACHED = "detached"
    BLOCKED_PENDING_CHANGES = "blocked_unsynced_data"


@dataclass(frozen=True)
class DetachResult:
    outcome: DetachOutcome
    pending_row_count: int
    """Rows that would have been lost (``BLOCKED_PENDING_CHANGES``); push them first."""

    @property
    def detached(self) -> bool:
        return self.outcome is DetachOutcome.DETACHED


class PushOutcome(enum.StrEnum):
    NO_CHANGE = "no_change"
    COMMITTED = "committed"


@dataclass(frozen=True)
class ResolvedConflict:
    """One conflict the resolver settled during a push."""

    table: str
    key: Mapping[str, str]
    local_op: str
    resolution: str
    """``accept_server``, ``keep_local`` or ``keep_merged``; ``deferred`` when the row was
    edited again during the push (the next round decides with the newer local row)."""
    server_row_version: int


@dataclass(frozen=True)
class RejectedChange:
    """One local change the server refused; see :meth:`oversqlite.Client.rejected_changes`."""

    id: int
    table: str
    key: str
    """The key as sent on the wire (UUID text for BLOB keys)."""
    op: str
    """``INSERT``, ``UPDATE`` or ``DELETE``."""
    payload: dict[str, Any] | None
    """The row as it was sent (``None`` for DELETE)."""
    code: str
    """The server's error code, e.g. ``push_commit_invalid``."""
    message: str
    """The server's error message (names the constraint or value it refused)."""
    rejected_at: float
    """Unix time of the rejection."""


@dataclass(frozen=True)
class PushReport:
    outcome: PushOutcome
    bundle_seq: int | None = None
    """The committed bundle's server sequence (``COMMITTED`` only)."""
    source_bundle_id: int | None = None
    row_count: int = 0
    """Rows in the authoritative committed bundle (may differ from the rows sent)."""
    conflicts: tuple[ResolvedConflict, ...] = ()
    rejected: tuple[RejectedChange, ...] = ()
    """Changes the server refused during this push, moved aside (later ones were pushed)."""


class PullOutcome(enum.StrEnum):
    ALREADY_AT_TARGET = "already_at_target"
    APPLIED_INCREMENTAL = "applied_incremental"
    APPLIED_SNAPSHOT = "applied_snapshot"
    """History was pruned: the local tables were rebuilt from a snapshot."""
    BLOCKED_BY_PENDING_CHANGES = "blocked_by_pending_changes"
    """Local changes are waiting (or appeared during the pull): push, then pull again."""


@dataclass(frozen=True)
class PullReport:
    outcome: PullOutcome
    last_bundle_seq_seen: int
    bundles_applied: int = 0
    restore: RestoreSummary | None = None
    pending_row_count: int = 0


@dataclass(frozen=True)
class SyncReport:
    push: PushReport
    pull: PullReport
    rounds: int = 1
    """Push/pull rounds needed (local writes during a pull trigger another round)."""
    rehydrated: RestoreSummary | None = None
    """The snapshot that re-hydrated tables after a local schema change, if one ran."""


@dataclass(frozen=True)
class SyncThenDetachResult:
    detach: DetachResult
    syncs: tuple[SyncReport, ...]

    @property
    def detached(self) -> bool:
        return self.detach.detached


@dataclass(frozen=True)
class SyncStatus:
    """Durable sync status of the database."""

    attached: bool
    user_id: str | None
    pending_row_count: int
    """Rows waiting to be pushed (dirty plus frozen)."""
    last_bundle_seq_seen: int
    pending_initialization: bool
    """This device still has to seed the server (after ``SEEDED_FROM_LOCAL``)."""
    rebuild_required: bool
    source_recovery_reason: str | None
    local_schema_version: int = 1
    """The local schema version recorded in the database (``ClientConfig.schema_version``)."""
    tables_to_rehydrate: tuple[str, ...] = ()
    """Tables a local schema change marked; the next sync refreshes them from a snapshot."""
    rejected_change_count: int = 0
    """Changes the server refused, waiting for ``retry_rejected`` or ``discard_rejected``."""


@dataclass(frozen=True)
class SourceInfo:
    """The source id this database pushes as (diagnostics; treat it as opaque)."""

    source_id: str
    next_source_bundle_id: int
    replacement_source_id: str | None
    source_recovery_reason: str | None
    rebuild_required: bool
