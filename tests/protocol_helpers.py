"""Small helpers over the generated typed client for tests that talk to a live server.

    with server.client("alice") as client:
        attach(client, "dev-a")                                   # connect, initialize_empty
        commit = push_rows(client, "dev-a", 1, [insert_user()])   # create -> chunks -> commit
        stable, bundles = pull_to_stable(client, "dev-b")         # every page, frozen ceiling
        rows = committed_rows(client, "dev-a", commit.bundle_seq)

Every helper asserts the HTTP status it expects and returns the parsed model; `expect_error`
checks an ErrorResponse. Owner: lifecycle-pull; others may append functions at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from oversync_client import AuthenticatedClient
from oversync_client.api.lifecycle import connect
from oversync_client.api.pull import pull
from oversync_client.api.push import (
    commit_push_session,
    create_push_session,
    get_committed_bundle_rows,
    upload_push_chunk,
)
from oversync_client.models import (
    Bundle,
    BundleRow,
    CommittedBundleRowsResponse,
    ConnectRequest,
    ConnectResponse,
    ErrorResponse,
    PullResponse,
    PushChunkRequest,
    PushChunkResponse,
    PushCommitResponse,
    PushRequestRow,
    PushRequestRowPayload,
    PushSessionCreateRequest,
    PushSessionStaging,
    SyncKey,
)
from oversync_client.types import UNSET, Response
from serverproc import REPO_ROOT, ServerProcess

T = TypeVar("T")
EXAMPLE_CONFIG = REPO_ROOT / "examples" / "business" / "config.yaml"


def config_file(directory: Path, **overrides: Any) -> Path:
    """The example service configuration with `overrides`, written as JSON into `directory`."""
    data = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    data.update(overrides)
    path = directory / f"config-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def start_server(
    database_url: str, log_dir: Path, *, dev: bool = False, **overrides: Any
) -> ServerProcess:
    """A server on the example schema with config `overrides` (e.g. a short lease TTL) and the
    dev endpoints when `dev`; the caller stops it (`try: ... finally: server.stop()`)."""
    args = ("--example-schema", *(("--dev",) if dev else ()))
    process = ServerProcess(database_url, config=config_file(log_dir, **overrides), extra_args=args)
    return process.start(log_dir)


def parsed(response: Response[Any], kind: type[T], status: int = 200) -> T:
    """The parsed body of a response that must have `status` and be a `kind`."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert isinstance(response.parsed, kind), response.content[:500]
    return response.parsed


def expect_error(response: Response[Any], status: int, code: str) -> ErrorResponse:
    """Assert an ErrorResponse with this status and `error` code; return it."""
    error = parsed(response, ErrorResponse, status)
    assert error.error == code, (error.error, error.message)
    return error


def connect_source(
    client: AuthenticatedClient, source_id: str, *, pending: bool = False
) -> Response[ConnectResponse | ErrorResponse]:
    """POST /sync/connect, as it answers."""
    return connect.sync_detailed(
        client=client,
        oversync_source_id=source_id,
        body=ConnectRequest(has_local_pending_rows=pending),
    )


def attach(
    client: AuthenticatedClient, source_id: str, *, pending: bool = False
) -> ConnectResponse:
    """Connect and return the ConnectResponse (asserting 200)."""
    return parsed(connect_source(client, source_id, pending=pending), ConnectResponse)


def pull_page(
    client: AuthenticatedClient,
    source_id: str,
    *,
    after: int = 0,
    max_bundles: int = 1000,
    target: int = 0,
) -> Response[PullResponse | ErrorResponse]:
    """GET /sync/pull, as it answers."""
    return pull.sync_detailed(
        client=client,
        oversync_source_id=source_id,
        after_bundle_seq=after,
        max_bundles=max_bundles,
        target_bundle_seq=target,
    )


def pull_to_stable(
    client: AuthenticatedClient, source_id: str, *, after: int = 0, max_bundles: int = 1000
) -> tuple[int, list[Bundle]]:
    """Pull every page to the first page's stable ceiling (as the Go client does)."""
    first = parsed(pull_page(client, source_id, after=after, max_bundles=max_bundles), PullResponse)
    stable, bundles, page = first.stable_bundle_seq, list(first.bundles), first
    while page.has_more:
        checkpoint = bundles[-1].bundle_seq
        page = parsed(
            pull_page(client, source_id, after=checkpoint, max_bundles=max_bundles, target=stable),
            PullResponse,
        )
        assert page.stable_bundle_seq == stable
        bundles.extend(page.bundles)
    return stable, bundles


def row(
    table: str,
    op: str,
    key: str,
    payload: dict[str, Any] | None = None,
    *,
    base: int = 0,
    schema: str = "business",
) -> PushRequestRow:
    """One push row keyed by `id` (payload omitted for DELETE)."""
    key_object = SyncKey.from_dict({"id": key})
    body = UNSET if payload is None else PushRequestRowPayload.from_dict(payload)
    return PushRequestRow(
        schema=schema, table=table, key=key_object, op=op, base_row_version=base, payload=body
    )


