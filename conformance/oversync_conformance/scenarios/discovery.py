"""Discovery: the capabilities document, and the source header every `/sync/*` call needs."""

from __future__ import annotations

from oversync_client.api.discovery import get_capabilities
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import NO_SUCH_ID


@scenario(tags=("discovery",))
def capabilities(ctx: ScenarioContext) -> None:
    """GET /sync/capabilities: protocol v1, the 20 feature flags, the example's registered
    tables and the default bundle limits."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    phone.call(get_capabilities.sync_detailed, expect=200)


@scenario(tags=("discovery", "errors"))
def source_header_required(ctx: ScenarioContext) -> None:
    """A valid token without an `Oversync-Source-ID` header is 400 invalid_request on every
    `/sync/*` operation, and so is a blank header."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    invalid = (400, "invalid_request")
    json_only = {"Content-Type": "application/json"}
    rows = {"start_row_ordinal": 0, "rows": [{
        "schema": "business", "table": "categories", "key": {"id": NO_SUCH_ID}, "op": "INSERT",
        "base_row_version": 0, "payload": {"id": NO_SUCH_ID, "name": "a"}}]}  # fmt: skip
    requests: list[tuple[str, str, object]] = [
        ("POST", "/sync/connect", {"has_local_pending_rows": False}),
        ("POST", "/sync/push-sessions", {"source_bundle_id": 1, "planned_row_count": 1}),
        ("POST", f"/sync/push-sessions/{NO_SUCH_ID}/chunks", rows),
        ("POST", f"/sync/push-sessions/{NO_SUCH_ID}/commit", None),
        ("DELETE", f"/sync/push-sessions/{NO_SUCH_ID}", None),
        ("GET", "/sync/committed-bundles/1/rows", None),
        ("GET", "/sync/pull", None),
        ("GET", "/sync/watch", None),
        ("POST", "/sync/snapshot-sessions", None),
        ("GET", f"/sync/snapshot-sessions/{NO_SUCH_ID}", None),
        ("DELETE", f"/sync/snapshot-sessions/{NO_SUCH_ID}", None),
        ("GET", "/sync/capabilities", None),
    ]
    for method, path, body in requests:
        if body is None:
            phone.raw(method, path, headers={}, expect=invalid)
        else:
            phone.raw(method, path, headers=json_only, json_body=body, expect=invalid)
    phone.call(
        get_capabilities.sync_detailed,
        oversync_source_id="",
        expect=invalid,
        step="capabilities with a blank Oversync-Source-ID",
    )
