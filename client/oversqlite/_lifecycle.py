"""Attach, detach, remote replace, rebuilds and source recovery.

States (in ``_sync_state``): ``binding`` anonymous/attached, plus one durable ``operation``:
``none``; ``remote_replace`` (hydrating from the server's snapshot; writes to managed tables are
refused until ``attach()`` finishes it); ``source_recovery`` (the server stopped accepting this
source's sequence; ``rebuild()`` rotates to the reserved replacement source). ``rebuild_required``
marks a snapshot rebuild that has started and not yet been applied.
"""

from __future__ import annotations

import logging
import uuid
from typing import NoReturn

from oversqlite import _marks, _outbox, _snapshot
from oversqlite._context import Context
from oversqlite._errors import (
    AttachConflictError,
    LifecycleUnsupportedError,
    PendingChangesError,
    ProtocolError,
    ReconnectRequiredError,
    ServerRejectedError,
    SourceRecoveryRequiredError,
    SourceReplacementDivergedError,
)
from oversqlite._results import (
    AttachOutcome,
    AttachResult,
    DetachOutcome,
    DetachResult,
    RestoreSummary,
)
from oversqlite._server_check import check_server
from oversqlite._store import (
    SyncState,
    apply_transaction,
    atomic,
    pending_row_count,
    read_state,
    update_state,
)
from oversync_client.models import ConnectResolution

__all__ = [
    "attach",
    "detach",
    "drop_to_anonymous",
    "enter_source_recovery",
    "finish_empty_initialization",
    "rebuild",
    "rebuild_keep_source",
    "rebuild_past_committed",
]

logger = logging.getLogger("oversqlite")

_UNSUPPORTED_STATUSES = frozenset({404, 405, 501})


def pending_count(ctx: Context, state: SyncState) -> int:
    """Pending rows, plus one for a seed this device still owes the server."""
    return pending_row_count(ctx.conn) + (1 if state.pending_initialization_id else 0)


def _unsupported(exc: ServerRejectedError) -> LifecycleUnsupportedError:
    return LifecycleUnsupportedError(exc.operation, exc.status, exc.code, exc.server_message)


def _attached_state(user_id: str) -> dict[str, object]:
    return {
        "binding": "attached",
        "user_id": user_id,
        "operation": "none",
        "operation_user_id": "",
    }


def attach(ctx: Context, user_id: str) -> AttachResult:
    """Bind the database to ``user_id`` (see :meth:`oversqlite.Client.attach`)."""
    state = read_state(ctx.conn)
    if state.operation == "remote_replace":
        if state.operation_user_id != user_id:
            raise AttachConflictError(state.operation_user_id, user_id)
        return _remote_replace(ctx, state, user_id)
    if state.attached:
        if state.user_id != user_id:
            raise AttachConflictError(state.user_id, user_id)
        return AttachResult(AttachOutcome.RESUMED, user_id)
    source = state.source_id
    try:
        capabilities = ctx.capabilities(source, refresh=True)
        ctx.check_schema_version("attach", source)
        check_server(ctx.config.schema, ctx.tables, capabilities, user_id)
        if not capabilities.features.connect_lifecycle:
            raise LifecycleUnsupportedError(
                "capabilities",
                200,
                "connect_lifecycle_missing",
                "the server does not offer connect",
            )
        has_pending = pending_row_count(ctx.conn) > 0
        answer = ctx.retry(
            "connect", lambda: ctx.api.connect(source, has_local_pending_rows=has_pending)
        )
    except ServerRejectedError as exc:
        if exc.status in _UNSUPPORTED_STATUSES and not isinstance(exc, LifecycleUnsupportedError):
            raise _unsupported(exc) from exc
        raise
    resolution = answer.resolution
    if resolution is ConnectResolution.RETRY_LATER:
        retry_after = (
            answer.retry_after_seconds if isinstance(answer.retry_after_seconds, int) else 1
        )
        return AttachResult(AttachOutcome.RETRY_LATER, user_id, retry_after=float(retry_after))
    if resolution is ConnectResolution.INITIALIZE_EMPTY:
        with atomic(ctx.conn):
            update_state(ctx.conn, pending_initialization_id="", **_attached_state(user_id))
            _forget_marks(ctx)
        return AttachResult(AttachOutcome.STARTED_EMPTY, user_id)
    if resolution is ConnectResolution.INITIALIZE_LOCAL:
        initialization_id = answer.initialization_id
        if not isinstance(initialization_id, str) or not initialization_id:
            raise ProtocolError("connect answered initialize_local without an initialization_id")
        with atomic(ctx.conn):
            update_state(
                ctx.conn, pending_initialization_id=initialization_id, **_attached_state(user_id)
            )
            _forget_marks(ctx)
        return AttachResult(AttachOutcome.SEEDED_FROM_LOCAL, user_id)
    if resolution is ConnectResolution.REMOTE_AUTHORITATIVE:
        with atomic(ctx.conn):
            update_state(ctx.conn, operation="remote_replace", operation_user_id=user_id)
        return _remote_replace(ctx, read_state(ctx.conn), user_id)
    raise ProtocolError(f"connect answered an unknown resolution {resolution!r}")


