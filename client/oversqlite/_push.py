"""Push: freeze, upload through a push session, commit, fetch and verify, replay.

Crash safety comes from the durable outbox: it keeps its ``source_bundle_id`` until the replay
transaction removes it. A resumed ``prepared`` outbox is uploaded again (the server replaces
an unfinished session, or answers ``already_committed``); a ``committed`` one is only fetched
and replayed. Definitive rejections unfreeze the rows so a corrected row can go out next time.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import partial

from oversqlite import _lifecycle, _outbox, _rejected
from oversqlite._apply import ServerRow, apply_server_row, live_payload, set_row_state
from oversqlite._bundles import bundle_row_dicts, parse_bundle_rows
from oversqlite._codec import wire_key
from oversqlite._conflict_apply import settle
from oversqlite._context import Context
from oversqlite._errors import (
    ConflictRetryExhaustedError,
    ProtocolError,
    PushRejectedError,
    SchemaMismatchError,
    ServerRejectedError,
    TransportError,
)
from oversqlite._outbox import Outbox, OutboxRow
from oversqlite._rejected import ROW_REJECTION_CODES
from oversqlite._results import PushOutcome, PushReport, RejectedChange, ResolvedConflict
from oversqlite._store import (
    SyncState,
    apply_transaction,
    atomic,
    pending_row_count,
    read_state,
    update_state,
)
from oversync_client.models import PushConflict, PushRequestRow, PushRequestRowPayload, SyncKey
from oversync_client.types import UNSET
from oversync_wire import BundleHasher, CanonicalJSONError

__all__ = ["push_pending"]

logger = logging.getLogger("oversqlite")

_LEASE_LOST = ("initialization_expired", "initialization_stale", "scope_uninitialized")
_RECOVERY_ON_CREATE = ("history_pruned", "source_sequence_out_of_order", "source_retired")
_RECOVERY_ON_COMMIT = ("source_sequence_changed", "source_retired")
# The session vanished or moved on (expired, replaced): start the whole sequence again.
_RESTART = ("push_session_not_found", "push_session_expired", "push_chunk_out_of_order")
# The server's 400 push_chunk_invalid for a payload column its table lacks.
_UNKNOWN_COLUMN = re.compile(r'payload for (\S+) contains unknown column "([^"]+)"')
# The message of create's 409 history_pruned (protocol.md, push session create step 7).
_MAX_COMMITTED = re.compile(r"max committed source_bundle_id is (\d+)")


@dataclass(frozen=True)
class _Committed:
    bundle_seq: int
    source_bundle_id: int
    row_count: int
    bundle_hash: str
    already: bool


class _ConflictSignal(Exception):
    def __init__(self, conflict: PushConflict) -> None:
        super().__init__("push conflict")
        self.conflict = conflict


class _RejectedSignal(Exception):
    """The server refused the frozen bundle because of (at least) one of its rows."""

    def __init__(self, exc: ServerRejectedError) -> None:
        super().__init__(str(exc))
        self.exc = exc


class _PrunedSignal(Exception):
    """The committed bundle's rows are no longer retained."""


def _request_rows(ctx: Context, rows: Sequence[OutboxRow]) -> list[PushRequestRow]:
    """The wire rows of one upload chunk (built per chunk, so memory follows the chunk size)."""
    out = []
    for row in rows:
        table = ctx.tables[row.table]
        out.append(
            PushRequestRow(
                schema=ctx.config.schema,
                table=row.table,
                key=SyncKey.from_dict(wire_key(table, row.pk)),
                op=row.op,
                base_row_version=row.base_row_version,
                payload=UNSET
                if row.payload is None
                else PushRequestRowPayload.from_dict(row.payload),
            )
        )
    return out


def _react(ctx: Context, exc: ServerRejectedError, recovery_codes: tuple[str, ...]) -> None:
    """Turn the protocol's structured rejections into their reactions (raises for those)."""
    if exc.code == "push_conflict" and isinstance(exc.details.get("conflict"), dict):
        raise _ConflictSignal(PushConflict.from_dict(exc.details["conflict"])) from exc
    if exc.code in _LEASE_LOST:
        _lifecycle.drop_to_anonymous(ctx, exc)
    if exc.code in recovery_codes:
        replaced_by = exc.details.get("replaced_by_source_id")
        _lifecycle.enter_source_recovery(
            ctx, exc.code, replaced_by if isinstance(replaced_by, str) and replaced_by else None
        )
    if exc.code in _RESTART:
        raise TransportError(
            exc.operation, f"{exc.code}: {exc.server_message}", exc.status
        ) from exc


