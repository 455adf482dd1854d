"""Hand-written helpers for the generated typed client `oversync_client`.

    from oversync_client_helpers import ApiError, unwrap, watch_bundles

    staging = unwrap(create_push_session.sync_detailed(client=client, body=..., ...))
    for event in watch_bundles(client, source_id="device-1"):
        ...  # pull up to event.bundle_seq

`unwrap` turns a generated call's `ErrorResponse | X` union into `X` or raises `ApiError`
(HTTP status, the protocol's `error` code, its message); `watch_bundles` / `awatch_bundles` read
the `/sync/watch` Server-Sent Events stream as typed `BundleChangeEvent`s.

They live outside `generated/` because `make generate` rewrites that folder; they depend only on
the generated package's public names (`Response`, `ErrorResponse`, `BundleChangeEvent`, the
clients), httpx and httpx-sse, and ship in the same `oversync` wheel as `oversync_client`.
"""

from oversync_client_helpers._errors import (
    RETRYABLE_STATUSES,
    ApiError,
    error_from_response,
    unwrap,
)
from oversync_client_helpers._watch import awatch_bundles, watch_bundles

__all__ = [
    "RETRYABLE_STATUSES",
    "ApiError",
    "awatch_bundles",
    "error_from_response",
    "unwrap",
    "watch_bundles",
]
