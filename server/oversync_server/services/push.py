"""Push: push sessions and committed bundle rows (protocol.md §6.2-§6.6).

Thin HTTP layer over `engine.push_sessions`, `engine.push_commit` and `engine.committed_rows`.
Writers (create, chunk, commit) run under the per-user advisory lock on one pinned connection,
in a READ COMMITTED transaction retried up to 3 times on 40001/40P01/55P03; delete and the
committed-rows fetch take no lock. Checks happen in the reference's order; unexpected failures
answer the endpoint's 500 code, and database errors caused by the values a client sent (type
errors, NOT NULL, FK, unique and check violations) answer 400 `push_commit_invalid` naming the
table and column (the reference answers 500; docs/deviations.md).

Statement budget per request, whatever the row count (the user lock is taken in BEGIN's round
trip and ends with COMMIT: `engine.connection`):

| operation | statements |
| --- | --- |
| create | 3 (+2 for a seeding push, +3 on a user's first contact) |
| chunk | 3: one statement locks the session, stages up to 100 rows and checks their values (a COPY and a value check for bigger chunks: 5) (+3 for a seeding session) |
| commit | 8 + G, G <= 3 x tables touched (+3 for a seeding session; see `push_commit`) |
| delete | 4 |
| committed rows page | 1 |

The create, chunk and commit requests normally reach these methods through
`push_fastpath` rather than FastAPI's routes; they behave the same either way.
"""

from __future__ import annotations

import logging
from datetime import timedelta

import asyncpg
from fastapi.responses import Response

from oversync_protocol import models
from oversync_server.api import HTTPResult
from oversync_server.api.services import PushService
from oversync_server.engine import push_commit, push_sessions, sources
from oversync_server.engine import scope as scopes
from oversync_server.engine.committed_rows import PageRequest, committed_rows_page
from oversync_server.engine.db import run_retrying
from oversync_server.engine.errors import SyncError
from oversync_server.engine.push_rows import chunk_invalid, prepare_rows
from oversync_server.engine.schema import catalog_of
from oversync_server.errors import failing_as
from oversync_server.runtime import SyncRuntime

log = logging.getLogger("oversync_server")


def _client_value_error(error: asyncpg.PostgresError) -> SyncError | None:
    """400 `push_commit_invalid` for a database error caused by a value the client sent."""
    state = getattr(error, "sqlstate", "") or ""
    if not (state.startswith("22") or state.startswith("23") or state == "428C9"):
        return None
    table = getattr(error, "table_name", None)
    schema = getattr(error, "schema_name", None)
    if schema == "sync":  # the server's own bookkeeping: not the client's fault
        return None
    column = getattr(error, "column_name", None)
    constraint = getattr(error, "constraint_name", None)
    where = f"{schema}.{table}" if schema and table else (table or "")
    subject = " ".join(
        part
        for part in (
            f"table {where}" if where else "",
            f'column "{column}"' if column else "",
            f'constraint "{constraint}"' if constraint else "",
        )
        if part
    )
    detail = getattr(error, "detail", None)
    message = f"push commit rejected by the database ({subject or 'value'}): {error}"
    if detail:
        message += f" ({detail})"
    return SyncError("push_commit_invalid", message)


