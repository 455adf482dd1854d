"""A server with the sync inspector on, and sync state worth inspecting (for the inspector tests).

server = start_inspected_server(database_url, tmp_path)
state = populate(server)          # users, sources, bundles, sessions, a moved floor
with open_watch(server, "ada", "dev-a"):
    ...                           # one watch subscriber while the page loads
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from oversync_client.api.push import create_push_session
from oversync_client.models import PushSessionCreateRequest, PushSessionStaging, SnapshotSession
from protocol_helpers import attach, config_file, insert_user, parsed, push_rows, snapshot_create
from serverproc import ServerProcess

INSPECTOR_TOKEN = "inspector-test-token-5f1c"


def start_inspected_server(database_url: str, log_dir: Path, **overrides: object) -> ServerProcess:
    """The example schema, 2 bundles retained per user, the inspector behind INSPECTOR_TOKEN."""
    config = config_file(log_dir, retained_bundles_per_user=2, **overrides)
    process = ServerProcess(
        database_url,
        config=config,
        extra_args=("--example-schema",),
        env={"OVERSYNC_INSPECTOR_TOKEN": INSPECTOR_TOKEN},
    )
    return process.start(log_dir)


@dataclass(frozen=True)
class State:
    push_id: str
    snapshot_id: str
    names: tuple[str, ...]  # user names of ada's last bundle


def populate(server: ServerProcess) -> State:
    """ada: 3 bundles (the last with 8 rows; the floor moves to 1) and an open push session;
    bob: 1 bundle and an open snapshot session."""
    names = tuple(f"Ada-{index}" for index in range(8))
    with server.client("ada") as client:
        attach(client, "dev-a")
        push_rows(client, "dev-a", 1, [insert_user("First")])
        push_rows(client, "dev-a", 2, [insert_user("Second")])
        push_rows(client, "dev-a", 3, [insert_user(name) for name in names])
        created = create_push_session.sync_detailed(
            client=client,
            oversync_source_id="dev-a",
            body=PushSessionCreateRequest(source_bundle_id=4, planned_row_count=3),
        )
        push_id = parsed(created, PushSessionStaging).push_id
    with server.client("bob") as client:
        attach(client, "dev-b")
        push_rows(client, "dev-b", 1, [insert_user("Bob")])
        snapshot = parsed(snapshot_create(client, "dev-b"), SnapshotSession)
    return State(push_id=push_id, snapshot_id=snapshot.snapshot_id, names=names)


@contextlib.contextmanager
def open_watch(server: ServerProcess, user_id: str, source_id: str) -> Iterator[None]:
    """A watch stream of `user_id`, subscribed (its 200 has arrived) until the block ends."""
    headers = {"Authorization": f"Bearer {server.token(user_id)}", "Oversync-Source-ID": source_id}
    with httpx.stream(
        "GET", f"{server.base_url}/sync/watch", headers=headers, timeout=None
    ) as response:
        assert response.status_code == 200, response.read()
        yield
