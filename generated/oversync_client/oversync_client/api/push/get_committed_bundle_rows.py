from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.committed_bundle_rows_response import CommittedBundleRowsResponse
from ...models.error_response import ErrorResponse
from ...types import UNSET, Response, Unset


def _get_kwargs(
    bundle_seq: int,
    *,
    after_row_ordinal: int | Unset = UNSET,
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
        "url": "/sync/committed-bundles/{bundle_seq}/rows".format(
            bundle_seq=quote(str(bundle_seq), safe=""),
        ),
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> CommittedBundleRowsResponse | ErrorResponse | None:
    if response.status_code == 200:
        response_200 = CommittedBundleRowsResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorResponse.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

    if response.status_code == 404:
        response_404 = ErrorResponse.from_dict(response.json())

        return response_404

    if response.status_code == 409:
        response_409 = ErrorResponse.from_dict(response.json())

        return response_409

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
) -> Response[CommittedBundleRowsResponse | ErrorResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    bundle_seq: int,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = UNSET,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> Response[CommittedBundleRowsResponse | ErrorResponse]:
    """Page through the rows of one committed bundle

     Row ordinals are 0-based. Without `after_row_ordinal` the page starts at ordinal 0; with
    `after_row_ordinal=N` it starts at N+1. `next_row_ordinal` is the ordinal of the last
    returned row (or echoes the cursor when no row is returned); pass it back as
    `after_row_ordinal`. `max_rows` above the server maximum is capped.

    Errors: 400 `committed_bundle_chunk_invalid`; 409 `history_pruned`; 404
    `committed_bundle_not_found`; 500 `committed_bundle_rows_failed`.

    Args:
        bundle_seq (int):
        after_row_ordinal (int | Unset):
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CommittedBundleRowsResponse | ErrorResponse]
    """

    kwargs = _get_kwargs(
        bundle_seq=bundle_seq,
        after_row_ordinal=after_row_ordinal,
        max_rows=max_rows,
        oversync_source_id=oversync_source_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    bundle_seq: int,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = UNSET,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> CommittedBundleRowsResponse | ErrorResponse | None:
    """Page through the rows of one committed bundle

     Row ordinals are 0-based. Without `after_row_ordinal` the page starts at ordinal 0; with
    `after_row_ordinal=N` it starts at N+1. `next_row_ordinal` is the ordinal of the last
    returned row (or echoes the cursor when no row is returned); pass it back as
    `after_row_ordinal`. `max_rows` above the server maximum is capped.

    Errors: 400 `committed_bundle_chunk_invalid`; 409 `history_pruned`; 404
    `committed_bundle_not_found`; 500 `committed_bundle_rows_failed`.

    Args:
        bundle_seq (int):
        after_row_ordinal (int | Unset):
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CommittedBundleRowsResponse | ErrorResponse
    """

    return sync_detailed(
        bundle_seq=bundle_seq,
        client=client,
        after_row_ordinal=after_row_ordinal,
        max_rows=max_rows,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    bundle_seq: int,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = UNSET,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> Response[CommittedBundleRowsResponse | ErrorResponse]:
    """Page through the rows of one committed bundle

     Row ordinals are 0-based. Without `after_row_ordinal` the page starts at ordinal 0; with
    `after_row_ordinal=N` it starts at N+1. `next_row_ordinal` is the ordinal of the last
    returned row (or echoes the cursor when no row is returned); pass it back as
    `after_row_ordinal`. `max_rows` above the server maximum is capped.

    Errors: 400 `committed_bundle_chunk_invalid`; 409 `history_pruned`; 404
    `committed_bundle_not_found`; 500 `committed_bundle_rows_failed`.

    Args:
        bundle_seq (int):
        after_row_ordinal (int | Unset):
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[CommittedBundleRowsResponse | ErrorResponse]
    """

    kwargs = _get_kwargs(
        bundle_seq=bundle_seq,
        after_row_ordinal=after_row_ordinal,
        max_rows=max_rows,
        oversync_source_id=oversync_source_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    bundle_seq: int,
    *,
    client: AuthenticatedClient | Client,
    after_row_ordinal: int | Unset = UNSET,
    max_rows: int | Unset = UNSET,
    oversync_source_id: str,
) -> CommittedBundleRowsResponse | ErrorResponse | None:
    """Page through the rows of one committed bundle

     Row ordinals are 0-based. Without `after_row_ordinal` the page starts at ordinal 0; with
    `after_row_ordinal=N` it starts at N+1. `next_row_ordinal` is the ordinal of the last
    returned row (or echoes the cursor when no row is returned); pass it back as
    `after_row_ordinal`. `max_rows` above the server maximum is capped.

    Errors: 400 `committed_bundle_chunk_invalid`; 409 `history_pruned`; 404
    `committed_bundle_not_found`; 500 `committed_bundle_rows_failed`.

    Args:
        bundle_seq (int):
        after_row_ordinal (int | Unset):
        max_rows (int | Unset):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        CommittedBundleRowsResponse | ErrorResponse
    """

    return (
        await asyncio_detailed(
            bundle_seq=bundle_seq,
            client=client,
            after_row_ordinal=after_row_ordinal,
            max_rows=max_rows,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
