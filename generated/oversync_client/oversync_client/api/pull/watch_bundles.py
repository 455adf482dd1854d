from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    after_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    params: dict[str, Any] = {}

    params["after_bundle_seq"] = after_bundle_seq

    params = {k: v for k, v in params.items() if v is not UNSET and v is not None}

    _kwargs: dict[str, Any] = {
        "method": "get",
        "url": "/sync/watch",
        "params": params,
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> ErrorResponse | str | None:
    if response.status_code == 200:
        response_200 = response.text
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

    if response.status_code == 409:
        response_409 = ErrorResponse.from_dict(response.json())

        return response_409

    if response.status_code == 429:
        response_429 = ErrorResponse.from_dict(response.json())

        return response_429

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[ErrorResponse | str]:
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
    oversync_source_id: str,
) -> Response[ErrorResponse | str]:
    """Server-sent wake-ups when new bundles commit

     A `text/event-stream` of `event: bundle` events whose `data` is a `BundleChangeEvent`, and
    `: heartbeat` comments. Events are coalesced hints, not one per bundle: on each event, pull.
    If the user's latest bundle is past `after_bundle_seq` when the stream opens, one catch-up
    event is sent at once.

    Errors: 400 `invalid_request`; 403 `bundle_change_watch_forbidden`; 409
    `scope_uninitialized`, `scope_initializing`; 429 `too_many_watch_streams` (per-user or
    per-server cap); 503 `bundle_change_watch_disabled`; 500 `bundle_change_watch_failed`. The
    stream ends when the bearer token expires, and when the server shuts down.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | str]
    """

    kwargs = _get_kwargs(
        after_bundle_seq=after_bundle_seq,
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
    oversync_source_id: str,
) -> ErrorResponse | str | None:
    """Server-sent wake-ups when new bundles commit

     A `text/event-stream` of `event: bundle` events whose `data` is a `BundleChangeEvent`, and
    `: heartbeat` comments. Events are coalesced hints, not one per bundle: on each event, pull.
    If the user's latest bundle is past `after_bundle_seq` when the stream opens, one catch-up
    event is sent at once.

    Errors: 400 `invalid_request`; 403 `bundle_change_watch_forbidden`; 409
    `scope_uninitialized`, `scope_initializing`; 429 `too_many_watch_streams` (per-user or
    per-server cap); 503 `bundle_change_watch_disabled`; 500 `bundle_change_watch_failed`. The
    stream ends when the bearer token expires, and when the server shuts down.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | str
    """

    return sync_detailed(
        client=client,
        after_bundle_seq=after_bundle_seq,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    after_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> Response[ErrorResponse | str]:
    """Server-sent wake-ups when new bundles commit

     A `text/event-stream` of `event: bundle` events whose `data` is a `BundleChangeEvent`, and
    `: heartbeat` comments. Events are coalesced hints, not one per bundle: on each event, pull.
    If the user's latest bundle is past `after_bundle_seq` when the stream opens, one catch-up
    event is sent at once.

    Errors: 400 `invalid_request`; 403 `bundle_change_watch_forbidden`; 409
    `scope_uninitialized`, `scope_initializing`; 429 `too_many_watch_streams` (per-user or
    per-server cap); 503 `bundle_change_watch_disabled`; 500 `bundle_change_watch_failed`. The
    stream ends when the bearer token expires, and when the server shuts down.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | str]
    """

    kwargs = _get_kwargs(
        after_bundle_seq=after_bundle_seq,
        oversync_source_id=oversync_source_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    after_bundle_seq: int | Unset = 0,
    oversync_source_id: str,
) -> ErrorResponse | str | None:
    """Server-sent wake-ups when new bundles commit

     A `text/event-stream` of `event: bundle` events whose `data` is a `BundleChangeEvent`, and
    `: heartbeat` comments. Events are coalesced hints, not one per bundle: on each event, pull.
    If the user's latest bundle is past `after_bundle_seq` when the stream opens, one catch-up
    event is sent at once.

    Errors: 400 `invalid_request`; 403 `bundle_change_watch_forbidden`; 409
    `scope_uninitialized`, `scope_initializing`; 429 `too_many_watch_streams` (per-user or
    per-server cap); 503 `bundle_change_watch_disabled`; 500 `bundle_change_watch_failed`. The
    stream ends when the bearer token expires, and when the server shuts down.

    Args:
        after_bundle_seq (int | Unset):  Default: 0.
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | str
    """

    return (
        await asyncio_detailed(
            client=client,
            after_bundle_seq=after_bundle_seq,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
