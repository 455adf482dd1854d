"""Helpers of the push tests (owner: storage-push): raw protocol calls through the typed client,
each returning the typed response so tests can assert statuses and error codes."""

from __future__ import annotations

import uuid
from typing import Any

import httpx

from oversync_client import AuthenticatedClient
from oversync_client.api.push import (
    commit_push_session,
    create_push_session,
    delete_push_session,
    get_committed_bundle_rows,
    upload_push_chunk,
)
from oversync_client.models import (
    CommittedBundleRowsResponse,
    ErrorResponse,
    PushChunkRequest,
    PushChunkResponse,
    PushCommitResponse,
    PushRequestRow,
    PushSessionAlreadyCommitted,
    PushSessionCreateRequest,
    PushSessionStaging,
)
from oversync_client.types import UNSET, Response
from protocol_helpers import expect_error, parsed, row
from serverproc import ServerProcess


def create(
    client: AuthenticatedClient,
    source: str,
    source_bundle_id: int,
    planned: int,
    initialization_id: str | None = None,
) -> Response[Any]:
    return create_push_session.sync_detailed(
        client=client,
        oversync_source_id=source,
        body=PushSessionCreateRequest(
            source_bundle_id=source_bundle_id,
            planned_row_count=planned,
            initialization_id=UNSET if initialization_id is None else initialization_id,
        ),
    )


def staging(
    client: AuthenticatedClient,
    source: str,
    source_bundle_id: int,
    planned: int,
    initialization_id: str | None = None,
) -> str:
    """Create a staging session; its push_id."""
    response = create(client, source, source_bundle_id, planned, initialization_id)
    return parsed(response, PushSessionStaging).push_id


def chunk(
    client: AuthenticatedClient,
    source: str,
    push_id: str,
    start: int,
    rows: list[PushRequestRow],
) -> Response[Any]:
    return upload_push_chunk.sync_detailed(
        push_id,
        client=client,
        oversync_source_id=source,
        body=PushChunkRequest(start_row_ordinal=start, rows=rows),
    )


def upload(
    client: AuthenticatedClient, source: str, push_id: str, start: int, rows: list[PushRequestRow]
) -> int:
    return parsed(
        chunk(client, source, push_id, start, rows), PushChunkResponse
    ).next_expected_row_ordinal


def commit(client: AuthenticatedClient, source: str, push_id: str) -> Response[Any]:
    return commit_push_session.sync_detailed(push_id, client=client, oversync_source_id=source)


def committed(client: AuthenticatedClient, source: str, push_id: str) -> PushCommitResponse:
    return parsed(commit(client, source, push_id), PushCommitResponse)


def delete(client: AuthenticatedClient, source: str, push_id: str) -> Response[Any]:
    return delete_push_session.sync_detailed(push_id, client=client, oversync_source_id=source)


def rows_page(
    client: AuthenticatedClient,
    source: str,
    bundle_seq: int,
    *,
    after: int | None = None,
    max_rows: int | None = None,
) -> Response[Any]:
    return get_committed_bundle_rows.sync_detailed(
        bundle_seq,
        client=client,
        oversync_source_id=source,
        after_row_ordinal=UNSET if after is None else after,
        max_rows=UNSET if max_rows is None else max_rows,
    )


def page(
    client: AuthenticatedClient, source: str, bundle_seq: int, **kw: Any
) -> CommittedBundleRowsResponse:
    return parsed(rows_page(client, source, bundle_seq, **kw), CommittedBundleRowsResponse)


def already(response: Response[Any]) -> PushSessionAlreadyCommitted:
    return parsed(response, PushSessionAlreadyCommitted)


def error(response: Response[Any], status: int, code: str) -> ErrorResponse:
    return expect_error(response, status, code)


def raw(
    server: ServerProcess,
    user: str,
    method: str,
    path: str,
    *,
    content: bytes | None = None,
    json: Any = None,
    source: str = "dev-a",
    params: dict[str, Any] | None = None,
) -> httpx.Response:
    """A request with hand-made body or query, authenticated as `user`."""
    headers = {"Authorization": f"Bearer {server.token(user)}", "Oversync-Source-ID": source}
    if content is not None:
        headers["Content-Type"] = "application/json"
    return httpx.request(
        method,
        f"{server.base_url}{path}",
        headers=headers,
        content=content,
        json=json,
        params=params,
        timeout=30.0,
    )


def user_insert(key: str | None = None, name: str = "Ada") -> PushRequestRow:
    key = key or str(uuid.uuid4())
    return row("users", "INSERT", key, {"id": key, "name": name, "email": f"{name}@example.com"})


def new_key() -> str:
    return str(uuid.uuid4())