def _create(ctx: Context, outbox: Outbox) -> _Committed | str:
    """Create the push session: its push_id, or the committed bundle if the server has it."""
    init_id = read_state(ctx.conn).pending_initialization_id

    def create(with_init: str) -> object:
        try:
            return ctx.api.create_push_session(
                outbox.source_id,
                source_bundle_id=outbox.source_bundle_id,
                planned_row_count=len(outbox.rows),
                initialization_id=with_init,
            )
        except ServerRejectedError as exc:
            if _pruned_ours(exc, outbox):
                raise _PrunedSignal from exc
            if not (with_init and exc.code == "push_session_invalid"):
                _react(ctx, exc, _RECOVERY_ON_CREATE)
            raise

    try:
        created = create(init_id)
    except ServerRejectedError as exc:
        if not (init_id and exc.code == "push_session_invalid"):
            raise
        # Our seeding commit went through but its reply was lost: the scope is initialized
        # now, and only a create without the initialization id reaches already_committed.
        created = create("")
        with atomic(ctx.conn):
            update_state(ctx.conn, pending_initialization_id="")
    if getattr(created, "status", None) == "already_committed":
        return _already_committed(outbox, created)
    push_id = getattr(created, "push_id", "")
    planned = getattr(created, "planned_row_count", None)
    next_expected = getattr(created, "next_expected_row_ordinal", UNSET)
    if not push_id or planned != len(outbox.rows) or next_expected not in (UNSET, 0):
        raise ProtocolError(f"invalid push session answer {created!r}")
    return str(push_id)


def _pruned_ours(exc: ServerRejectedError, outbox: Outbox) -> bool:
    """Create's ``history_pruned`` says this very bundle is committed (its reply was lost) and
    no longer retained: the source's committed watermark is the outbox's own id. A watermark
    above it means a stale local sequence instead (source recovery)."""
    if exc.code != "history_pruned":
        return False
    found = _MAX_COMMITTED.search(exc.server_message)
    return found is not None and int(found.group(1)) == outbox.source_bundle_id


def _already_committed(outbox: Outbox, answer: object) -> _Committed:
    info = _Committed(
        getattr(answer, "bundle_seq", 0),
        getattr(answer, "source_bundle_id", 0),
        getattr(answer, "row_count", 0),
        getattr(answer, "bundle_hash", ""),
        already=True,
    )
    if (
        info.source_bundle_id != outbox.source_bundle_id
        or getattr(answer, "source_id", "") != outbox.source_id
        or info.bundle_seq <= 0
        or info.row_count < 0
        or not info.bundle_hash
    ):
        raise ProtocolError(f"invalid already_committed answer {answer!r}")
    return info


def _upload_and_commit(ctx: Context, outbox: Outbox, push_id: str) -> _Committed:
    source, size = outbox.source_id, ctx.config.upload_chunk_rows
    try:
        for start in range(0, len(outbox.rows), size):
            chunk = _request_rows(ctx, outbox.rows[start : start + size])
            answer = ctx.api.upload_chunk(source, push_id, start=start, rows=chunk)
            if answer.push_id != push_id or answer.next_expected_row_ordinal != start + len(chunk):
                raise ProtocolError(f"invalid push chunk answer {answer.to_dict()!r}")
        committed = ctx.api.commit(source, push_id)
    except ServerRejectedError as exc:
        ctx.api.delete_push_session(source, push_id)
        _react(ctx, exc, _RECOVERY_ON_COMMIT)
        raise
    except BaseException:
        ctx.api.delete_push_session(source, push_id)
        raise
    info = _Committed(
        committed.bundle_seq,
        committed.source_bundle_id,
        committed.row_count,
        committed.bundle_hash,
        already=False,
    )
    if (
        committed.source_id != source
        or info.source_bundle_id != outbox.source_bundle_id
        or info.bundle_seq <= 0
        or info.row_count < 0
        or not info.bundle_hash
    ):
        raise ProtocolError(f"invalid commit answer {committed.to_dict()!r}")
    return info


def _unknown_column(exc: ServerRejectedError) -> tuple[str, str] | None:
    """(table, column) when the server refused a payload column its table does not have."""
    if exc.code != "push_chunk_invalid":
        return None
    found = _UNKNOWN_COLUMN.search(exc.server_message)
    return None if found is None else (found.group(1), found.group(2))


