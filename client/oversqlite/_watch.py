"""The ``/sync/watch`` Server-Sent Events stream: wake-ups when the user's scope gets a bundle.

Events are hints only (protocol.md §7): they are coalesced, may be skipped, and never change
SQLite; every wake-up makes the background loop pull to the stable sequence. The server sends
one catch-up event right after subscribing when bundles exist past ``after_bundle_seq``, so a
reconnect that missed events still wakes the loop. Heartbeats are SSE comments (ignored).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
from httpx_sse import SSEError, connect_sse

from oversqlite._errors import ProtocolError, ServerRejectedError, TransportError
from oversqlite._transport import RETRYABLE_STATUSES

__all__ = ["WATCH_READ_TIMEOUT", "WatchUnavailableError", "watch_events"]

logger = logging.getLogger("oversqlite")

# Longer than the server's 25 s heartbeat: a silent stream this long is dead.
WATCH_READ_TIMEOUT = 60.0
# Answers that mean watch will not work for this client: fall back to polling for good.
_UNAVAILABLE = ("bundle_change_watch_forbidden", "bundle_change_watch_disabled")


class WatchUnavailableError(ServerRejectedError):
    """The server refuses watch for this client (forbidden or disabled): poll instead."""


def _error(response: httpx.Response) -> Exception:
    response.read()
    try:
        body = json.loads(response.content)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = str(body.get("error") or "http_error")
    message = str(body.get("message") or "")
    if code in _UNAVAILABLE:
        return WatchUnavailableError("watch", response.status_code, code, message, body)
    if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
        return TransportError("watch", f"HTTP {response.status_code} {code}: {message}")
    return ServerRejectedError("watch", response.status_code, code, message, body)


@contextmanager
def watch_events(
    http: httpx.Client,
    source_id: str,
    after_bundle_seq: int,
    *,
    on_open: Callable[[httpx.Response], None] = lambda _: None,
) -> Iterator[Iterator[int]]:
    """Open the stream; yields an iterator of announced ``bundle_seq`` values.

    ``on_open`` receives the streaming response (closing it from another thread ends the
    stream). Raises :class:`WatchUnavailableError`, :class:`TransportError` (retry later) or
    :class:`ServerRejectedError` when the stream cannot be opened, and :class:`TransportError`
    when it breaks.
    """
    timeout = httpx.Timeout(http.timeout.connect or 10.0, read=WATCH_READ_TIMEOUT)
    try:
        with connect_sse(
            http,
            "GET",
            "/sync/watch",
            params={"after_bundle_seq": after_bundle_seq},
            headers={"Oversync-Source-ID": source_id},
            timeout=timeout,
        ) as source:
            response = source.response
            if response.status_code != 200:
                raise _error(response)
            on_open(response)
            yield _bundles(source.iter_sse())
    except (httpx.HTTPError, SSEError) as exc:
        raise TransportError("watch", f"{type(exc).__name__}: {exc}") from exc


def _bundles(events: Iterator[object]) -> Iterator[int]:
    for event in events:
        if getattr(event, "event", "") != "bundle":
            continue
        try:
            data = json.loads(getattr(event, "data", ""))
            seq = int(data["bundle_seq"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ProtocolError(f"watch: malformed bundle event {event!r}") from exc
        if seq <= 0:
            raise ProtocolError(f"watch: bundle event with bundle_seq {seq}")
        yield seq
