from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.snapshot_session import SnapshotSession
from ...models.snapshot_session_create_request import SnapshotSessionCreateRequest
from ...types import UNSET, Response, Unset


def _get_kwargs(
    *,
    body: SnapshotSessionCreateRequest | Unset = UNSET,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/sync/snapshot-sessions",
    }

    if not isinstance(body, Unset):
        _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | SnapshotSession | None:
    if response.status_code == 200:
        response_200 = SnapshotSession.from_dict(response.json())

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

    if response.status_code == 413:
        response_413 = ErrorResponse.from_dict(response.json())

        return response_413

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


def _build_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> Response[ErrorResponse | SnapshotSession]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: SnapshotSessionCreateRequest | Unset = UNSET,
    oversync_source_id: str,
) -> Response[ErrorResponse | SnapshotSession]:
    """Freeze the user's live rows into a snapshot session

     With no body (or `{}`), a keep-source snapshot. With `source_replacement`, the previous
    source is retired and the new one reserved, atomically with the snapshot. Unknown fields
    are rejected.

    Errors: 400 `snapshot_session_invalid`; 409 `scope_uninitialized`, `scope_initializing`,
    `source_replacement_invalid`, `source_retired` (structured); 413
    `snapshot_session_too_large` when the configured row or byte limit is exceeded; 429
    `too_many_snapshot_sessions` beyond the per-user cap of live sessions (a new session of a
    source replaces that source's older one); 500 `snapshot_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (SnapshotSessionCreateRequest | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | SnapshotSession]
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
    body: SnapshotSessionCreateRequest | Unset = UNSET,
    oversync_source_id: str,
) -> ErrorResponse | SnapshotSession | None:
    """Freeze the user's live rows into a snapshot session

     With no body (or `{}`), a keep-source snapshot. With `source_replacement`, the previous
    source is retired and the new one reserved, atomically with the snapshot. Unknown fields
    are rejected.

    Errors: 400 `snapshot_session_invalid`; 409 `scope_uninitialized`, `scope_initializing`,
    `source_replacement_invalid`, `source_retired` (structured); 413
    `snapshot_session_too_large` when the configured row or byte limit is exceeded; 429
    `too_many_snapshot_sessions` beyond the per-user cap of live sessions (a new session of a
    source replaces that source's older one); 500 `snapshot_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (SnapshotSessionCreateRequest | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | SnapshotSession
    """

    return sync_detailed(
        client=client,
        body=body,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: SnapshotSessionCreateRequest | Unset = UNSET,
    oversync_source_id: str,
) -> Response[ErrorResponse | SnapshotSession]:
    """Freeze the user's live rows into a snapshot session

     With no body (or `{}`), a keep-source snapshot. With `source_replacement`, the previous
    source is retired and the new one reserved, atomically with the snapshot. Unknown fields
    are rejected.

    Errors: 400 `snapshot_session_invalid`; 409 `scope_uninitialized`, `scope_initializing`,
    `source_replacement_invalid`, `source_retired` (structured); 413
    `snapshot_session_too_large` when the configured row or byte limit is exceeded; 429
    `too_many_snapshot_sessions` beyond the per-user cap of live sessions (a new session of a
    source replaces that source's older one); 500 `snapshot_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (SnapshotSessionCreateRequest | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | SnapshotSession]
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
    body: SnapshotSessionCreateRequest | Unset = UNSET,
    oversync_source_id: str,
) -> ErrorResponse | SnapshotSession | None:
    """Freeze the user's live rows into a snapshot session

     With no body (or `{}`), a keep-source snapshot. With `source_replacement`, the previous
    source is retired and the new one reserved, atomically with the snapshot. Unknown fields
    are rejected.

    Errors: 400 `snapshot_session_invalid`; 409 `scope_uninitialized`, `scope_initializing`,
    `source_replacement_invalid`, `source_retired` (structured); 413
    `snapshot_session_too_large` when the configured row or byte limit is exceeded; 429
    `too_many_snapshot_sessions` beyond the per-user cap of live sessions (a new session of a
    source replaces that source's older one); 500 `snapshot_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (SnapshotSessionCreateRequest | Unset):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | SnapshotSession
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
