"""The only door to the server: the generated ``oversync_client``, wrapped.

Each method performs one HTTP exchange through ``oversync_client.api.<tag>.<op>.sync_detailed``
and returns the generated success model, or raises from the SDK's error tree:

* network failures, timeouts and 429/502/503/504 answers: :class:`TransportError` (retryable);
* other 5xx answers but 501: :class:`ServerFailureError` (a retryable ``TransportError``);
* other error answers: :class:`ServerRejectedError` with the body's ``error`` code and details;
* success answers that do not parse: :class:`ProtocolError`.

:func:`with_retry` retries retryable errors with backoff. No ``httpx`` exception leaves here.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Generator, Mapping
from typing import Any, TypeVar

import httpx
import orjson

from oversqlite._config import RetryPolicy
from oversqlite._control import Control, Phase
from oversqlite._errors import (
    ProtocolError,
    RetryExhaustedError,
    ServerFailureError,
    ServerRejectedError,
    TransportError,
)
from oversync_client import AuthenticatedClient
from oversync_client.api.discovery import get_capabilities
from oversync_client.api.lifecycle import connect
from oversync_client.api.pull import pull
from oversync_client.api.push import (
    commit_push_session,
    create_push_session,
    get_committed_bundle_rows,
    upload_push_chunk,
)
from oversync_client.api.snapshot import (
    create_snapshot_session,
    get_snapshot_chunk,
)
from oversync_client.models import (
    CapabilitiesResponse,
    CommittedBundleRowsResponse,
    ConnectRequest,
    ConnectResponse,
    ErrorResponse,
    PullResponse,
    PushChunkRequest,
    PushChunkResponse,
    PushCommitResponse,
    PushRequestRow,
    PushSessionAlreadyCommitted,
    PushSessionCreateRequest,
    PushSessionStaging,
    SnapshotChunkResponse,
    SnapshotSession,
    SnapshotSessionCreateRequest,
    SourceReplacement,
    SourceReplacementReason,
)
from oversync_client.types import UNSET, Response

__all__ = ["RETRYABLE_STATUSES", "Api", "TokenSource", "with_retry"]

logger = logging.getLogger("oversqlite")

RETRYABLE_STATUSES = frozenset({429, 502, 503, 504})
# Session deletes are best effort (the server expires sessions): never wait long for one.
BEST_EFFORT_TIMEOUT = 5.0
TokenSource = str | Callable[[], str]
T = TypeVar("T")


class _BearerAuth(httpx.Auth):
    """Asks the token source for every request, so expiring tokens are refreshed."""

    def __init__(self, token: TokenSource) -> None:
        self._token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        token = self._token() if callable(self._token) else self._token
        request.headers["Authorization"] = f"Bearer {token}"
        yield request


def _retry_after(headers: Mapping[str, str]) -> float | None:
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: fall back to the policy's backoff


def _error_body(parsed: object, content: bytes) -> tuple[str, str, dict[str, Any]]:
    if isinstance(parsed, ErrorResponse):
        return parsed.error, parsed.message, parsed.to_dict()
    try:
        body = json.loads(content)
    except ValueError:
        body = None
    if isinstance(body, dict):
        return str(body.get("error") or "http_error"), str(body.get("message") or ""), body
    return "http_error", content[:200].decode("utf-8", "replace"), {}


class Api:
    """Typed calls to the sync server for one client (thread-safe)."""

    def __init__(
        self,
        *,
        base_url: str,
        token: TokenSource,
        timeout: float,
        transport: httpx.BaseTransport | None = None,
        control: Control | None = None,
    ) -> None:
        self._last = threading.local()
        self._control = control or Control()
        self._planned_rows: dict[str, int] = {}
        http = httpx.Client(
            base_url=base_url,
            auth=_BearerAuth(token),
            timeout=timeout,
            transport=transport,
            event_hooks={"response": [self._remember]},
        )
        # The Authorization header comes from _BearerAuth; the generated client's token is unused.
        self._client = AuthenticatedClient(base_url=base_url, token="").set_httpx_client(http)
        self._http = http

    def close(self) -> None:
        self._http.close()

    @property
    def http(self) -> httpx.Client:
        """The underlying HTTP client (base URL, auth, transport), for streams such as watch."""
        return self._http

    def _remember(self, response: httpx.Response) -> None:
        # Kept for answers whose body the generated parser cannot read (it raises on them).
        self._last.response = response

    def _call(
        self,
        operation: str,
        send: Callable[[AuthenticatedClient], Response[Any]],
        expect: type[T] | tuple[type, ...],
    ) -> T:
        self._control.check()  # a safe point: nothing is in flight yet
        self._last.response = None
        try:
            response = send(self._client)
            status, parsed = int(response.status_code), response.parsed
            content, headers = response.content, response.headers
        except httpx.HTTPError as exc:
            raise TransportError(operation, f"{type(exc).__name__}: {exc}") from exc
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raw: httpx.Response | None = getattr(self._last, "response", None)
            if raw is None:
                raise ProtocolError(f"{operation}: unreadable answer: {exc}") from exc
            status, parsed, content, headers = raw.status_code, None, raw.content, raw.headers
            if 200 <= status < 300:
                raise ProtocolError(f"{operation}: malformed {status} answer: {exc}") from exc
        if 200 <= status < 300:
            if isinstance(parsed, expect):
                return parsed  # type: ignore[return-value]
            raise ProtocolError(f"{operation}: unexpected {status} answer {content[:200]!r}")
        code, message, details = _error_body(parsed, content)
        if status in RETRYABLE_STATUSES:
            raise TransportError(
                operation, f"HTTP {status} {code}: {message}", status, _retry_after(headers)
            )
        if status >= 500 and status != 501:  # 501: the server lacks the operation (definitive)
            raise ServerFailureError(operation, f"HTTP {status} {code}: {message}", status)
        raise ServerRejectedError(operation, status, code, message, details)

    # ------------------------------------------------------------------ discovery / lifecycle

    def capabilities(self, source_id: str) -> CapabilitiesResponse:
        return self._call(
            "capabilities",
            lambda c: get_capabilities.sync_detailed(client=c, oversync_source_id=source_id),
            CapabilitiesResponse,
        )

    def connect(self, source_id: str, *, has_local_pending_rows: bool) -> ConnectResponse:
        body = ConnectRequest(has_local_pending_rows=has_local_pending_rows)
        return self._call(
            "connect",
            lambda c: connect.sync_detailed(client=c, body=body, oversync_source_id=source_id),
            ConnectResponse,
        )

    # ------------------------------------------------------------------ push

    def create_push_session(
        self,
        source_id: str,
        *,
        source_bundle_id: int,
        planned_row_count: int,
        initialization_id: str,
    ) -> PushSessionStaging | PushSessionAlreadyCommitted:
        body = PushSessionCreateRequest(
            source_bundle_id=source_bundle_id,
            planned_row_count=planned_row_count,
            initialization_id=initialization_id or UNSET,
        )
        created: PushSessionStaging | PushSessionAlreadyCommitted = self._call(
            "create_push_session",
            lambda c: create_push_session.sync_detailed(
                client=c, body=body, oversync_source_id=source_id
            ),
            (PushSessionStaging, PushSessionAlreadyCommitted),
        )
        push_id = getattr(created, "push_id", None)
        if isinstance(push_id, str):
            self._planned_rows = {push_id: planned_row_count}  # for the progress of its chunks
        return created

    def upload_chunk(
        self, source_id: str, push_id: str, *, start: int, rows: list[PushRequestRow]
    ) -> PushChunkResponse:
        body = PushChunkRequest(start_row_ordinal=start, rows=rows)
        answer: PushChunkResponse = self._call(
            "upload_push_chunk",
            lambda c: upload_push_chunk.sync_detailed(
                push_id, client=c, body=body, oversync_source_id=source_id
            ),
            PushChunkResponse,
        )
        self._control.report(Phase.PUSH, start + len(rows), self._planned_rows.get(push_id))
        return answer

    def commit(self, source_id: str, push_id: str) -> PushCommitResponse:
        return self._call(
            "commit_push_session",
            lambda c: commit_push_session.sync_detailed(
                push_id, client=c, oversync_source_id=source_id
            ),
            PushCommitResponse,
        )

    def committed_rows(
        self, source_id: str, bundle_seq: int, *, after: int | None, max_rows: int
    ) -> CommittedBundleRowsResponse:
        return self._call(
            "get_committed_bundle_rows",
            lambda c: get_committed_bundle_rows.sync_detailed(
                bundle_seq,
                client=c,
                after_row_ordinal=UNSET if after is None else after,
                max_rows=max_rows,
                oversync_source_id=source_id,
            ),
            CommittedBundleRowsResponse,
        )

    def delete_push_session(self, source_id: str, push_id: str) -> None:
        """Best effort: failures are logged and ignored (the session expires anyway)."""
        self._best_effort("delete_push_session", f"/sync/push-sessions/{push_id}", source_id)

    # ------------------------------------------------------------------ pull / snapshot

    def pull(
        self, source_id: str, *, after: int, max_bundles: int, target: int | None
    ) -> PullResponse:
        return self._call(
            "pull",
            lambda c: pull.sync_detailed(
                client=c,
                after_bundle_seq=after,
                max_bundles=max_bundles,
                target_bundle_seq=UNSET if target is None else target,
                oversync_source_id=source_id,
            ),
            PullResponse,
        )

    def create_snapshot(
        self, source_id: str, *, replacement: tuple[str, str] | None = None
    ) -> SnapshotSession:
        """Create a snapshot session; ``replacement`` = (new source id, reason) rotates."""
        body: SnapshotSessionCreateRequest | Any = UNSET
        if replacement is not None:
            new_source, reason = replacement
            body = SnapshotSessionCreateRequest(
                source_replacement=SourceReplacement(
                    previous_source_id=source_id,
                    new_source_id=new_source,
                    reason=SourceReplacementReason(reason),
                )
            )
        return self._call(
            "create_snapshot_session",
            lambda c: create_snapshot_session.sync_detailed(
                client=c, body=body, oversync_source_id=source_id
            ),
            SnapshotSession,
        )

    def snapshot_chunk(
        self, source_id: str, snapshot_id: str, *, after: int, max_rows: int
    ) -> SnapshotChunkResponse:
        return self._call(
            "get_snapshot_chunk",
            lambda c: get_snapshot_chunk.sync_detailed(
                snapshot_id,
                client=c,
                after_row_ordinal=after,
                max_rows=max_rows,
                oversync_source_id=source_id,
            ),
            SnapshotChunkResponse,
        )

    def snapshot_chunk_json(
        self, source_id: str, snapshot_id: str, *, after: int, max_rows: int
    ) -> dict[str, Any]:
        """One snapshot page as plain JSON (orjson), skipping the generated models: hydrating
        large scopes spends most of its client time here (callers validate the fields)."""
        self._control.check()
        operation = "get_snapshot_chunk"
        try:
            response = self._http.get(
                f"/sync/snapshot-sessions/{snapshot_id}",
                params={"after_row_ordinal": after, "max_rows": max_rows},
                headers={"Oversync-Source-ID": source_id},
            )
        except httpx.HTTPError as exc:
            raise TransportError(operation, f"{type(exc).__name__}: {exc}") from exc
        status, content = response.status_code, response.content
        if 200 <= status < 300:
            try:
                body = orjson.loads(content)
            except orjson.JSONDecodeError as exc:
                raise ProtocolError(f"{operation}: malformed {status} answer: {exc}") from exc
            if not isinstance(body, dict):
                raise ProtocolError(f"{operation}: unexpected {status} answer {content[:200]!r}")
            return body
        code, message, details = _error_body(None, content)
        if status in RETRYABLE_STATUSES:
            raise TransportError(
                operation,
                f"HTTP {status} {code}: {message}",
                status,
                _retry_after(response.headers),
            )
        raise ServerRejectedError(operation, status, code, message, details)

    def delete_snapshot(self, source_id: str, snapshot_id: str) -> None:
        """Best effort: failures are logged and ignored (the session expires anyway)."""
        self._best_effort(
            "delete_snapshot_session", f"/sync/snapshot-sessions/{snapshot_id}", source_id
        )

    def _best_effort(self, operation: str, path: str, source_id: str) -> None:
        """A DELETE with a short timeout, skipped while the operation is being cancelled or
        interrupted (Ctrl-C must not wait on the network)."""
        if self._control.cancelling:
            logger.debug("%s skipped: the operation is being cancelled", operation)
            return
        try:
            self._http.delete(
                path,
                headers={"Oversync-Source-ID": source_id},
                timeout=min(BEST_EFFORT_TIMEOUT, self._http.timeout.read or BEST_EFFORT_TIMEOUT),
            )
        except httpx.HTTPError as exc:
            logger.debug("%s failed (ignored): %s", operation, exc)


def _delay(policy: RetryPolicy, attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, policy.max_backoff)
    backoff = min(policy.initial_backoff * 2.0 ** (attempt - 1), policy.max_backoff)
    return max(0.0, backoff * (1 + random.uniform(-policy.jitter, policy.jitter)))


def with_retry(
    policy: RetryPolicy,
    operation: str,
    attempt: Callable[[], T],
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``attempt``, retrying :class:`TransportError` with backoff up to the policy's limit.

    Raises :class:`RetryExhaustedError` (chained to the last error) when the attempts run out.
    """
    tries = 0
    while True:
        tries += 1
        try:
            return attempt()
        except RetryExhaustedError:
            raise
        except TransportError as exc:
            if tries >= policy.max_attempts:
                raise RetryExhaustedError(operation, tries, exc) from exc
            delay = _delay(policy, tries, exc.retry_after)
            logger.debug("%s: retrying in %.3fs after %s", operation, delay, exc)
            sleep(delay)