def _forget_marks(ctx: Context) -> None:
    """The server has no data for this user: nothing to re-hydrate from."""
    if _marks.load_marks(ctx.conn):
        _marks.clear_marks(ctx.conn)
        _marks.reinstall_triggers(ctx.conn, ctx.tables.values())


def _remote_replace(ctx: Context, state: SyncState, user_id: str) -> AttachResult:
    """Replace local managed data by the server's snapshot (the server is authoritative)."""
    staged = _snapshot.load_staged(ctx)  # complete stage left by a crash: no network needed
    if staged is None:
        try:
            staged = _snapshot.download(ctx, state.source_id)
        except Exception:
            # Nothing was applied: back to anonymous so local writes work again; attach() retries.
            with atomic(ctx.conn):
                update_state(ctx.conn, operation="none", operation_user_id="")
            raise
    discarded = pending_row_count(ctx.conn)
    restore = _snapshot.apply_staged(
        ctx,
        staged,
        keep_pending=False,
        outbox="drop",
        state={"pending_initialization_id": "", **_attached_state(user_id)},
    )
    if discarded:
        logger.warning(
            "attach: %d anonymous pending row(s) replaced by the server's data", discarded
        )
    return AttachResult(
        AttachOutcome.USED_REMOTE_STATE, user_id, restore=restore, discarded_local_rows=discarded
    )


def detach(ctx: Context) -> DetachResult:
    """Wipe managed data and return to anonymous, unless something is still pending."""
    state = read_state(ctx.conn)
    pending = pending_count(ctx, state)
    if pending:
        return DetachResult(DetachOutcome.BLOCKED_PENDING_CHANGES, pending)
    with apply_transaction(ctx.conn):
        for table in reversed(ctx.tables.values()):
            ctx.conn.execute(f"DELETE FROM {table.sql_name}")
        for name in (
            "_sync_row_state",
            "_sync_snapshot_rows",
            "_sync_snapshot",
            "_sync_rejected_changes",  # the leaving user's; their rows are wiped with the rest
            "_sync_committed_rows",
        ):
            ctx.conn.execute(f"DELETE FROM {name}")
        _outbox.clear(ctx.conn)
        _forget_marks(ctx)
        # Server sequences are per (user, source): a fresh source id lets any user attach next,
        # and the checkpoint belongs to the user that is leaving.
        update_state(
            ctx.conn,
            binding="anonymous",
            user_id="",
            source_id=str(uuid.uuid4()),
            next_source_bundle_id=1,
            last_bundle_seq_seen=0,
            pending_initialization_id="",
            rebuild_required=0,
            operation="none",
            operation_user_id="",
            recovery_reason="",
            isolate_rows=0,
            isolate_left=0,
            replacement_source_id="",
        )
    return DetachResult(DetachOutcome.DETACHED, 0)


