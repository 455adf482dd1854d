from http import HTTPStatus
from typing import Any

import httpx

from ... import errors
from ...client import AuthenticatedClient, Client
from ...models.error_response import ErrorResponse
from ...models.push_session_already_committed import PushSessionAlreadyCommitted
from ...models.push_session_create_request import PushSessionCreateRequest
from ...models.push_session_staging import PushSessionStaging
from ...types import Response


def _get_kwargs(
    *,
    body: PushSessionCreateRequest,
    oversync_source_id: str,
) -> dict[str, Any]:
    headers: dict[str, Any] = {}
    headers["Oversync-Source-ID"] = oversync_source_id

    _kwargs: dict[str, Any] = {
        "method": "post",
        "url": "/sync/push-sessions",
    }

    _kwargs["json"] = body.to_dict()

    headers["Content-Type"] = "application/json"

    _kwargs["headers"] = headers
    return _kwargs


def _parse_response(
    *, client: AuthenticatedClient | Client, response: httpx.Response
) -> ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging | None:
    if response.status_code == 200:

        def _parse_response_200(data: object) -> PushSessionAlreadyCommitted | PushSessionStaging:
            try:
                if not isinstance(data, dict):
                    raise TypeError()
                componentsschemas_push_session_create_response_type_0 = PushSessionStaging.from_dict(data)

                return componentsschemas_push_session_create_response_type_0
            except (TypeError, ValueError, AttributeError, KeyError):
                pass
            if not isinstance(data, dict):
                raise TypeError()
            componentsschemas_push_session_create_response_type_1 = PushSessionAlreadyCommitted.from_dict(data)

            return componentsschemas_push_session_create_response_type_1

        response_200 = _parse_response_200(response.json())

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
) -> Response[ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging]:
    return Response(
        status_code=HTTPStatus(response.status_code),
        content=response.content,
        headers=response.headers,
        parsed=_parse_response(client=client, response=response),
    )


def sync_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: PushSessionCreateRequest,
    oversync_source_id: str,
) -> Response[ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging]:
    """Create or restart a staging push session

     Starts staging the bundle `source_bundle_id` of this source. If that tuple is already
    committed (and retained), answers `already_committed` with the committed bundle's metadata
    instead. Re-creating an uncommitted tuple replaces its staging session.

    Errors: 400 `invalid_request` | `push_session_invalid`; 409 `scope_uninitialized`,
    `initialization_stale`, `history_pruned`, `source_sequence_out_of_order`, `source_retired`;
    410 `initialization_expired`; 500 `push_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (PushSessionCreateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging]
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
    body: PushSessionCreateRequest,
    oversync_source_id: str,
) -> ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging | None:
    """Create or restart a staging push session

     Starts staging the bundle `source_bundle_id` of this source. If that tuple is already
    committed (and retained), answers `already_committed` with the committed bundle's metadata
    instead. Re-creating an uncommitted tuple replaces its staging session.

    Errors: 400 `invalid_request` | `push_session_invalid`; 409 `scope_uninitialized`,
    `initialization_stale`, `history_pruned`, `source_sequence_out_of_order`, `source_retired`;
    410 `initialization_expired`; 500 `push_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (PushSessionCreateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging
    """

    return sync_detailed(
        client=client,
        body=body,
        oversync_source_id=oversync_source_id,
    ).parsed


async def asyncio_detailed(
    *,
    client: AuthenticatedClient | Client,
    body: PushSessionCreateRequest,
    oversync_source_id: str,
) -> Response[ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging]:
    """Create or restart a staging push session

     Starts staging the bundle `source_bundle_id` of this source. If that tuple is already
    committed (and retained), answers `already_committed` with the committed bundle's metadata
    instead. Re-creating an uncommitted tuple replaces its staging session.

    Errors: 400 `invalid_request` | `push_session_invalid`; 409 `scope_uninitialized`,
    `initialization_stale`, `history_pruned`, `source_sequence_out_of_order`, `source_retired`;
    410 `initialization_expired`; 500 `push_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (PushSessionCreateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        Response[ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging]
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
    body: PushSessionCreateRequest,
    oversync_source_id: str,
) -> ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging | None:
    """Create or restart a staging push session

     Starts staging the bundle `source_bundle_id` of this source. If that tuple is already
    committed (and retained), answers `already_committed` with the committed bundle's metadata
    instead. Re-creating an uncommitted tuple replaces its staging session.

    Errors: 400 `invalid_request` | `push_session_invalid`; 409 `scope_uninitialized`,
    `initialization_stale`, `history_pruned`, `source_sequence_out_of_order`, `source_retired`;
    410 `initialization_expired`; 500 `push_session_create_failed`.

    Args:
        oversync_source_id (str):
        body (PushSessionCreateRequest):

    Raises:
        errors.UnexpectedStatus: If the server returns an undocumented status code and Client.raise_on_unexpected_status is True.
        httpx.TimeoutException: If the request takes longer than Client.timeout.

    Returns:
        ErrorResponse | PushSessionAlreadyCommitted | PushSessionStaging
    """

    return (
        await asyncio_detailed(
            client=client,
            body=body,
            oversync_source_id=oversync_source_id,
        )
    ).parsed
