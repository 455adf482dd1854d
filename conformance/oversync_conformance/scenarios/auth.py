"""Authentication failures: 401 on every `/sync/*` operation, whatever is wrong with the token.

The Go example server answers these 401s in plain text; this server answers an ErrorResponse
(docs/deviations.md). Sessions tagged ``json-401`` hold that expectation.
"""

from __future__ import annotations

from oversync_client.api.discovery import get_capabilities
from oversync_client.api.lifecycle import connect
from oversync_client.api.pull import pull, watch_bundles
from oversync_client.api.push import (
    commit_push_session,
    create_push_session,
    delete_push_session,
    get_committed_bundle_rows,
    upload_push_chunk,
)
from oversync_client.api.snapshot import (
    create_snapshot_session,
    delete_snapshot_session,
    get_snapshot_chunk,
)
from oversync_client.models import ConnectRequest, PushChunkRequest, PushSessionCreateRequest
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import NO_SUCH_ID, category
from oversync_conformance.session import Auth

UNAUTHORIZED = (401, "authentication_failed")


@scenario(tags=("auth", "errors", "json-401"))
def auth_token_rejected(ctx: ScenarioContext) -> None:
    """No token, a malformed Authorization header, a token that is not a JWT, expired, wrongly
    signed or without a subject: 401; then the same call with a valid token: 200."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    variants: list[tuple[Auth, str]] = [
        ("none", "no Authorization header"),
        ({"authorization": "Bearer"}, "Bearer without a token"),
        ({"authorization": "Basic YWxpY2U6c2VjcmV0"}, "Basic credentials"),
        ({"authorization": "Bearer not-a-jwt"}, "a token that is not a JWT"),
        ("expired", "an expired token"),
        ("bad-signature", "a token signed with another secret"),
        ("no-subject", "a token without a subject"),
    ]
    for auth, what in variants:
        phone.with_auth(auth).call(
            get_capabilities.sync_detailed, expect=UNAUTHORIZED, step=f"capabilities with {what}"
        )
    phone.call(get_capabilities.sync_detailed, expect=200, step="capabilities with a valid token")


@scenario(tags=("auth", "errors", "json-401"))
def auth_required_everywhere(ctx: ScenarioContext) -> None:
    """Every `/sync/*` operation refuses a request without a token (401) before looking at it."""
    anonymous = ctx.actor("phone", user="alice", source="phone-1").with_auth("none")
    anonymous.call(connect.sync_detailed, body=ConnectRequest(), expect=UNAUTHORIZED)
    anonymous.call(
        create_push_session.sync_detailed,
        body=PushSessionCreateRequest(source_bundle_id=1, planned_row_count=1),
        expect=UNAUTHORIZED,
    )
    anonymous.call(
        upload_push_chunk.sync_detailed,
        NO_SUCH_ID,
        body=PushChunkRequest(start_row_ordinal=0, rows=[category(1, "a")]),
        expect=UNAUTHORIZED,
    )
    anonymous.call(commit_push_session.sync_detailed, NO_SUCH_ID, expect=UNAUTHORIZED)
    anonymous.call(delete_push_session.sync_detailed, NO_SUCH_ID, expect=UNAUTHORIZED)
    anonymous.call(get_committed_bundle_rows.sync_detailed, 1, expect=UNAUTHORIZED)
    anonymous.call(pull.sync_detailed, expect=UNAUTHORIZED)
    anonymous.call(watch_bundles.sync_detailed, expect=UNAUTHORIZED)
    anonymous.call(create_snapshot_session.sync_detailed, expect=UNAUTHORIZED)
    anonymous.call(get_snapshot_chunk.sync_detailed, NO_SUCH_ID, expect=UNAUTHORIZED)
    anonymous.call(delete_snapshot_session.sync_detailed, NO_SUCH_ID, expect=UNAUTHORIZED)
    anonymous.call(get_capabilities.sync_detailed, expect=UNAUTHORIZED)