def insert_user(name: str = "Ada", *, user_id: str | None = None) -> PushRequestRow:
    """An INSERT into business.users with a fresh uuid (or `user_id`)."""
    key = user_id or str(uuid.uuid4())
    return row("users", "INSERT", key, {"id": key, "name": name, "email": f"{name}@example.com"})


def push_rows(
    client: AuthenticatedClient,
    source_id: str,
    source_bundle_id: int,
    rows: list[PushRequestRow],
    *,
    chunk_rows: int = 1000,
    initialization_id: str | None = None,
) -> PushCommitResponse:
    """Create a push session, upload `rows` in chunks and commit (asserting each step's 200)."""
    created = create_push_session.sync_detailed(
        client=client,
        oversync_source_id=source_id,
        body=PushSessionCreateRequest(
            source_bundle_id=source_bundle_id,
            planned_row_count=len(rows),
            initialization_id=UNSET if initialization_id is None else initialization_id,
        ),
    )
    push_id = parsed(created, PushSessionStaging).push_id
    for start in range(0, len(rows), chunk_rows):
        uploaded = upload_push_chunk.sync_detailed(
            push_id,
            client=client,
            oversync_source_id=source_id,
            body=PushChunkRequest(start_row_ordinal=start, rows=rows[start : start + chunk_rows]),
        )
        parsed(uploaded, PushChunkResponse)
    committed = commit_push_session.sync_detailed(
        push_id, client=client, oversync_source_id=source_id
    )
    return parsed(committed, PushCommitResponse)


def committed_rows(
    client: AuthenticatedClient, source_id: str, bundle_seq: int, *, max_rows: int = 1000
) -> list[BundleRow]:
    """Every row of a committed bundle, through all pages of the committed-rows fetch."""
    rows: list[BundleRow] = []
    after: int | None = None
    while True:
        page = parsed(
            get_committed_bundle_rows.sync_detailed(
                bundle_seq,
                client=client,
                oversync_source_id=source_id,
                after_row_ordinal=UNSET if after is None else after,
                max_rows=max_rows,
            ),
            CommittedBundleRowsResponse,
        )
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        after = page.next_row_ordinal


# ----------------------------------------------------- direct storage seeding (no push needed)

_SEED_USER = """
WITH u AS (
    INSERT INTO sync.user_state (user_id) VALUES ($1)
    ON CONFLICT (user_id) DO UPDATE SET user_id = EXCLUDED.user_id
    RETURNING user_pk
)
INSERT INTO sync.scope_state (user_pk, state_code, initialized_at, initialized_by_source_id)
SELECT user_pk, 2, now(), $2 FROM u
ON CONFLICT (user_pk) DO NOTHING
"""
_SEED_ALLOCATE = """
UPDATE sync.user_state SET next_bundle_seq = next_bundle_seq + 1 WHERE user_id = $1
RETURNING user_pk, next_bundle_seq - 1 AS bundle_seq
"""


async def seed_bundle(
    conn: Any, user_id: str, source_id: str, rows: list[dict[str, Any]]
) -> tuple[int, str]:
    """Write one committed bundle straight into sync.bundle_log/bundle_rows; (bundle_seq, hash).

    For storage-level tests that need bundles without the push path. `rows` are wire rows
    (`schema`, `table`, `key` {"id": uuid}, `op`, `payload` except for DELETE). The scope is made
    INITIALIZED if the user is new. Runs in its own transaction on `conn` (an asyncpg connection).
    """
    from oversync_wire import bundle_hash, canonical_json

    async with conn.transaction():
        await conn.execute(_SEED_USER, user_id, source_id)
        allocated = await conn.fetchrow(_SEED_ALLOCATE, user_id)
        user_pk, seq = allocated["user_pk"], allocated["bundle_seq"]
        wire = [{**item, "row_version": seq} for item in rows]
        digest, byte_count = bundle_hash(wire)
        source_bundle_id = await conn.fetchval(
            "SELECT coalesce(max(source_bundle_id), 0) + 1 FROM sync.bundle_log"
            " WHERE user_pk = $1 AND source_id = $2",
            user_pk,
            source_id,
        )
        await conn.execute(
            "INSERT INTO sync.bundle_log (user_pk, bundle_seq, source_id, source_bundle_id,"
            " row_count, byte_count, bundle_hash) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            user_pk,
            seq,
            source_id,
            source_bundle_id,
            len(rows),
            byte_count,
            bytes.fromhex(digest),
        )
        table_ids = dict(
            await conn.fetch(
                "SELECT schema_name || '.' || table_name, table_id FROM sync.table_catalog"
            )
        )
        op_codes = {"INSERT": 1, "UPDATE": 2, "DELETE": 3}
        await conn.executemany(
            "INSERT INTO sync.bundle_rows (user_pk, bundle_seq, row_ordinal, table_id, key_bytes,"
            " op_code, payload_wire) VALUES ($1, $2, $3, $4, $5, $6, $7::json)",
            [
                (
                    user_pk,
                    seq,
                    ordinal,
                    table_ids[f"{item['schema']}.{item['table']}"],
                    uuid.UUID(item["key"]["id"]).bytes,
                    op_codes[item["op"]],
                    None if item["op"] == "DELETE" else canonical_json(item["payload"]).decode(),
                )
                for ordinal, item in enumerate(rows, 1)
            ],
        )
    return seq, digest


