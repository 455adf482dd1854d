from http import HTTPStatus
from typing import Any, cast
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...types import Response


def _get_kwargs(
    push_id: str,
    *,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    _kwargs: dict[str, Any] = {
        "method": "delete",
        "url": "/sync/push-sessions/{push_id}".format(
            push_id=quote(str(push_id), safe=""),
        ),
    }

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Any | ErrorResponse | None:
    if response.status_code == 204:
        response_204 = cast(Any, None)
        return response_204

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


def _build_response(*, client: AuthenticatedClient | Client, response: httpx.Response) -> Response[Any | ErrorResponse]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    push_id: str,
    *,
    client: AuthenticatedClient | Client,
    oversync_source_id: str,
) -> Response[Any | ErrorResponse]:
    """Discard an uncommitted push session

     Errors: 404 `push_session_not_found`; 403 `push_session_forbidden`;
    410 `push_session_expired`; 500 `push_session_delete_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorResponse]
    """

    kwargs = _get_kwargs(
        push_id=push_id,
        oversync_source_id=oversync_source_id,
    )

    response = client.get_httpx_client().request(
        **kwargs,
    )

    return _build_response(client=client, response=response)


def sync(
    push_id: str,
    *,
    client: AuthenticatedClient | Client,
    oversync_source_id: str,
) -> Any | ErrorResponse | None:
    """Discard an uncommitted push session

     Errors: 404 `push_session_not_found`; 403 `push_session_forbidden`;
    410 `push_session_expired`; 500 `push_session_delete_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorResponse
    """

    return sync_detailed(
        push_id=push_id,
        client=client,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    push_id: str,
    *,
    client: AuthenticatedClient | Client,
    oversync_source_id: str,
) -> Response[Any | ErrorResponse]:
    """Discard an uncommitted push session

     Errors: 404 `push_session_not_found`; 403 `push_session_forbidden`;
    410 `push_session_expired`; 500 `push_session_delete_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[Any | ErrorResponse]
    """

    kwargs = _get_kwargs(
        push_id=push_id,
        oversync_source_id=oversync_source_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    push_id: str,
    *,
    client: AuthenticatedClient | Client,
    oversync_source_id: str,
) -> Any | ErrorResponse | None:
    """Discard an uncommitted push session

     Errors: 404 `push_session_not_found`; 403 `push_session_forbidden`;
    410 `push_session_expired`; 500 `push_session_delete_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Any | ErrorResponse
    """

    return (
        await asyncio_detailed(
            push_id=push_id,
            client=client,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
