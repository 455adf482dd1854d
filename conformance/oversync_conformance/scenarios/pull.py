"""Pull: bundle pages under a frozen stable ceiling, and the parameter rules."""

from __future__ import annotations

from oversync_client.api.pull import pull, watch_bundles
from oversync_conformance.context import ScenarioContext
from oversync_conformance.scenarios import scenario
from oversync_conformance.scenarios._data import category, connect_empty, push


@scenario(tags=("pull", "paging", "multi-actor"))
def pull_paging_stable_ceiling(ctx: ScenarioContext) -> None:
    """Three bundles pulled two at a time: the first page freezes stable_bundle_seq; a bundle
    committed meanwhile stays out of the pages that pass the ceiling as target_bundle_seq and
    shows up in the next pull."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    laptop = ctx.actor("laptop", user="alice", source="laptop-1")
    connect_empty(phone)
    for number in (1, 2, 3):
        push(phone, number, [category(number, f"category {number}")])
    laptop.call(pull.sync_detailed, max_bundles=2, expect=200, step="first page of two bundles")
    stable = ctx.capture("stable_bundle_seq", "stable_bundle_seq")
    push(phone, 4, [category(4, "committed while the laptop pages")])
    laptop.call(
        pull.sync_detailed,
        after_bundle_seq=2,
        max_bundles=2,
        target_bundle_seq=stable,
        expect=200,
        step="second page under the frozen ceiling",
    )
    laptop.call(pull.sync_detailed, after_bundle_seq=3, expect=200, step="the next pull")
    laptop.call(
        pull.sync_detailed,
        after_bundle_seq=4,
        target_bundle_seq=stable,
        expect=200,
        step="a checkpoint past the ceiling: nothing",
    )


@scenario(tags=("pull", "errors"))
def pull_invalid_parameters(ctx: ScenarioContext) -> None:
    """max_bundles outside 1..5000 and negative or non-integer checkpoints: 400
    invalid_request (not capped)."""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    connect_empty(phone)
    invalid = (400, "invalid_request")
    phone.call(pull.sync_detailed, max_bundles=0, expect=invalid, step="max_bundles 0")
    phone.call(pull.sync_detailed, max_bundles=5001, expect=invalid, step="max_bundles 5001")
    phone.call(pull.sync_detailed, max_bundles=5000, expect=200, step="max_bundles 5000")
    phone.call(pull.sync_detailed, after_bundle_seq=-1, expect=invalid, step="negative after")
    phone.call(pull.sync_detailed, target_bundle_seq=-1, expect=invalid, step="negative target")
    phone.raw(
        "GET", "/sync/pull", query={"after_bundle_seq": "one"}, expect=invalid,
        step="after_bundle_seq that is not an integer",
    )  # fmt: skip


@scenario(tags=("pull", "watch", "errors"))
def watch_refusals(ctx: ScenarioContext) -> None:
    """The bundle-change watch answers JSON errors before it streams: 409 scope_uninitialized
    before connect, 400 invalid_request for a negative checkpoint. (The event stream itself
    is not an exchange a session can hold.)"""
    phone = ctx.actor("phone", user="alice", source="phone-1")
    phone.call(
        watch_bundles.sync_detailed,
        expect=(409, "scope_uninitialized"),
        step="watch before connect",
    )
    connect_empty(phone)
    phone.call(
        watch_bundles.sync_detailed,
        after_bundle_seq=-1,
        expect=(400, "invalid_request"),
        step="watch from a negative checkpoint",
    )
