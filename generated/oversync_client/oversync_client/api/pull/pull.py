from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.pull_response import PullResponse
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    after_bundle_seq: int | Unset = 0,
    max_bundles: int | Unset = 1000,
    target_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    params: dict[str, Any] = {}

    params["after_bundle_seq"] = after_bundle_seq

    params["max_bundles"] = max_bundles

    params["target_bundle_seq"] = target_bundle_seq

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/sync/pull",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | PullResponse | None:
    if response.status_code == 200:
        response_200 = PullResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorResponse.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

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
) -> Response[ErrorResponse | PullResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    after_bundle_seq: int | Unset = 0,
    max_bundles: int | Unset = 1000,
    target_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> Response[ErrorResponse | PullResponse]:
    """Download complete committed bundles up to a stable ceiling

     Returns bundles with `after_bundle_seq < bundle_seq <= stable_bundle_seq`, ascending, never
    split. The first page freezes `stable_bundle_seq`; pass it back as `target_bundle_seq` on the
    following pages. Bundles of every source of the user are included, the caller's own too.

    Errors: 400 `invalid_request`; 409 `history_pruned`, `scope_uninitialized`,
    `scope_initializing`; 500 `pull_failed`.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        max_bundles (int | Unset):  Default: 1000.
        target_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | PullResponse]
    """

    kwargs = _get_kwargs(
        after_bundle_seq=after_bundle_seq,
        max_bundles=max_bundles,
        target_bundle_seq=target_bundle_seq,
        oversync_source_id=oversync_source_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    after_bundle_seq: int | Unset = 0,
    max_bundles: int | Unset = 1000,
    target_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> ErrorResponse | PullResponse | None:
    """Download complete committed bundles up to a stable ceiling

     Returns bundles with `after_bundle_seq < bundle_seq <= stable_bundle_seq`, ascending, never
    split. The first page freezes `stable_bundle_seq`; pass it back as `target_bundle_seq` on the
    following pages. Bundles of every source of the user are included, the caller's own too.

    Errors: 400 `invalid_request`; 409 `history_pruned`, `scope_uninitialized`,
    `scope_initializing`; 500 `pull_failed`.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        max_bundles (int | Unset):  Default: 1000.
        target_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | PullResponse
    """

    return sync_detailed(
        client=client,
        after_bundle_seq=after_bundle_seq,
        max_bundles=max_bundles,
        target_bundle_seq=target_bundle_seq,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    after_bundle_seq: int | Unset = 0,
    max_bundles: int | Unset = 1000,
    target_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> Response[ErrorResponse | PullResponse]:
    """Download complete committed bundles up to a stable ceiling

     Returns bundles with `after_bundle_seq < bundle_seq <= stable_bundle_seq`, ascending, never
    split. The first page freezes `stable_bundle_seq`; pass it back as `target_bundle_seq` on the
    following pages. Bundles of every source of the user are included, the caller's own too.

    Errors: 400 `invalid_request`; 409 `history_pruned`, `scope_uninitialized`,
    `scope_initializing`; 500 `pull_failed`.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        max_bundles (int | Unset):  Default: 1000.
        target_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | PullResponse]
    """

    kwargs = _get_kwargs(
        after_bundle_seq=after_bundle_seq,
        max_bundles=max_bundles,
        target_bundle_seq=target_bundle_seq,
        oversync_source_id=oversync_source_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    after_bundle_seq: int | Unset = 0,
    max_bundles: int | Unset = 1000,
    target_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> ErrorResponse | PullResponse | None:
    """Download complete committed bundles up to a stable ceiling

     Returns bundles with `after_bundle_seq < bundle_seq <= stable_bundle_seq`, ascending, never
    split. The first page freezes `stable_bundle_seq`; pass it back as `target_bundle_seq` on the
    following pages. Bundles of every source of the user are included, the caller's own too.

    Errors: 400 `invalid_request`; 409 `history_pruned`, `scope_uninitialized`,
    `scope_initializing`; 500 `pull_failed`.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        max_bundles (int | Unset):  Default: 1000.
        target_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | PullResponse
    """

    return (
        await asyncio_detailed(
            client=client,
            after_bundle_seq=after_bundle_seq,
            max_bundles=max_bundles,
            target_bundle_seq=target_bundle_seq,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
