"""Pull: complete committed bundles up to a stable ceiling, each applied atomically.

The first page freezes ``stable_bundle_seq``; later pages ask for exactly that target. Each
bundle is verified (row count and ``bundle_hash``) and applied in its own transaction together
with the checkpoint, so a crash loses at most the bundle in flight. Rows whose local row state
is already at or past the incoming version (our own replayed pushes) are skipped.

Pull never overwrites local intent: it is refused while rows are pending, and it stops before
the next bundle if the application wrote to a managed table meanwhile.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial

from oversqlite._apply import ServerRow, apply_server_row, row_state
from oversqlite._bundles import bundle_row_dicts, parse_bundle_rows, verify_bundle
from oversqlite._context import Context
from oversqlite._control import Phase
from oversqlite._errors import ProtocolError, ServerRejectedError
from oversqlite._results import PullOutcome, PullReport, RestoreSummary
from oversqlite._store import apply_transaction, pending_row_count, read_state
from oversync_client.models import Bundle

__all__ = ["PrunedHandler", "pull_to_stable"]

logger = logging.getLogger("oversqlite")

PrunedHandler = Callable[[], RestoreSummary]
"""Rebuilds from a snapshot when the server pruned the history this device needs."""


def _checked_rows(ctx: Context, bundle: Bundle, after: int, stable: int) -> list[ServerRow]:
    seq = bundle.bundle_seq
    if not after < seq <= stable or not bundle.source_id or bundle.source_bundle_id <= 0:
        raise ProtocolError(
            f"pulled bundle {seq} (source {bundle.source_id!r}, source_bundle_id "
            f"{bundle.source_bundle_id}) is outside ({after}, {stable}] or malformed"
        )
    raw = bundle_row_dicts(bundle.rows)
    verify_bundle(f"pulled bundle {seq}", raw, bundle.row_count, bundle.bundle_hash)
    rows = parse_bundle_rows(ctx.tables, ctx.config.schema, raw, seq, ctx.drift)
    return [row for row in rows if row is not None]


def _apply_bundle(ctx: Context, seq: int, rows: list[ServerRow]) -> bool:
    """Apply one bundle and move the checkpoint; ``False`` if local writes appeared first."""
    conn = ctx.conn
    with apply_transaction(conn):
        if pending_row_count(conn):
            return False
        for row in rows:
            known = row_state(conn, row.table.name, row.pk)
            if known is not None and known[0] >= row.row_version:
                continue
            apply_server_row(conn, row)
        conn.execute(
            "UPDATE _sync_state SET last_bundle_seq_seen = max(last_bundle_seq_seen, ?)", (seq,)
        )
    return True


def _rebuilt(ctx: Context, on_pruned: PrunedHandler, applied: int) -> PullReport:
    restore = on_pruned()
    seen = read_state(ctx.conn).last_bundle_seq_seen
    return PullReport(PullOutcome.APPLIED_SNAPSHOT, seen, applied, restore)


def pull_to_stable(ctx: Context, source_id: str, *, on_pruned: PrunedHandler) -> PullReport:
    """Pull and apply bundles until the checkpoint reaches the frozen stable ceiling."""
    conn = ctx.conn
    pending = pending_row_count(conn)
    after = read_state(conn).last_bundle_seq_seen
    if pending:
        return PullReport(PullOutcome.BLOCKED_BY_PENDING_CHANGES, after, pending_row_count=pending)
    target: int | None = None
    applied, start = 0, after
    while True:
        request = partial(
            ctx.api.pull,
            source_id,
            after=after,
            max_bundles=ctx.config.pull_max_bundles,
            target=target,
        )
        try:
            page = ctx.retry("pull", request)
        except ServerRejectedError as exc:
            if exc.code != "history_pruned":
                raise
            logger.info("pull: history pruned after bundle %d; rebuilding from a snapshot", after)
            return _rebuilt(ctx, on_pruned, applied)
        if after == 0 and page.bundles and page.bundles[0].bundle_seq != 1:
            # A pull after bundle 0 is exempt from the server's floor check (go-oversync's
            # protocol): it skips the pruned bundles silently instead of answering
            # history_pruned. Bundle sequences are gapless from 1, so a first bundle past 1
            # means history this device never saw is gone: a snapshot has it.
            logger.info(
                "pull: bundles before %d were pruned; rebuilding from a snapshot",
                page.bundles[0].bundle_seq,
            )
            return _rebuilt(ctx, on_pruned, applied)
        stable = page.stable_bundle_seq
        if stable < after:
            raise ProtocolError(
                f"the server's stable bundle {stable} is behind this device's checkpoint {after} "
                "(was the server reset?); call rebuild()"
            )
        if target is not None and stable != target:
            raise ProtocolError(f"stable_bundle_seq moved from {target} to {stable} mid-pull")
        target = stable
        for bundle in page.bundles:
            rows = _checked_rows(ctx, bundle, after, stable)
            if not _apply_bundle(ctx, bundle.bundle_seq, rows):
                pending = pending_row_count(conn)
                logger.info("pull: stopped at bundle %d, local changes appeared", after)
                return PullReport(
                    PullOutcome.BLOCKED_BY_PENDING_CHANGES,
                    after,
                    applied,
                    pending_row_count=pending,
                )
            after = bundle.bundle_seq
            applied += 1
            ctx.control.report(Phase.PULL, applied, stable - start)
        if after >= stable:
            break
        if not page.has_more:
            raise ProtocolError(f"pull ended at bundle {after} before the stable bundle {stable}")
    outcome = PullOutcome.APPLIED_INCREMENTAL if applied else PullOutcome.ALREADY_AT_TARGET
    logger.info("pull: %s, %d bundle(s), checkpoint %d", outcome, applied, after)
    return PullReport(outcome, after, applied)