def _send(ctx: Context, outbox: Outbox) -> _Committed:
    """Get the outbox committed on the server; the outbox is marked ``committed`` durably."""
    if outbox.committed:
        return _Committed(
            outbox.bundle_seq,
            outbox.source_bundle_id,
            outbox.committed_row_count,
            outbox.bundle_hash,
            already=True,
        )

    def attempt() -> _Committed:
        created = _create(ctx, outbox)
        if isinstance(created, _Committed):
            return created
        return _upload_and_commit(ctx, outbox, created)

    try:
        info = ctx.retry("push", attempt)
    except ServerRejectedError as exc:
        mismatch = _unknown_column(exc)
        if mismatch is None and exc.code in ROW_REJECTION_CODES and 400 <= exc.status < 500:
            raise _RejectedSignal(exc) from exc
        with atomic(ctx.conn):
            _outbox.unfreeze(ctx.conn)
        if mismatch is not None:
            raise SchemaMismatchError(exc, *mismatch) from exc
        raise PushRejectedError(
            exc.operation, exc.status, exc.code, exc.server_message, exc.details
        ) from exc
    with atomic(ctx.conn):
        _outbox.mark_committed(ctx.conn, info.bundle_seq, info.bundle_hash, info.row_count)
        update_state(ctx.conn, pending_initialization_id="")
    return info


def _fetch(ctx: Context, outbox: Outbox, info: _Committed) -> None:
    """Stage every row of the committed bundle in ``_sync_committed_rows``, verified.

    Pages are written to SQLite as they arrive and hashed on the way, so the client holds one
    page at a time whatever the bundle's size.
    """
    conn = ctx.conn
    with atomic(conn):
        conn.execute("DELETE FROM _sync_committed_rows")
    hasher = BundleHasher()
    after: int | None = None
    what = f"committed bundle {info.bundle_seq}"
    while True:
        request = partial(
            ctx.api.committed_rows,
            outbox.source_id,
            info.bundle_seq,
            after=after,
            max_rows=ctx.config.committed_chunk_rows,
        )
        try:
            page = ctx.retry("get_committed_bundle_rows", request)
        except ServerRejectedError as exc:
            if exc.code == "history_pruned":
                raise _PrunedSignal from exc
            raise
        echoed = (
            page.bundle_seq,
            page.source_id,
            page.source_bundle_id,
            page.row_count,
            page.bundle_hash,
        )
        expected = (
            info.bundle_seq,
            outbox.source_id,
            info.source_bundle_id,
            info.row_count,
            info.bundle_hash,
        )
        if echoed != expected:
            raise ProtocolError(f"committed rows page {echoed!r} does not match {expected!r}")
        start = -1 if after is None else after
        want_next = start + len(page.rows) if page.rows else (0 if after is None else after)
        if page.next_row_ordinal != want_next or (page.has_more and not page.rows):
            raise ProtocolError(
                f"committed rows after {after}: next_row_ordinal {page.next_row_ordinal} does "
                f"not match {len(page.rows)} rows"
            )
        first = hasher.row_count
        staged = bundle_row_dicts(page.rows)
        try:
            for row in staged:
                hasher.add(row)
        except CanonicalJSONError as exc:
            raise ProtocolError(f"{what}: rows cannot be hashed: {exc}") from None
        with atomic(conn):
            conn.executemany(
                "INSERT INTO _sync_committed_rows (row_ordinal, row) VALUES (?, ?)",
                [(first + i, json.dumps(row)) for i, row in enumerate(staged)],
            )
        if hasher.row_count > info.row_count:
            break
        if not page.has_more:
            break
        after = page.next_row_ordinal
    if hasher.row_count != info.row_count:
        raise ProtocolError(
            f"{what}: received {hasher.row_count} rows, the server announced {info.row_count}"
        )
    actual, _ = hasher.result()
    if actual != info.bundle_hash:
        raise ProtocolError(
            f"{what}: bundle_hash mismatch (computed {actual}, server sent {info.bundle_hash}); "
            "nothing was applied"
        )


def _staged_rows(ctx: Context, info: _Committed) -> Iterator[ServerRow | None]:
    """The staged committed rows, parsed, in bundle order (read in pages)."""
    after = -1
    while True:
        page = ctx.conn.execute(
            "SELECT row_ordinal, row FROM _sync_committed_rows WHERE row_ordinal > ? "
            "ORDER BY row_ordinal LIMIT ?",
            (after, _STAGE_PAGE),
        ).fetchall()
        if not page:
            return
        after = page[-1][0]
        yield from parse_bundle_rows(
            ctx.tables,
            ctx.config.schema,
            [json.loads(text) for _, text in page],
            info.bundle_seq,
            ctx.drift,
        )


