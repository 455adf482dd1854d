from http import HTTPStatus
from typing import Any
from urllib.parse import quote

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.push_chunk_request import PushChunkRequest
from ...models.push_chunk_response import PushChunkResponse
from ...types import Response


def _get_kwargs(
    push_id: str,
    *,
    body: PushChunkRequest,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/sync/push-sessions/{push_id}/chunks".format(
            push_id=quote(str(push_id), safe=""),
        ),
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | PushChunkResponse | None:
    if response.status_code == 200:
        response_200 = PushChunkResponse.from_dict(response.json())

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

    if response.status_code == 409:
        response_409 = ErrorResponse.from_dict(response.json())

        return response_409

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
) -> Response[ErrorResponse | PushChunkResponse]:
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
    body: PushChunkRequest,
    oversync_source_id: str,
) -> Response[ErrorResponse | PushChunkResponse]:
    """Stage the next chunk of rows

     `start_row_ordinal` must equal the session's next expected ordinal (chunks are not
    idempotent: a re-sent chunk gets 409; restart the session instead). Rows are validated
    against the registered tables before the session is looked up.

    Errors: 400 `invalid_request` | `push_chunk_invalid`; 404 `push_session_not_found`;
    403 `push_session_forbidden`; 410 `push_session_expired`; 409 `push_chunk_out_of_order`,
    `initialization_stale`; 500 `push_chunk_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):
        body (PushChunkRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | PushChunkResponse]
    """

    kwargs = _get_kwargs(
        push_id=push_id,
        body=body,
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
    body: PushChunkRequest,
    oversync_source_id: str,
) -> ErrorResponse | PushChunkResponse | None:
    """Stage the next chunk of rows

     `start_row_ordinal` must equal the session's next expected ordinal (chunks are not
    idempotent: a re-sent chunk gets 409; restart the session instead). Rows are validated
    against the registered tables before the session is looked up.

    Errors: 400 `invalid_request` | `push_chunk_invalid`; 404 `push_session_not_found`;
    403 `push_session_forbidden`; 410 `push_session_expired`; 409 `push_chunk_out_of_order`,
    `initialization_stale`; 500 `push_chunk_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):
        body (PushChunkRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | PushChunkResponse
    """

    return sync_detailed(
        push_id=push_id,
        client=client,
        body=body,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    push_id: str,
    *,
    client: AuthenticatedClient | Client,
    body: PushChunkRequest,
    oversync_source_id: str,
) -> Response[ErrorResponse | PushChunkResponse]:
    """Stage the next chunk of rows

     `start_row_ordinal` must equal the session's next expected ordinal (chunks are not
    idempotent: a re-sent chunk gets 409; restart the session instead). Rows are validated
    against the registered tables before the session is looked up.

    Errors: 400 `invalid_request` | `push_chunk_invalid`; 404 `push_session_not_found`;
    403 `push_session_forbidden`; 410 `push_session_expired`; 409 `push_chunk_out_of_order`,
    `initialization_stale`; 500 `push_chunk_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):
        body (PushChunkRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | PushChunkResponse]
    """

    kwargs = _get_kwargs(
        push_id=push_id,
        body=body,
        oversync_source_id=oversync_source_id,
    )

    response = await client.get_async_httpx_client().request(**kwargs)

    return _build_response(client=client, response=response)


async def asyncio(
    push_id: str,
    *,
    client: AuthenticatedClient | Client,
    body: PushChunkRequest,
    oversync_source_id: str,
) -> ErrorResponse | PushChunkResponse | None:
    """Stage the next chunk of rows

     `start_row_ordinal` must equal the session's next expected ordinal (chunks are not
    idempotent: a re-sent chunk gets 409; restart the session instead). Rows are validated
    against the registered tables before the session is looked up.

    Errors: 400 `invalid_request` | `push_chunk_invalid`; 404 `push_session_not_found`;
    403 `push_session_forbidden`; 410 `push_session_expired`; 409 `push_chunk_out_of_order`,
    `initialization_stale`; 500 `push_chunk_failed`.

    Args:
        push_id (str):
        oversync_source_id (str):
        body (PushChunkRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | PushChunkResponse
    """

    return (
        await asyncio_detailed(
            push_id=push_id,
            client=client,
            body=body,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
