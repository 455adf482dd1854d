"""`/sync/watch` as typed events: a Server-Sent Events stream read with httpx-sse.

The generated `watch_bundles.sync()` would wait for the end of a stream that only ends when the
token expires or the server stops; these helpers yield each `event: bundle` as a
`BundleChangeEvent` as it arrives (heartbeat comments are skipped). Events are coalesced
wake-up hints, not one per bundle: on each one, pull. When the iterator ends (token expiry,
server shutdown) or raises a retryable `ApiError`, open a new watch with a fresh token.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, aconnect_sse, connect_sse

from oversync_client import AuthenticatedClient
from oversync_client.models import BundleChangeEvent
from oversync_client_helpers._errors import error_from_response

__all__ = ["awatch_bundles", "watch_bundles"]

WATCH_PATH = "/sync/watch"
# The server sends a heartbeat comment every 25 s by default: a read waiting much longer than
# that means the connection is dead (raise it for a server with a longer heartbeat).
DEFAULT_READ_TIMEOUT = 60.0


def _request(source_id: str, after_bundle_seq: int, read_timeout: float | None) -> dict[str, Any]:
    return {
        "params": {"after_bundle_seq": after_bundle_seq},
        "headers": {"Oversync-Source-ID": source_id},
        "timeout": httpx.Timeout(10.0, read=read_timeout),
    }


def _event(sse: ServerSentEvent) -> BundleChangeEvent | None:
    return BundleChangeEvent.from_dict(sse.json()) if sse.event == "bundle" else None


def watch_bundles(
    client: AuthenticatedClient,
    *,
    source_id: str,
    after_bundle_seq: int = 0,
    read_timeout: float | None = DEFAULT_READ_TIMEOUT,
) -> Iterator[BundleChangeEvent]:
    """Yield the bundle events of the client's user until the stream ends.

    Raises `ApiError` when the watch is refused (409 `scope_uninitialized` before the first
    connect, 429 `too_many_watch_streams`, 503 `bundle_change_watch_disabled`, ...) and
    `httpx.ReadTimeout` after `read_timeout` seconds without a byte (None: wait forever).
    """
    http = client.get_httpx_client()
    request = _request(source_id, after_bundle_seq, read_timeout)
    with connect_sse(http, "GET", WATCH_PATH, **request) as source:
        if source.response.status_code != 200:
            source.response.read()
            raise error_from_response(source.response)
        for sse in source.iter_sse():
            if (event := _event(sse)) is not None:
                yield event


async def awatch_bundles(
    client: AuthenticatedClient,
    *,
    source_id: str,
    after_bundle_seq: int = 0,
    read_timeout: float | None = DEFAULT_READ_TIMEOUT,
) -> AsyncIterator[BundleChangeEvent]:
    """The asyncio twin of `watch_bundles` (the client's async httpx client)."""
    http = client.get_async_httpx_client()
    request = _request(source_id, after_bundle_seq, read_timeout)
    async with aconnect_sse(http, "GET", WATCH_PATH, **request) as source:
        if source.response.status_code != 200:
            await source.response.aread()
            raise error_from_response(source.response)
        async for sse in source.aiter_sse():
            if (event := _event(sse)) is not None:
                yield event