def user_row(op: str = "INSERT", key: str | None = None, name: str = "Ada") -> dict[str, Any]:
    """A wire row of business.users for `seed_bundle` (DELETE rows have no payload)."""
    key = key or str(uuid.uuid4())
    item: dict[str, Any] = {"schema": "business", "table": "users", "key": {"id": key}, "op": op}
    if op != "DELETE":
        item["payload"] = {"id": key, "name": name, "email": f"{name}@example.com"}
    return item


# ----------------------------------------------- in-process runtime and SSE (snapshot-watch)


@contextlib.asynccontextmanager
async def started_runtime(database_url: str, **overrides: Any) -> AsyncIterator[Any]:
    """A started in-process `SyncRuntime` (example config + `overrides`, bootstrapped) on a
    database whose example schema exists (e.g. the `server` fixture's); for server-side APIs
    such as `oversync_server.server_writes`."""
    from oversync_server.config import load_config
    from oversync_server.engine import schema as sync_schema
    from oversync_server.runtime import SyncRuntime

    config = load_config(EXAMPLE_CONFIG).with_changes(**overrides)
    runtime = SyncRuntime(config=config, database_url=database_url)
    sync_schema.install(runtime)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


@dataclass
class SSEStream:
    """An open `GET /sync/watch` stream: `await next_event()` / `await next_frame()`.

    Frames are ("bundle", data dict) for events and ("comment", text) for `:` lines.
    """

    response: httpx.Response
    _lines: AsyncIterator[str]

    async def next_frame(self, timeout: float = 10.0) -> tuple[str, Any]:
        return await asyncio.wait_for(self._read_frame(), timeout)

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        """The next `bundle` event's data, skipping heartbeats."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            kind, value = await self.next_frame(max(remaining, 0.001))
            if kind == "bundle":
                return dict(value)

    async def _read_frame(self) -> tuple[str, Any]:
        event, data = "", []
        async for line in self._lines:
            if line.startswith(":"):
                return "comment", line[1:].strip()
            if line.startswith("event:"):
                event = line[len("event:") :].strip()
            elif line.startswith("data:"):
                data.append(line[len("data:") :].strip())
            elif line == "" and (event or data):
                assert event == "bundle", event
                return "bundle", json.loads("\n".join(data))
        raise EOFError("the watch stream ended")


@contextlib.asynccontextmanager
async def watch_stream(
    server: ServerProcess, user_id: str, source_id: str, *, after: int = 0
) -> AsyncIterator[SSEStream]:
    """Open `GET /sync/watch?after_bundle_seq=after` (asserting 200 text/event-stream)."""
    headers = {"Authorization": f"Bearer {server.token(user_id)}", "Oversync-Source-ID": source_id}
    async with (
        httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=None) as http,
        http.stream("GET", "/sync/watch", params={"after_bundle_seq": after}) as response,
    ):
        assert response.status_code == 200, (response.status_code, await response.aread())
        assert response.headers["content-type"] == "text/event-stream"
        yield SSEStream(response, response.aiter_lines())


def snapshot_create(
    client: AuthenticatedClient,
    source_id: str,
    *,
    replace_with: str | None = None,
    reason: str = "history_pruned",
) -> Response[Any]:
    """POST /sync/snapshot-sessions (rotated to `replace_with` when given), as it answers."""
    from oversync_client.api.snapshot import create_snapshot_session
    from oversync_client.models import (
        SnapshotSessionCreateRequest,
        SourceReplacement,
        SourceReplacementReason,
    )

    body: Any = UNSET
    if replace_with is not None:
        body = SnapshotSessionCreateRequest(
            source_replacement=SourceReplacement(
                previous_source_id=source_id,
                new_source_id=replace_with,
                reason=SourceReplacementReason(reason),
            )
        )
    return create_snapshot_session.sync_detailed(
        client=client, oversync_source_id=source_id, body=body
    )


def snapshot_rows(
    client: AuthenticatedClient, source_id: str, snapshot_id: str, *, max_rows: int = 1000
) -> list[Any]:
    """Every row of a snapshot session, paging with the 1-based cursor (checked page by page)."""
    from oversync_client.api.snapshot import get_snapshot_chunk
    from oversync_client.models import SnapshotChunkResponse

    rows: list[Any] = []
    after = 0
    while True:
        page = parsed(
            get_snapshot_chunk.sync_detailed(
                snapshot_id,
                client=client,
                oversync_source_id=source_id,
                after_row_ordinal=after,
                max_rows=max_rows,
            ),
            SnapshotChunkResponse,
        )
        assert page.snapshot_id == snapshot_id
        assert page.next_row_ordinal == after + len(page.rows)
        rows.extend(page.rows)
        if not page.has_more:
            return rows
        assert page.rows, "has_more without rows"
        after = page.next_row_ordinal