_STAGE_PAGE = 1000


def _replay(ctx: Context, outbox: Outbox, info: _Committed) -> None:
    """Apply the authoritative bundle, keeping every edit made while it was in flight."""
    conn = ctx.conn
    uploaded = {(r.table, r.pk): r for r in outbox.rows}
    with apply_transaction(conn):
        for row in _staged_rows(ctx, info):
            if row is None:
                continue
            key = (row.table.name, row.pk)
            edited = conn.execute(
                "SELECT 1 FROM _sync_dirty_rows WHERE table_name = ? AND pk = ?", key
            ).fetchone()
            sent = uploaded.get(key)
            if edited and sent and live_payload(conn, row.table, row.pk) == sent.payload:
                # Edited back to exactly what was pushed: nothing left to push.
                conn.execute("DELETE FROM _sync_dirty_rows WHERE table_name = ? AND pk = ?", key)
                edited = None
            if not edited:
                apply_server_row(conn, row)
                continue
            # Keep the newer local row; record the server's version under it. A pushed key is
            # rebased; a key the server changed on its own keeps its old base, so the next push
            # raises a conflict for the resolver instead of overwriting the server's change.
            set_row_state(conn, row.table.name, row.pk, row.row_version, row.payload is None)
            if sent:
                conn.execute(
                    "UPDATE _sync_dirty_rows SET base_row_version = ? "
                    "WHERE table_name = ? AND pk = ?",
                    (row.row_version, *key),
                )
        # Only a contiguous checkpoint may move: earlier bundles of other devices still need a pull.
        conn.execute(
            "UPDATE _sync_state SET last_bundle_seq_seen = ? WHERE last_bundle_seq_seen = ?",
            (info.bundle_seq, info.bundle_seq - 1),
        )
        conn.execute(
            "UPDATE _sync_state SET next_source_bundle_id = max(next_source_bundle_id, ?)",
            (info.source_bundle_id + 1,),
        )
        conn.execute("DELETE FROM _sync_committed_rows")
        _outbox.clear(conn)


def _prove_ours(ctx: Context, outbox: Outbox, info: _Committed) -> None:
    """An ``already_committed`` bundle must contain every key of the local outbox."""
    committed = {(r.table.name, r.pk) for r in _staged_rows(ctx, info) if r is not None}
    missing = [(r.table, r.pk) for r in outbox.rows if (r.table, r.pk) not in committed]
    if missing:
        logger.error("already committed bundle lacks local keys %s", missing[:5])
        _lifecycle.enter_source_recovery(ctx, "source_sequence_changed", None)


def _push_once(ctx: Context, outbox: Outbox) -> PushReport:
    try:
        info = _send(ctx, outbox)
    except _PrunedSignal:
        # Committed, but our commit's reply was lost and the bundle is pruned: as below, a
        # snapshot contains its rows (its bundle_seq is no longer known).
        logger.info("push: source bundle %d was committed and pruned", outbox.source_bundle_id)
        _lifecycle.rebuild_past_committed(ctx, outbox)
        return PushReport(PushOutcome.COMMITTED, None, outbox.source_bundle_id, len(outbox.rows))
    try:
        _fetch(ctx, outbox, info)
    except _PrunedSignal:
        # The server has our bundle but no longer its rows: a snapshot contains them.
        logger.info(
            "push: committed bundle %d was pruned; rebuilding from a snapshot", info.bundle_seq
        )
        with atomic(ctx.conn):
            ctx.conn.execute("DELETE FROM _sync_committed_rows")
        _lifecycle.rebuild_past_committed(ctx, outbox)
        return PushReport(
            PushOutcome.COMMITTED, info.bundle_seq, info.source_bundle_id, info.row_count
        )
    if info.already:
        _prove_ours(ctx, outbox, info)
    _replay(ctx, outbox, info)
    logger.info(
        "push: committed bundle %d (source bundle %d, %d rows)",
        info.bundle_seq,
        info.source_bundle_id,
        info.row_count,
    )
    return PushReport(PushOutcome.COMMITTED, info.bundle_seq, info.source_bundle_id, info.row_count)


def _bundle_limit(ctx: Context, state: SyncState) -> int:
    """Rows for the next bundle at most (0: no limit): server cap, client cap, isolation."""
    limits = [
        ctx.max_rows_per_bundle(state.source_id),
        ctx.config.max_bundle_rows,
        state.isolate_rows,
    ]
    return min((limit for limit in limits if limit > 0), default=0)


