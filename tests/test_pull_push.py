"""Connect, seeding pushes and pull end to end, with real pushes through the typed client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from oversync_client import AuthenticatedClient
from oversync_client.api.push import create_push_session, upload_push_chunk
from oversync_client.models import (
    PullResponse,
    PushChunkRequest,
    PushSessionCreateRequest,
    PushSessionStaging,
)
from oversync_wire import bundle_hash
from protocol_helpers import (
    attach,
    committed_rows,
    expect_error,
    insert_user,
    parsed,
    pull_page,
    pull_to_stable,
    push_rows,
    start_server,
)
from serverproc import ServerProcess


@pytest.fixture
def short_lease_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    process = start_server(database_url, tmp_path, initialization_lease_ttl_seconds=1)
    try:
        yield process
    finally:
        process.stop()


def create(
    client: AuthenticatedClient, source: str, bundle: int, init_id: str | None = None
) -> Any:
    body = PushSessionCreateRequest(source_bundle_id=bundle, planned_row_count=1)
    if init_id is not None:
        body.initialization_id = init_id
    return create_push_session.sync_detailed(client=client, oversync_source_id=source, body=body)


def test_seeding_push_initializes_the_scope_for_everyone(server: ServerProcess) -> None:
    with server.client("alice") as client:
        local = attach(client, "dev-a", pending=True)
        assert local.resolution == "initialize_local" and isinstance(local.initialization_id, str)
        init_id = local.initialization_id
        expect_error(create(client, "dev-a", 1), 400, "push_session_invalid")  # id required
        expect_error(create(client, "dev-b", 1, init_id), 409, "initialization_stale")
        expect_error(create(client, "dev-a", 1, "0" * 8 + init_id[8:]), 409, "initialization_stale")

        seeded = push_rows(
            client, "dev-a", 1, [insert_user("Ada"), insert_user("Bob")], initialization_id=init_id
        )
        assert seeded.bundle_seq == 1
        assert attach(client, "dev-b").resolution == "remote_authoritative"
        # The old id is refused once the scope is initialized.
        expect_error(create(client, "dev-a", 2, init_id), 400, "push_session_invalid")

        stable, bundles = pull_to_stable(client, "dev-b")
        assert stable == 1 and [b.bundle_seq for b in bundles] == [1]
        served = bundles[0]
        assert served.source_id == "dev-a" and served.bundle_hash == seeded.bundle_hash
        assert served.row_count == 2 and len(served.rows) == 2
        assert all(row.row_version == 1 for row in served.rows)
        wire = [row.to_dict() for row in served.rows]
        assert bundle_hash(wire)[0] == served.bundle_hash
        fetched = [row.to_dict() for row in committed_rows(client, "dev-a", 1)]
        assert fetched == wire  # pull serves exactly the committed bundle


def test_pull_pages_keep_their_ceiling_while_pushes_commit(server: ServerProcess) -> None:
    with server.client("alice") as writer, server.client("alice") as reader:
        attach(writer, "dev-a")
        for number in range(1, 6):
            push_rows(writer, "dev-a", number, [insert_user(f"u{number}")])
        page = parsed(pull_page(reader, "dev-b", max_bundles=2), PullResponse)
        stable = page.stable_bundle_seq
        assert stable == 5
        for number in range(6, 9):
            push_rows(writer, "dev-a", number, [insert_user(f"u{number}")])
        seen = [bundle.bundle_seq for bundle in page.bundles]
        while page.has_more:
            page = parsed(
                pull_page(reader, "dev-b", after=seen[-1], max_bundles=2, target=stable),
                PullResponse,
            )
            assert page.stable_bundle_seq == stable
            seen.extend(bundle.bundle_seq for bundle in page.bundles)
        assert seen == [1, 2, 3, 4, 5]
        latest, rest = pull_to_stable(reader, "dev-b", after=5)
        assert latest == 8 and [b.bundle_seq for b in rest] == [6, 7, 8]


def test_expired_leases_on_the_push_path(short_lease_server: ServerProcess) -> None:
    server = short_lease_server
    with server.client("alice") as client:
        first = attach(client, "dev-a", pending=True)
        assert isinstance(first.initialization_id, str)
        time.sleep(1.1)
        # The lease ran out before the seeding push started: 410 at create.
        expect_error(
            create(client, "dev-a", 1, first.initialization_id), 410, "initialization_expired"
        )

        second = attach(client, "dev-a", pending=True)
        assert isinstance(second.initialization_id, str)
        assert second.initialization_id != first.initialization_id
        staging = parsed(create(client, "dev-a", 1, second.initialization_id), PushSessionStaging)
        time.sleep(1.1)
        # ...and during the upload: 409 initialization_stale at the chunk (the reference's answer).
        uploaded = upload_push_chunk.sync_detailed(
            staging.push_id,
            client=client,
            oversync_source_id="dev-a",
            body=PushChunkRequest(start_row_ordinal=0, rows=[insert_user()]),
        )
        error = expect_error(uploaded, 409, "initialization_stale")
        assert error.message == "scope is no longer initializing"
        expect_error(pull_page(client, "dev-a"), 409, "scope_uninitialized")