def drop_to_anonymous(ctx: Context, exc: ServerRejectedError) -> NoReturn:
    """The server forgot this attachment: keep every pending row, require a new attach().

    The frozen bundle was not committed (the server refused it), so its rows become pending
    again. Like ``detach()``, the checkpoint and source sequence start over, so whichever user
    attaches next begins cleanly.
    """
    with atomic(ctx.conn):
        _outbox.unfreeze(ctx.conn)
        update_state(
            ctx.conn,
            binding="anonymous",
            user_id="",
            pending_initialization_id="",
            last_bundle_seq_seen=0,
            source_id=str(uuid.uuid4()),
            next_source_bundle_id=1,
        )
    logger.warning("server ended the attachment (%s); attach() again", exc.code)
    raise ReconnectRequiredError(exc.code, exc.server_message) from exc


def finish_empty_initialization(ctx: Context, state: SyncState) -> None:
    """Nothing is left to seed (the seed rows were deleted): tell the server to start empty."""
    answer = ctx.retry(
        "connect", lambda: ctx.api.connect(state.source_id, has_local_pending_rows=False)
    )
    if answer.resolution is ConnectResolution.INITIALIZE_EMPTY:
        with atomic(ctx.conn):
            update_state(ctx.conn, pending_initialization_id="")
        return
    # Our lease is gone and someone else owns the scope now: re-attach to hydrate from it.
    drop_to_anonymous(
        ctx,
        ServerRejectedError("connect", 409, "initialization_stale", str(answer.resolution)),
    )


def enter_source_recovery(ctx: Context, reason: str, replaced_by: str | None) -> NoReturn:
    """Record durably that the source must rotate, reserving the replacement id."""
    state = read_state(ctx.conn)
    reserved = state.replacement_source_id
    if reserved and replaced_by and replaced_by != reserved:
        raise SourceReplacementDivergedError(reserved, replaced_by)
    replacement = reserved or replaced_by or str(uuid.uuid4())
    with atomic(ctx.conn):
        update_state(
            ctx.conn,
            operation="source_recovery",
            recovery_reason=reason,
            replacement_source_id=replacement,
            rebuild_required=1,
        )
    logger.warning("source recovery required (%s): rebuild() will rotate the source", reason)
    raise SourceRecoveryRequiredError(reason)


def rebuild_keep_source(
    ctx: Context, *, outbox: str = "drop", state: dict[str, object] | None = None
) -> RestoreSummary:
    """Replace local data by a fresh snapshot, keeping the source and pending changes."""
    with atomic(ctx.conn):
        update_state(ctx.conn, rebuild_required=1)
    staged = _snapshot.download(ctx, read_state(ctx.conn).source_id)
    return _snapshot.apply_staged(ctx, staged, keep_pending=True, outbox=outbox, state=state or {})


def rebuild_past_committed(ctx: Context, frozen: _outbox.Outbox) -> RestoreSummary:
    """The server has our frozen bundle: a snapshot carries its rows; skip past its id."""
    return rebuild_keep_source(
        ctx, outbox="drop", state={"next_source_bundle_id": frozen.source_bundle_id + 1}
    )


def rebuild(ctx: Context) -> RestoreSummary:
    """Rotate the source if recovery is pending, else rebuild keeping the source."""
    state = read_state(ctx.conn)
    if state.operation != "source_recovery":
        frozen = _outbox.load(ctx.conn)
        if frozen is None:
            return rebuild_keep_source(ctx)
        if frozen.committed:  # e.g. an interrupted rebuild after its rows were pruned
            return rebuild_past_committed(ctx, frozen)
        raise PendingChangesError("rebuild", len(frozen.rows))
    new_source = state.replacement_source_id
    with atomic(ctx.conn):
        update_state(ctx.conn, rebuild_required=1)
    try:
        staged = _snapshot.download(
            ctx, state.source_id, replacement=(new_source, state.recovery_reason)
        )
    except ServerRejectedError as exc:
        other = exc.details.get("replaced_by_source_id")
        if exc.code == "source_retired" and isinstance(other, str) and other != new_source:
            raise SourceReplacementDivergedError(new_source, other) from exc
        raise
    return _snapshot.apply_staged(
        ctx,
        staged,
        keep_pending=True,
        outbox="requeue",  # never committed: its rows go out again as bundle 1 of the new source
        state={
            "source_id": new_source,
            "next_source_bundle_id": 1,
            "operation": "none",
            "recovery_reason": "",
            "replacement_source_id": "",
        },
    )
