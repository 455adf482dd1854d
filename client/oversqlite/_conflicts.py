"""Structured push conflicts: what a resolver sees, what it may answer, and what that means.

The server rejects a whole pushed bundle when one row's ``base_row_version`` no longer matches
its row state and reports that first row. A resolver decides for that row:

* :class:`AcceptServer`: drop the local change; the server's row (or its absence) wins;
* :class:`KeepLocal`: push the local change again, based on the server's current version;
* :class:`KeepMerged`: replace the local row by a full merged row and push that.

:func:`plan_resolution` turns the answer into a :class:`ResolutionPlan` (what to write locally,
which row state to record, whether to push again); combinations that cannot be pushed safely are
refused with :class:`~oversqlite.InvalidConflictResolutionError`, leaving the local intent
pending. The plan is pure; ``_conflict_apply`` runs it inside one SQLite transaction.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from oversqlite._errors import InvalidConflictResolutionError

__all__ = [
    "AcceptServer",
    "Conflict",
    "ConflictResolver",
    "KeepLocal",
    "KeepMerged",
    "LocalWrite",
    "Resolution",
    "ResolutionPlan",
    "ServerState",
    "client_wins",
    "plan_resolution",
    "server_wins",
]


class ServerState(enum.StrEnum):
    """The server's row for a conflicting key."""

    LIVE = "live"
    DELETED = "deleted"
    MISSING = "missing"


@dataclass(frozen=True)
class Conflict:
    """One conflicting row, as a resolver sees it. Payloads use the wire encoding.

    Wire encoding: column names lowercase, BLOBs as padded base64 (UUID BLOBs as dashed UUID
    text), everything else as JSON values; a merged payload must use the same encoding.
    """

    table: str
    key: Mapping[str, str]
    local_op: str
    """``INSERT``, ``UPDATE`` or ``DELETE``: the change this device tried to push."""
    local_payload: Mapping[str, Any] | None
    """The full local row that was pushed, or ``None`` for a delete."""
    base_row_version: int
    server_row_version: int
    server_row_deleted: bool
    server_row: Mapping[str, Any] | None
    """The server's current full row, or ``None`` when it has no live row."""

    @property
    def server_state(self) -> ServerState:
        if self.server_row is not None:
            return ServerState.LIVE
        return ServerState.DELETED if self.server_row_deleted else ServerState.MISSING


@dataclass(frozen=True)
class AcceptServer:
    """Discard the local change; the server's state wins."""


@dataclass(frozen=True)
class KeepLocal:
    """Push the local change again on top of the server's current version."""


@dataclass(frozen=True)
class KeepMerged:
    """Write ``payload`` (a full row, wire encoding) locally and push it."""

    payload: Mapping[str, Any]


Resolution = AcceptServer | KeepLocal | KeepMerged


class ConflictResolver(Protocol):
    """Decides one conflict. Any callable ``(Conflict) -> Resolution`` qualifies.

    >>> def newest_wins(conflict: Conflict) -> Resolution:
    ...     local, server = conflict.local_payload, conflict.server_row
    ...     if local and server and local["updated_at"] > server["updated_at"]:
    ...         return KeepLocal()
    ...     return AcceptServer()
    """

    def __call__(self, conflict: Conflict, /) -> Resolution: ...


def server_wins(conflict: Conflict, /) -> Resolution:
    """The default resolver: the server's row wins every conflict."""
    return AcceptServer()


def client_wins(conflict: Conflict, /) -> Resolution:
    """This device's change wins (where it can be pushed; see :func:`plan_resolution`)."""
    return KeepLocal()


class LocalWrite(enum.Enum):
    """What a resolution writes into the local business row."""

    NOTHING = "nothing"
    SERVER_ROW = "server_row"
    MERGED_ROW = "merged_row"
    DELETE = "delete"


@dataclass(frozen=True)
class ResolutionPlan:
    """The local effect of a resolution (all in one transaction).

    ``row_state`` is the ``(row_version, deleted)`` to record, or ``None`` to forget the key's
    row state (the server has never had it). ``requeue`` keeps the key pending with its base
    moved to the server version, so the next push carries the surviving local intent.
    """

    write: LocalWrite
    payload: Mapping[str, Any] | None
    row_state: tuple[int, bool] | None
    requeue: bool
    label: str


def _server_row_state(conflict: Conflict) -> tuple[int, bool] | None:
    state = conflict.server_state
    if state is ServerState.MISSING:
        return None
    return conflict.server_row_version, state is ServerState.DELETED


def plan_resolution(conflict: Conflict, resolution: object) -> ResolutionPlan:
    """Return the plan for ``resolution``, or raise :class:`InvalidConflictResolutionError`.

    Refused: anything that is not a :data:`Resolution`; keeping or merging a local UPDATE when
    the server row is deleted or missing (it would resurrect a row whose parents may be gone);
    merging a local DELETE.
    """
    row_state = _server_row_state(conflict)
    state = conflict.server_state
    key = ", ".join(f"{k}={v}" for k, v in conflict.key.items())

    def invalid(reason: str) -> InvalidConflictResolutionError:
        return InvalidConflictResolutionError(conflict.table, key, reason)

    if isinstance(resolution, AcceptServer):
        if state is ServerState.LIVE:
            return ResolutionPlan(
                LocalWrite.SERVER_ROW, conflict.server_row, row_state, False, "accept_server"
            )
        return ResolutionPlan(LocalWrite.DELETE, None, row_state, False, "accept_server")

    if isinstance(resolution, KeepLocal | KeepMerged):
        merged = isinstance(resolution, KeepMerged)
        label = "keep_merged" if merged else "keep_local"
        if conflict.local_op == "DELETE":
            if merged:
                raise invalid("a merged row cannot replace a local delete")
            # The local row is already gone; push the delete again only if the server has a row.
            return ResolutionPlan(
                LocalWrite.NOTHING, None, row_state, state is ServerState.LIVE, label
            )
        if conflict.local_op == "UPDATE" and state is not ServerState.LIVE:
            raise invalid(f"cannot keep a local update: the server row is {state.value}")
        if merged:
            assert isinstance(resolution, KeepMerged)
            if not isinstance(resolution.payload, Mapping):
                raise invalid("KeepMerged.payload must be a mapping of column to wire value")
            return ResolutionPlan(LocalWrite.MERGED_ROW, resolution.payload, row_state, True, label)
        return ResolutionPlan(LocalWrite.NOTHING, None, row_state, True, label)

    raise invalid(f"resolver returned {resolution!r}, not AcceptServer, KeepLocal or KeepMerged")
