"""Retention: below the retained floor history is gone (409 history_pruned); snapshots remain.

The floor is moved with the development endpoint POST /test/retention-floor (no auth), as the
Go example server's tests do, so these sessions need a server started with its dev endpoints.
"""

from __future__ import annotations

from oversync_client.api.pull import pull
from oversync_client.api.push import create_push_session, get_committed_bundle_rows
from oversync_client.api.snapshot import create_snapshot_session
from oversync_client.models import PushSessionCreateRequest
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import category, connect_empty, push

PRUNED = (409, "history_pruned")


@scenario(tags=("retention", "errors"), requires=("dev-endpoints",))
def history_pruned(ctx: ScenarioContext) -> None:
    """Three bundles, retained floor raised to 1: a pull from checkpoint 1 or with ceiling 1,
    the committed rows of bundle 1 and re-creating source_bundle_id 1 are 409 history_pruned;
    a pull from 0 skips bundle 1; bundle 2 is still readable and already_committed; snapshots
    still work."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    for number in (1, 2, 3):
        push(phone, number, [category(number, f"category {number}")])
    phone.with_auth("none").raw(
        "POST", "/test/retention-floor", headers={},
        json_body={"user_id": phone.user_id, "retained_bundle_floor": 1},
        expect=200, step="raise the retained floor to 1",
    )  # fmt: skip
    phone.call(pull.sync_detailed, after_bundle_seq=1, expect=PRUNED, step="pull after 1")
    phone.call(pull.sync_detailed, after_bundle_seq=2, expect=200, step="pull after 2")
    phone.call(pull.sync_detailed, expect=200, step="pull from 0 skips the pruned bundle")
    phone.call(
        pull.sync_detailed, target_bundle_seq=1, expect=PRUNED, step="a ceiling at the floor"
    )
    phone.call(get_committed_bundle_rows.sync_detailed, 1, expect=PRUNED, step="rows of bundle 1")
    phone.call(get_committed_bundle_rows.sync_detailed, 2, expect=200, step="rows of bundle 2")
    for number, expect in ((1, PRUNED), (2, 200)):
        phone.call(
            create_push_session.sync_detailed,
            body=PushSessionCreateRequest(source_bundle_id=number, planned_row_count=1),
            expect=expect,
            step=f"re-create source_bundle_id {number}",
        )
    phone.call(create_snapshot_session.sync_detailed, expect=200, step="snapshot still works")
