"""Settle one structured push conflict locally, in one transaction.

The rejected bundle is unfrozen: every other row goes back to the dirty rows unchanged, and the
conflicting row gets the resolver's plan (``_conflicts.plan_resolution``). If the app edited
the conflicting row again while the push was in flight, its newer state wins the right to be
judged: only the server's row state is recorded, and the next push round asks the resolver
again with the newer local row. Nothing the resolver has not seen is ever discarded.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from oversqlite import _outbox
from oversqlite._apply import (
    delete_local,
    fit_payload,
    forget_row_state,
    set_row_state,
    write_local,
)
from oversqlite._codec import key_from_wire, wire_key
from oversqlite._conflicts import Conflict, LocalWrite, ResolutionPlan, plan_resolution
from oversqlite._context import Context
from oversqlite._errors import InvalidConflictResolutionError, ProtocolError
from oversqlite._outbox import Outbox, OutboxRow
from oversqlite._results import ResolvedConflict
from oversqlite._schema import TableInfo
from oversqlite._store import apply_transaction, atomic
from oversync_client.models import PushConflict

__all__ = ["settle"]

logger = logging.getLogger("oversqlite")


def _frozen_row(
    ctx: Context, outbox: Outbox, conflict: PushConflict
) -> tuple[TableInfo, OutboxRow]:
    table = ctx.tables.get(conflict.table)
    if table is None or conflict.schema != ctx.config.schema:
        raise ProtocolError(f"conflict names {conflict.schema}.{conflict.table}, not pushed here")
    try:
        pk = key_from_wire(table, conflict.key.additional_properties)
    except ValueError as exc:
        raise ProtocolError(f"conflict key: {exc}") from None
    for row in outbox.rows:
        if row.table == table.name and row.pk == pk:
            return table, row
    raise ProtocolError(f"conflict names {table.name} {pk}, which was not in the pushed bundle")


def _restore_all(ctx: Context) -> None:
    with atomic(ctx.conn):
        _outbox.unfreeze(ctx.conn)


def _apply(
    ctx: Context, table: TableInfo, row: OutboxRow, plan: ResolutionPlan, *, fallback: bool = False
) -> bool:
    """Run the plan; returns whether it was deferred (the row was edited during the push).

    ``fallback`` only drops the local intent: the business row and its row state stay as they
    are, so the next pull brings the server's row.
    """
    conn = ctx.conn
    with apply_transaction(conn):
        deferred = (
            conn.execute(
                "SELECT 1 FROM _sync_dirty_rows WHERE table_name = ? AND pk = ?",
                (table.name, row.pk),
            ).fetchone()
            is not None
        )
        if fallback:
            _outbox.unfreeze(conn, skip=(table.name, row.pk))
            return deferred
        if not deferred:
            if plan.write in (LocalWrite.SERVER_ROW, LocalWrite.MERGED_ROW):
                assert plan.payload is not None
                write_local(conn, table, row.pk, plan.payload)
            elif plan.write is LocalWrite.DELETE:
                delete_local(conn, table, row.pk)
        if plan.row_state is None:
            forget_row_state(conn, table.name, row.pk)
        else:
            set_row_state(conn, table.name, row.pk, *plan.row_state)
        if plan.requeue and not deferred:
            base = 0 if plan.row_state is None else plan.row_state[0]
            conn.execute(
                "INSERT INTO _sync_dirty_rows (table_name, pk, base_row_version, dirty_ordinal) "
                "VALUES (?, ?, ?, (SELECT COALESCE(MAX(dirty_ordinal), 0) + 1 "
                "FROM _sync_dirty_rows))",
                (table.name, row.pk, base),
            )
        _outbox.unfreeze(conn, skip=(table.name, row.pk))
    return deferred


def _fitted(
    ctx: Context, table: TableInfo, plan: ResolutionPlan, server_row: Mapping[str, Any] | None
) -> ResolutionPlan:
    """Drop the server-only columns (added on the server, not here) from the row to write.

    A merged row may carry them because it was built from the server row; any other column
    the local table lacks stays in and is refused as an invalid resolution.
    """
    if plan.payload is None:
        return plan
    server_only = set(server_row or ()) - table.wire_columns
    extra = set(plan.payload) - table.wire_columns
    if not extra or not (plan.write is LocalWrite.SERVER_ROW or extra <= server_only):
        return plan
    return replace(plan, payload=fit_payload(table, plan.payload, ctx.drift))


def settle(ctx: Context, outbox: Outbox, conflict: PushConflict) -> ResolvedConflict:
    """Ask the resolver about ``conflict`` and apply its answer; the outbox is cleared.

    Raises :class:`InvalidConflictResolutionError` (every frozen row back in the dirty rows)
    when the answer cannot be applied.
    """
    try:
        table, row = _frozen_row(ctx, outbox, conflict)
    except ProtocolError:
        _restore_all(ctx)
        raise
    server_row = conflict.server_row
    context = Conflict(
        table=table.name,
        key=wire_key(table, row.pk),
        local_op=row.op,
        local_payload=row.payload,
        base_row_version=conflict.base_row_version,
        server_row_version=conflict.server_row_version,
        server_row_deleted=conflict.server_row_deleted,
        server_row=None if server_row is None else dict(server_row.additional_properties),
    )
    try:
        plan = plan_resolution(context, ctx.config.resolver(context))
    except InvalidConflictResolutionError:
        _restore_all(ctx)
        raise
    except Exception as exc:
        _restore_all(ctx)
        raise InvalidConflictResolutionError(
            table.name, row.pk, f"the resolver raised {type(exc).__name__}: {exc}"
        ) from exc
    plan = _fitted(ctx, table, plan, context.server_row)
    try:
        deferred = _apply(ctx, table, row, plan)
    except ValueError as exc:  # a server or merged row that does not fit the local table
        _restore_all(ctx)
        raise InvalidConflictResolutionError(table.name, row.pk, str(exc)) from exc
    except sqlite3.IntegrityError as exc:
        if plan.write is not LocalWrite.SERVER_ROW:
            _restore_all(ctx)
            raise InvalidConflictResolutionError(table.name, row.pk, str(exc)) from exc
        # The server row references rows this device has not pulled yet: drop the local
        # intent only; the server's row arrives with the next pull.
        deferred = _apply(ctx, table, row, plan, fallback=True)
    label = "deferred" if deferred else plan.label
    logger.info("conflict on %s %s (%s): %s", table.name, row.pk, row.op, label)
    return ResolvedConflict(table.name, context.key, row.op, label, conflict.server_row_version)
