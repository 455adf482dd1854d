from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.connect_request import ConnectRequest
from ...models.connect_response import ConnectResponse
from ...models.error_response import ErrorResponse
from ...types import Response


def _get_kwargs(
    *,
    body: ConnectRequest,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/sync/connect",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ConnectResponse | ErrorResponse | None:
    if response.status_code == 200:
        response_200 = ConnectResponse.from_dict(response.json())

        return response_200

    if response.status_code == 400:
        response_400 = ErrorResponse.from_dict(response.json())

        return response_400

    if response.status_code == 401:
        response_401 = ErrorResponse.from_dict(response.json())

        return response_401

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
) -> Response[ConnectResponse | ErrorResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: ConnectRequest,
    oversync_source_id: str,
) -> Response[ConnectResponse | ErrorResponse]:
    """Attach this source to the user's scope

     Resolves how the device joins the user's scope: adopt remote data
    (`remote_authoritative`), seed it from local rows under a lease (`initialize_local`), start
    empty (`initialize_empty`), or wait for another device's lease (`retry_later`).

    Args:
        oversync_source_id (str):
        body (ConnectRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ConnectResponse | ErrorResponse]
    """

    kwargs = _get_kwargs(
        body=body,
        oversync_source_id=oversync_source_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    *,
    client: AuthenticatedClient | Client,
    body: ConnectRequest,
    oversync_source_id: str,
) -> ConnectResponse | ErrorResponse | None:
    """Attach this source to the user's scope

     Resolves how the device joins the user's scope: adopt remote data
    (`remote_authoritative`), seed it from local rows under a lease (`initialize_local`), start
    empty (`initialize_empty`), or wait for another device's lease (`retry_later`).

    Args:
        oversync_source_id (str):
        body (ConnectRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ConnectResponse | ErrorResponse
    """

    return sync_detailed(
        client=client,
        body=body,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: ConnectRequest,
    oversync_source_id: str,
) -> Response[ConnectResponse | ErrorResponse]:
    """Attach this source to the user's scope

     Resolves how the device joins the user's scope: adopt remote data
    (`remote_authoritative`), seed it from local rows under a lease (`initialize_local`), start
    empty (`initialize_empty`), or wait for another device's lease (`retry_later`).

    Args:
        oversync_source_id (str):
        body (ConnectRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ConnectResponse | ErrorResponse]
    """

    kwargs = _get_kwargs(
        body=body,
        oversync_source_id=oversync_source_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    *,
    client: AuthenticatedClient | Client,
    body: ConnectRequest,
    oversync_source_id: str,
) -> ConnectResponse | ErrorResponse | None:
    """Attach this source to the user's scope

     Resolves how the device joins the user's scope: adopt remote data
    (`remote_authoritative`), seed it from local rows under a lease (`initialize_local`), start
    empty (`initialize_empty`), or wait for another device's lease (`retry_later`).

    Args:
        oversync_source_id (str):
        body (ConnectRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ConnectResponse | ErrorResponse
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