def _isolate(ctx: Context, outbox: Outbox, exc: ServerRejectedError) -> RejectedChange | None:
    """React to a bundle the server refused for its rows: split it, or reject its one row.

    The server does not say which row it refused, so a bundle of several rows goes back to the
    pending rows and is pushed again in bundles of half its size until the failing bundle holds
    one row; that row is moved to the rejected changes and the rest is pushed together again.
    """
    conn = ctx.conn
    with atomic(conn):
        if len(outbox.rows) > 1:
            _outbox.unfreeze(conn)
            half = (len(outbox.rows) + 1) // 2
            update_state(conn, isolate_rows=half, isolate_left=len(outbox.rows))
            logger.info(
                "push: %d-row bundle refused (%s); isolating the row in bundles of %d",
                len(outbox.rows),
                exc.code,
                half,
            )
            return None
        row = outbox.rows[0]
        change = _rejected.reject(conn, ctx.tables[row.table], row, exc)
        _outbox.clear(conn)
        update_state(conn, isolate_rows=0, isolate_left=0)
    logger.info(  # reported to the app in PushReport.rejected and status()
        "push: the server refused %s %s %s; moved to the rejected changes (id %d): %s",
        row.op,
        row.table,
        change.key,
        change.id,
        exc.server_message,
    )
    return change


def _after_commit(ctx: Context, state: SyncState, rows: int) -> None:
    """Count committed rows against the refused bundle being isolated; stop when it is done."""
    if not state.isolate_left:
        return
    left = max(0, state.isolate_left - rows)
    with atomic(ctx.conn):
        update_state(ctx.conn, isolate_left=left, isolate_rows=state.isolate_rows if left else 0)


def push_pending(ctx: Context, *, frozen_only: bool = False) -> PushReport:
    """Push the pending rows (see :meth:`oversqlite.Client.push_pending`).

    Rows go out in bundles of at most :func:`_bundle_limit` rows; a row the server refuses is
    isolated and moved to the rejected changes while the others are pushed.
    ``frozen_only``: only finish a bundle frozen earlier (nothing new is frozen).
    """
    conflicts: list[ResolvedConflict] = []
    rejected: list[RejectedChange] = []
    done: PushReport | None = None  # the bundles already committed by this call
    while True:
        state = read_state(ctx.conn)
        if frozen_only and not _outbox.exists(ctx.conn):
            return _finish(done, conflicts, rejected)
        limit = 0
        if not _outbox.exists(ctx.conn) and pending_row_count(ctx.conn):
            limit = _bundle_limit(ctx, state)
        outbox = _outbox.freeze(
            ctx.conn, ctx.tables, state.source_id, state.next_source_bundle_id, max_rows=limit
        )
        if outbox is None:
            if done is None and state.pending_initialization_id:
                _lifecycle.finish_empty_initialization(ctx, state)
            return _finish(done, conflicts, rejected)
        try:
            report = _push_once(ctx, outbox)
        except _ConflictSignal as signal:
            conflicts.append(settle(ctx, outbox, signal.conflict))
            if len(conflicts) > ctx.config.max_conflict_retries:
                pending = pending_row_count(ctx.conn)
                if pending:
                    raise ConflictRetryExhaustedError(
                        ctx.config.max_conflict_retries, pending
                    ) from None
            continue
        except _RejectedSignal as signal:
            change = _isolate(ctx, outbox, signal.exc)
            if change is not None:
                rejected.append(change)
            if frozen_only:
                return _finish(done, conflicts, rejected)
            continue
        _after_commit(ctx, state, len(outbox.rows))
        done = report if done is None else _merged(done, report)
        if frozen_only:
            return _finish(done, conflicts, rejected)
        full = bool(limit) and len(outbox.rows) >= limit
        if (full or state.isolate_left) and pending_row_count(ctx.conn):
            continue  # the rest of the pending rows follow in the next bundle
        return _finish(done, conflicts, rejected)


def _merged(before: PushReport, report: PushReport) -> PushReport:
    """One push, several bundles: reported as one (the last bundle's sequence)."""
    return PushReport(
        report.outcome,
        report.bundle_seq,
        report.source_bundle_id,
        before.row_count + report.row_count,
    )


def _finish(
    done: PushReport | None, conflicts: list[ResolvedConflict], rejected: list[RejectedChange]
) -> PushReport:
    report = done or PushReport(PushOutcome.NO_CHANGE)
    return PushReport(
        report.outcome,
        report.bundle_seq,
        report.source_bundle_id,
        report.row_count,
        tuple(conflicts),
        tuple(rejected),
    )