class Push(PushService[object]):
    """The push operations."""

    def __init__(self, runtime: SyncRuntime) -> None:
        self.runtime = runtime

    async def create_push_session(
        self,
        *,
        principal: object,
        Oversync_Source_ID: str,
        body: models.PushSessionCreateRequest,
    ) -> (
        models.PushSessionCreateResponse
        | HTTPResult[models.PushSessionCreateResponse | models.ErrorResponse]
        | Response
    ):
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        if body.source_bundle_id <= 0:
            raise SyncError("push_session_invalid", "source_bundle_id must be > 0")
        if body.planned_row_count <= 0:
            raise SyncError("push_session_invalid", "planned_row_count must be > 0")
        config = self.runtime.config
        limit = config.max_rows_per_bundle
        if limit and body.planned_row_count > limit:
            raise SyncError(
                "push_session_invalid",
                f"planned_row_count {body.planned_row_count} exceeds max_rows_per_bundle {limit};"
                " split the change into smaller bundles",
            )
        initialization_id = (body.initialization_id or "").strip() or None
        planned = push_sessions.PlannedSession(
            body.planned_row_count, initialization_id, config.push_session_ttl_seconds
        )

        async def attempt(conn: scopes.Connection) -> models.PushSessionCreateResponse:
            async with conn.transaction():
                context = await push_sessions.lock_for_create(
                    conn,
                    user_id=actor.user_id,
                    source_id=actor.source_id,
                    source_bundle_id=body.source_bundle_id,
                    planned=planned,
                )
                scope = context.scope
                seeding = await scopes.admit_push_create(
                    conn,
                    scope,
                    source_id=actor.source_id,
                    initialization_id=initialization_id,
                    lease_ttl=timedelta(seconds=config.initialization_lease_ttl_seconds),
                )
                committed = context.committed
                if committed is not None:
                    return models.PushSessionCreateResponse(
                        models.PushSessionAlreadyCommitted(
                            status="already_committed",
                            bundle_seq=committed.bundle_seq,
                            source_id=committed.source_id,
                            source_bundle_id=committed.source_bundle_id,
                            row_count=committed.row_count,
                            bundle_hash=committed.bundle_hash,
                        )
                    )
                sources.check_next(
                    context.source, user_id=actor.user_id, source_bundle_id=body.source_bundle_id
                )
                push_id = context.created or await push_sessions.create_session(
                    conn,
                    user_pk=scope.user_pk,
                    source_id=actor.source_id,
                    source_bundle_id=body.source_bundle_id,
                    planned_row_count=body.planned_row_count,
                    initialization_id=initialization_id if seeding else None,
                    ttl_seconds=config.push_session_ttl_seconds,
                )
                # next_expected_row_ordinal stays unset: Go omits the 0 (omitempty)
                return models.PushSessionCreateResponse(
                    models.PushSessionStaging(
                        push_id=str(push_id),
                        status="staging",
                        planned_row_count=body.planned_row_count,
                    )
                )

        with failing_as("push_session_create_failed", "Failed to create push session"):
            async with scopes.user_lock(self.runtime.pool, actor.user_id, reset=False) as conn:
                return await run_retrying(lambda: attempt(conn))

    async def upload_push_chunk(
        self,
        *,
        principal: object,
        push_id: str,
        Oversync_Source_ID: str,
        body: models.PushChunkRequest,
    ) -> (
        models.PushChunkResponse
        | HTTPResult[models.PushChunkResponse | models.ErrorResponse]
        | Response
    ):
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        config = self.runtime.config
        if body.start_row_ordinal < 0:
            raise chunk_invalid("start_row_ordinal must be >= 0")
        if not body.rows:
            raise chunk_invalid("rows must not be empty")
        if len(body.rows) > config.max_rows_per_push_chunk:
            raise chunk_invalid(
                f"rows length {len(body.rows)} exceeds max_rows_per_push_chunk"
                f" {config.max_rows_per_push_chunk}"
            )
        catalog = catalog_of(self.runtime)
        rows = prepare_rows(catalog, body.rows)

        async def attempt(conn: scopes.Connection) -> int:
            async with conn.transaction():
                session, staged = await push_sessions.lock_and_stage(
                    conn,
                    push_id,
                    actor.user_id,
                    start_row_ordinal=body.start_row_ordinal,
                    rows=rows,
                    ttl_seconds=config.push_session_ttl_seconds,
                )
                if session.initialization_id is not None:
                    await scopes.require_active_lease(
                        conn,
                        actor.user_id,
                        source_id=session.source_id,
                        initialization_id=session.initialization_id,
                        lease_ttl=timedelta(seconds=config.initialization_lease_ttl_seconds),
                    )
                expected = session.next_expected_row_ordinal
                if body.start_row_ordinal != expected:
                    raise SyncError(
                        "push_chunk_out_of_order",
                        f"push session {push_id} expected start_row_ordinal {expected},"
                        f" got {body.start_row_ordinal}",
                    )
                if body.start_row_ordinal + len(rows) > session.planned_row_count:
                    raise chunk_invalid("chunk exceeds planned_row_count")
                if staged is not None:  # by the statement that locked the session
                    return staged
                return await push_sessions.stage_chunk(
                    conn,
                    session,
                    start_row_ordinal=body.start_row_ordinal,
                    rows=rows,
                    ttl_seconds=config.push_session_ttl_seconds,
                )

        with failing_as("push_chunk_failed", "Failed to upload push chunk"):
            async with scopes.user_lock(self.runtime.pool, actor.user_id, reset=False) as conn:
                try:
                    next_ordinal = await run_retrying(lambda: attempt(conn))
                except (asyncpg.DataError, asyncpg.IntegrityConstraintViolationError) as error:
                    # a value the column type (or its domain) refuses; not the server's tables
                    if getattr(error, "schema_name", None) == "sync":
                        raise
                    raise await push_sessions.explain_value_error(
                        conn, catalog, rows, error
                    ) from error
        return models.PushChunkResponse(push_id=push_id, next_expected_row_ordinal=next_ordinal)

    async def commit_push_session(
        self,
        *,
        principal: object,
        push_id: str,
        Oversync_Source_ID: str,
    ) -> (
        models.PushCommitResponse
        | HTTPResult[models.PushCommitResponse | models.ErrorResponse]
        | Response
    ):
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        catalog = catalog_of(self.runtime)
        config = self.runtime.config

        async def attempt(conn: scopes.Connection) -> models.PushCommitResponse:
            bundle = await push_commit.commit_push(
                conn, catalog, config, push_id=push_id, user_id=actor.user_id
            )
            return models.PushCommitResponse(
                bundle_seq=bundle.bundle_seq,
                source_id=bundle.source_id,
                source_bundle_id=bundle.source_bundle_id,
                row_count=bundle.row_count,
                bundle_hash=bundle.bundle_hash,
            )

        with failing_as("push_session_commit_failed", "Failed to commit push session"):
            async with scopes.user_lock(self.runtime.pool, actor.user_id, reset=False) as conn:
                try:
                    return await run_retrying(lambda: attempt(conn))
                except asyncpg.PostgresError as error:
                    problem = _client_value_error(error)
                    if problem is None:
                        raise
                    raise problem from error

    async def delete_push_session(
        self,
        *,
        principal: object,
        push_id: str,
        Oversync_Source_ID: str,
    ) -> HTTPResult[models.ErrorResponse] | Response | None:
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        with failing_as("push_session_delete_failed", "Failed to delete push session"):
            async with self.runtime.pool.acquire() as conn, conn.transaction():
                session = await push_sessions.lock_session(conn, push_id, actor.user_id)
                await push_sessions.delete_session(conn, session.push_id)
        return Response(status_code=204)

    async def get_committed_bundle_rows(
        self,
        *,
        principal: object,
        bundle_seq: int,
        Oversync_Source_ID: str,
        after_row_ordinal: int | None,
        max_rows: int | None,
    ) -> (
        models.CommittedBundleRowsResponse
        | HTTPResult[models.CommittedBundleRowsResponse | models.ErrorResponse]
        | Response
    ):
        actor = self.runtime.actor(principal, Oversync_Source_ID)
        config = self.runtime.config

        def invalid(message: str) -> SyncError:
            return SyncError("committed_bundle_chunk_invalid", message)

        if bundle_seq <= 0:
            raise invalid("bundle_seq must be > 0")
        if after_row_ordinal is not None and after_row_ordinal < 0:
            raise invalid("after_row_ordinal must be >= 0")
        if max_rows is not None and max_rows <= 0:
            raise invalid("max_rows must be > 0")
        limit = min(
            max_rows or config.default_rows_per_committed_bundle_chunk,
            config.max_rows_per_committed_bundle_chunk,
        )
        request = PageRequest(bundle_seq, after_row_ordinal, limit)
        with failing_as("committed_bundle_rows_failed", "Failed to fetch committed bundle rows"):
            async with self.runtime.pool.acquire() as conn:
                body = await committed_rows_page(
                    conn, catalog_of(self.runtime), user_id=actor.user_id, request=request
                )
        return Response(content=body, media_type="application/json")
