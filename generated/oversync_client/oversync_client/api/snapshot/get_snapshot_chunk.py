from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.snapshot_chunk_response import SnapshotChunkResponse
from ...types import UNSET, Response, Unset


def _get_kwargs(
    snapshot_id: str,
    *,
    after_row_ordinal: int | Unset = 0,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    params: dict[str, Any] = {}

    params["after_row_ordinal"] = after_row_ordinal

    params["max_rows"] = max_rows

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/sync/snapshot-sessions/{snapshot_id}".format(
            snapshot_id=quote(str(snapshot_id), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | SnapshotChunkResponse | None:
    if response.status_code == 200:
        response_200 = SnapshotChunkResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorResponse.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

    if response.status_code == 403:
        response_403 = ErrorResponse.from_dict(response.json())

        return response_403

    if response.status_code == 404:
        response_404 = ErrorResponse.from_dict(response.json())

        return response_404

    if response.status_code == 410:
        response_410 = ErrorResponse.from_dict(response.json())

        return response_410

    if response.status_code == 500:
        response_500 = ErrorResponse.from_dict(response.json())

        return response_500

    if response.status_code == 503:
        response_503 = ErrorResponse.from_dict(response.json())

        return response_503

    if client.raise_on_unexpected_status:
        raise errors.UnexpectedStatus(response.status_code, response.content)
    else:
        return None


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorResponse | SnapshotChunkResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    snapshot_id: str,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = 0,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> Response[ErrorResponse | SnapshotChunkResponse]:
    """Page through a snapshot session

     Snapshot ordinals are 1-based: `after_row_ordinal=0` starts at the beginning and
    `next_row_ordinal = after_row_ordinal + len(rows)`. Reading does not extend the TTL.

    Errors: 400 `snapshot_chunk_invalid`; 404 `snapshot_session_not_found`; 403
    `snapshot_session_forbidden`; 410 `snapshot_session_expired`; 500 `snapshot_chunk_failed`.

    Args:
        snapshot_id (str):
        after_row_ordinal (int | Unset):  Default: 0.
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | SnapshotChunkResponse]
    """

    kwargs = _get_kwargs(
        snapshot_id=snapshot_id,
        after_row_ordinal=after_row_ordinal,
        max_rows=max_rows,
        oversync_source_id=oversync_source_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    snapshot_id: str,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = 0,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> ErrorResponse | SnapshotChunkResponse | None:
    """Page through a snapshot session

     Snapshot ordinals are 1-based: `after_row_ordinal=0` starts at the beginning and
    `next_row_ordinal = after_row_ordinal + len(rows)`. Reading does not extend the TTL.

    Errors: 400 `snapshot_chunk_invalid`; 404 `snapshot_session_not_found`; 403
    `snapshot_session_forbidden`; 410 `snapshot_session_expired`; 500 `snapshot_chunk_failed`.

    Args:
        snapshot_id (str):
        after_row_ordinal (int | Unset):  Default: 0.
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | SnapshotChunkResponse
    """

    return sync_detailed(
        snapshot_id=snapshot_id,
        client=client,
        after_row_ordinal=after_row_ordinal,
        max_rows=max_rows,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    snapshot_id: str,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = 0,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> Response[ErrorResponse | SnapshotChunkResponse]:
    """Page through a snapshot session

     Snapshot ordinals are 1-based: `after_row_ordinal=0` starts at the beginning and
    `next_row_ordinal = after_row_ordinal + len(rows)`. Reading does not extend the TTL.

    Errors: 400 `snapshot_chunk_invalid`; 404 `snapshot_session_not_found`; 403
    `snapshot_session_forbidden`; 410 `snapshot_session_expired`; 500 `snapshot_chunk_failed`.

    Args:
        snapshot_id (str):
        after_row_ordinal (int | Unset):  Default: 0.
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | SnapshotChunkResponse]
    """

    kwargs = _get_kwargs(
        snapshot_id=snapshot_id,
        after_row_ordinal=after_row_ordinal,
        max_rows=max_rows,
        oversync_source_id=oversync_source_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    snapshot_id: str,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = 0,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> ErrorResponse | SnapshotChunkResponse | None:
    """Page through a snapshot session

     Snapshot ordinals are 1-based: `after_row_ordinal=0` starts at the beginning and
    `next_row_ordinal = after_row_ordinal + len(rows)`. Reading does not extend the TTL.

    Errors: 400 `snapshot_chunk_invalid`; 404 `snapshot_session_not_found`; 403
    `snapshot_session_forbidden`; 410 `snapshot_session_expired`; 500 `snapshot_chunk_failed`.

    Args:
        snapshot_id (str):
        after_row_ordinal (int | Unset):  Default: 0.
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | SnapshotChunkResponse
    """

    return (
        await asyncio_detailed(
            snapshot_id=snapshot_id,
            client=client,
            after_row_ordinal=after_row_ordinal,
            max_rows=max_rows,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
