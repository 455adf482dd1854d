"""Sync scenarios, each run against a real server process."""

from __future__ import annotations

import json
import random
import uuid
from pathlib import Path
from typing import Any

from sdk_helpers import Backend, Device, ServerBackend, new_id

from oversqlite import AttachOutcome, PullOutcome, PushOutcome
from protocol_helpers import start_server


def populate(device: Device, tag: str) -> dict[str, Any]:
    """One connected set of rows in every example table; returns their keys."""
    ids: dict[str, Any] = {
        "user": new_id(),
        "post": new_id(),
        "root": new_id(),
        "child": new_id(),
        "team": new_id(),
        "member": new_id(),
        "file": uuid.uuid4().bytes,
        "review": uuid.uuid4().bytes,
        "typed": new_id(),
    }
    d = device.execute
    d(
        "INSERT INTO users (id, name, email) VALUES (?, ?, ?)",
        ids["user"],
        f"user {tag}",
        f"{tag}@x",
    )
    d(
        "INSERT INTO posts (id, title, content, author_id) VALUES (?, ?, 'c', ?)",
        ids["post"],
        f"post {tag}",
        ids["user"],
    )
    d("INSERT INTO categories (id, name) VALUES (?, ?)", ids["root"], f"root {tag}")
    d(
        "INSERT INTO categories (id, name, parent_id) VALUES (?, ?, ?)",
        ids["child"],
        f"child {tag}",
        ids["root"],
    )
    d("INSERT INTO teams (id, name) VALUES (?, ?)", ids["team"], f"team {tag}")
    d(
        "INSERT INTO team_members (id, name, team_id) VALUES (?, ?, ?)",
        ids["member"],
        f"member {tag}",
        ids["team"],
    )
    d("UPDATE teams SET captain_member_id = ? WHERE id = ?", ids["member"], ids["team"])
    d(
        "INSERT INTO files (id, name, data) VALUES (?, ?, ?)",
        ids["file"],
        f"file {tag}",
        b"\x00\xff",
    )
    d(
        "INSERT INTO file_reviews (id, review, file_id) VALUES (?, ?, ?)",
        ids["review"],
        f"review {tag}",
        ids["file"],
    )
    d(
        "INSERT INTO typed_rows (id, name, enabled_flag, count_value, rating) VALUES (?, ?, 1, 42, 0.5)",
        ids["typed"],
        f"typed {tag}",
    )
    return ids


def edit(device: Device, ids: dict[str, Any], tag: str) -> None:
    d = device.execute
    d("UPDATE users SET name = ? WHERE id = ?", f"edited {tag}", ids["user"])
    d("UPDATE posts SET content = ? WHERE id = ?", f"content {tag}", ids["post"])
    d("UPDATE categories SET name = ? WHERE id = ?", f"child {tag}", ids["child"])
    d("UPDATE team_members SET name = ? WHERE id = ?", f"member {tag}", ids["member"])
    d("UPDATE files SET data = ? WHERE id = ?", tag.encode(), ids["file"])
    d("UPDATE file_reviews SET review = ? WHERE id = ?", f"review {tag}", ids["review"])
    d("UPDATE typed_rows SET rating = ?, note = ? WHERE id = ?", 1.25, tag, ids["typed"])


def assert_converged(*devices: Device) -> None:
    first = devices[0].everything()
    assert any(first.values())
    for other in devices[1:]:
        assert other.everything() == first
    for device in devices:
        assert device.client.pending_row_count() == 0


def test_two_devices_converge_after_offline_edits_on_every_table(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    ids_a = populate(a, "a")  # written before any attach: anonymous offline rows
    assert a.client.attach("alice").outcome is AttachOutcome.SEEDED_FROM_LOCAL
    assert a.client.sync().push.outcome is PushOutcome.COMMITTED
    assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    assert_converged(a, b)

    # Offline on both: A edits its rows, B adds a whole new set and edits nothing of A's.
    edit(a, ids_a, "a2")
    ids_b = populate(b, "b")
    b.client.sync()
    a.client.sync()
    b.client.sync()
    assert_converged(a, b)

    # Both delete: B removes A's team (cascading its member), A removes B's file (and review).
    b.execute("DELETE FROM teams WHERE id = ?", ids_a["team"])
    a.execute("DELETE FROM files WHERE id = ?", ids_b["file"])
    a.client.sync()
    b.client.sync()
    a.client.sync()
    assert_converged(a, b)
    assert a.one("SELECT COUNT(*) FROM team_members") == 1
    assert a.one("SELECT COUNT(*) FROM file_reviews") == 1


def test_three_devices_converge_after_interleaved_offline_edits(backend: Backend) -> None:
    devices = [backend.device(name) for name in ("a", "b", "c")]
    a, b, c = devices
    sets = {device.path.stem: populate(device, device.path.stem) for device in devices}
    assert a.client.attach("alice").outcome is AttachOutcome.SEEDED_FROM_LOCAL
    a.client.sync()
    for device in (b, c):  # their anonymous sets give way to the account's data
        assert device.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
    sets.update(b=populate(b, "b2"), c=populate(c, "c2"))  # every table, written offline
    for device in (c, b, a, c):
        device.client.sync()

    rng = random.Random(20240601)
    for round_no in range(6):
        for device in devices:
            for step in range(4):
                random_edit(device, rng, f"{round_no}.{step}")
            if rng.random() < 0.7:
                device.client.sync()
    sweep(devices)

    # Each device edits the next one's rows offline, then each deletes a different set.
    for device, target in ((a, "b"), (b, "c"), (c, "a")):
        edit(device, sets[target], f"by {device.path.stem}")
    for device in (c, a, b):
        device.client.sync()
    a.execute("DELETE FROM teams WHERE id = ?", sets["c"]["team"])
    b.execute("DELETE FROM files WHERE id = ?", sets["a"]["file"])
    c.execute("DELETE FROM categories WHERE id = ?", sets["b"]["root"])
    sweep(devices)
    assert_converged(*devices)
    assert a.one("SELECT COUNT(*) FROM team_members") == 2
    assert a.one("SELECT COUNT(*) FROM file_reviews") == 2
    assert a.one("SELECT COUNT(*) FROM categories") == 4
    assert a.one("SELECT name FROM users WHERE id = ?", sets["b"]["user"]) == "edited by a"


def sweep(devices: list[Device]) -> None:
    for _ in range(2):
        for device in devices:
            device.client.sync()


def random_edit(device: Device, rng: random.Random, tag: str) -> None:
    """Inserts, updates and deletes on rows no other row references."""
    users = [
        r[0]
        for r in device.db.execute(
            "SELECT id FROM users WHERE id NOT IN "
            "(SELECT author_id FROM posts WHERE author_id IS NOT NULL)"
        )
    ]
    typed = [r[0] for r in device.db.execute("SELECT id FROM typed_rows")]
    choice = rng.random()
    if choice < 0.35 or not users:
        device.execute("INSERT INTO users (id, name, email) VALUES (?, ?, 'r@x')", new_id(), tag)
    elif choice < 0.6:
        device.execute("UPDATE users SET name = ? WHERE id = ?", tag, rng.choice(users))
    elif choice < 0.7:
        device.execute("DELETE FROM users WHERE id = ?", rng.choice(users))
    elif choice < 0.85 or not typed:
        device.execute(
            "INSERT INTO typed_rows (id, name, enabled_flag, count_value) VALUES (?, ?, 0, ?)",
            new_id(),
            tag,
            rng.randrange(-(2**31), 2**31),
        )
    else:
        device.execute(
            "UPDATE typed_rows SET rating = ?, count_value = count_value + 1 WHERE id = ?",
            rng.random(),
            rng.choice(typed),
        )


def test_parents_go_before_children_and_cascades_reach_other_devices(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    ids = populate(a, "fk")
    grandchild = new_id()
    a.execute(
        "INSERT INTO categories (id, name, parent_id) VALUES (?, 'g', ?)", grandchild, ids["child"]
    )
    a.client.sync()
    chunks = [json.loads(body) for op, body in a.faults.bodies if op == "chunk"]
    upserts = [row["table"] for chunk in chunks for row in chunk["rows"] if row["op"] != "DELETE"]
    for parent, child in (("users", "posts"), ("teams", "team_members"), ("files", "file_reviews")):
        assert upserts.index(parent) < upserts.index(child)
    b.client.attach("alice")
    assert_converged(a, b)

    a.execute("DELETE FROM teams WHERE id = ?", ids["team"])  # cascades to its member
    a.execute("DELETE FROM categories WHERE id = ?", ids["root"])  # cascades two levels
    a.execute("DELETE FROM files WHERE id = ?", ids["file"])  # cascades to its review
    a.execute("DELETE FROM posts WHERE id = ?", ids["post"])
    a.execute("DELETE FROM users WHERE id = ?", ids["user"])
    a.faults.bodies.clear()
    a.client.sync()
    deletes = [
        row["table"]
        for op, body in a.faults.bodies
        if op == "chunk"
        for row in json.loads(body)["rows"]
        if row["op"] == "DELETE"
    ]
    assert sorted(deletes) == sorted(
        [
            "team_members",
            "teams",
            "categories",
            "categories",
            "categories",
            "file_reviews",
            "files",
            "posts",
            "users",
        ]
    )
    for child, parent in (("posts", "users"), ("team_members", "teams"), ("file_reviews", "files")):
        assert deletes.index(child) < deletes.index(parent)
    assert b.client.sync().pull.outcome is PullOutcome.APPLIED_INCREMENTAL
    assert_converged_empty = b.everything()
    assert all(not rows for table, rows in assert_converged_empty.items() if table != "typed_rows")
    assert b.everything() == a.everything()


EDGE_TEXT = 'émoji 🎉 中文 <b>&amp;</b> line\u2028sep "quoted" \\ tab\t'


def test_blob_unicode_and_number_round_trips(backend: Backend) -> None:
    a, b, c = backend.device("a"), backend.device("b"), backend.device("c")
    a.client.attach("alice")
    a.client.sync()
    assert c.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE  # pulls later
    rows = [
        (
            new_id(),
            EDGE_TEXT,
            "",
            -(2**53),
            1,
            0.1,
            bytes(range(256)),
            "2026-03-24T18:42:11.5+00:00",
        ),
        (new_id(), "big", None, 2**31 + 7, 0, 6.57111473696007, b"", None),
        (new_id(), "neg", "n", -42, 1, -1.5e-7, b"\x00", "2026-01-01T00:00:00+00:00"),
    ]
    for row in rows:
        a.execute("INSERT INTO typed_rows VALUES (?, ?, ?, ?, ?, ?, ?, ?)", *row)
    fid, rid = uuid.uuid4().bytes, uuid.uuid4().bytes
    a.execute(
        "INSERT INTO files (id, name, data) VALUES (?, ?, ?)",
        fid,
        EDGE_TEXT,
        bytes(range(255, -1, -1)),
    )
    a.execute("INSERT INTO file_reviews (id, review, file_id) VALUES (?, ?, ?)", rid, "🙂", fid)
    a.client.sync()
    assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE  # via a snapshot
    c.client.sync()  # via pulled bundles
    typed = "SELECT id, name, note, count_value, enabled_flag, rating, data, created_at, typeof(count_value), typeof(rating), typeof(data) FROM typed_rows ORDER BY id"
    expected = sorted((*row, "integer", "real", "blob") for row in rows)
    assert sorted(a.db.execute(typed).fetchall()) == expected
    for device in (b, c):
        assert sorted(device.db.execute(typed).fetchall()) == expected
        assert device.rows("files") == a.rows("files")
        assert device.rows("file_reviews") == [(rid, "🙂", fid)]


def test_int64_extremes_round_trip(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    values = [(new_id(), -(2**63)), (new_id(), 2**63 - 1), (new_id(), 2**53 + 1)]
    for key, value in values:
        a.execute(
            "INSERT INTO typed_rows (id, name, enabled_flag, count_value) VALUES (?, 'x', 0, ?)",
            key,
            value,
        )
    a.client.sync()
    b.client.attach("alice")
    query = "SELECT id, count_value FROM typed_rows ORDER BY id"
    assert a.db.execute(query).fetchall() == sorted(values)
    assert b.db.execute(query).fetchall() == sorted(values)


def test_small_chunks_page_every_transfer(backend: Backend) -> None:
    small = {
        "upload_chunk_rows": 3,
        "pull_max_bundles": 1,
        "committed_chunk_rows": 2,
        "snapshot_chunk_rows": 2,
    }
    a, b, c = (backend.device(n, **small) for n in ("a", "b", "c"))
    a.client.attach("alice")
    for i in range(10):
        a.execute("INSERT INTO users (id, name, email) VALUES (?, ?, 'e')", new_id(), f"u{i}")
    report = a.client.sync()
    assert report.push.row_count == 10
    assert a.faults.log.count("chunk") == 4 and a.faults.log.count("committed_rows") == 5
    c.client.attach("alice")
    assert c.faults.log.count("snapshot_chunk") == 5
    for i in range(3):
        a.execute("INSERT INTO users (id, name, email) VALUES (?, ?, 'e')", new_id(), f"v{i}")
        a.client.sync()
    b.client.attach("alice")
    pulled = c.client.pull_to_stable()
    assert (pulled.outcome, pulled.bundles_applied) == (PullOutcome.APPLIED_INCREMENTAL, 3)
    assert c.faults.log.count("pull") == 3
    assert_converged(a, b, c)


def test_edits_made_during_a_push_are_kept_and_pushed_next(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    edited, removed, later = new_id(), new_id(), new_id()
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'first', 'e')", edited)
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'doomed', 'e')", removed)

    def concurrent_app_writes() -> None:
        a.execute("UPDATE users SET name = 'second' WHERE id = ?", edited)
        a.execute("DELETE FROM users WHERE id = ?", removed)
        a.execute("INSERT INTO users (id, name, email) VALUES (?, 'later', 'e')", later)

    a.faults.call("commit", concurrent_app_writes)
    first = a.client.push_pending()
    assert first.outcome is PushOutcome.COMMITTED and first.row_count == 2
    assert a.rows("users") == sorted(
        [(edited, "second", "e", None, None), (later, "later", "e", None, None)]
    )
    assert sorted(pk for _, pk, _ in a.dirty()) == sorted([edited, removed, later])
    assert {pk: base for _, pk, base in a.dirty()}[edited] == first.bundle_seq  # rebased
    a.client.sync()
    b.client.attach("alice")
    assert_converged(a, b)
    assert b.rows("users") == sorted(
        [(edited, "second", "e", None, None), (later, "later", "e", None, None)]
    )


def test_pull_stops_when_the_app_writes_and_sync_finishes_the_job(backend: Backend) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'a', 'e')", new_id())
    a.client.sync()
    b.client.attach("alice")
    a.execute("INSERT INTO users (id, name, email) VALUES (?, 'a2', 'e')", new_id())
    a.client.sync()
    mine = new_id()
    b.faults.call(
        "pull",
        lambda: b.execute("INSERT INTO users (id, name, email) VALUES (?, 'b', 'e')", mine),
        after=True,
    )
    blocked = b.client.pull_to_stable()
    assert blocked.outcome is PullOutcome.BLOCKED_BY_PENDING_CHANGES
    assert (blocked.bundles_applied, blocked.pending_row_count) == (0, 1)
    assert b.client.pull_to_stable().outcome is PullOutcome.BLOCKED_BY_PENDING_CHANGES
    report = b.client.sync()
    assert report.push.outcome is PushOutcome.COMMITTED
    assert report.pull.outcome is PullOutcome.APPLIED_INCREMENTAL
    a.client.sync()
    assert_converged(a, b)


def test_more_pending_rows_than_the_server_takes_in_one_bundle_go_in_several(
    database_url: str, tmp_path: Path
) -> None:
    """A server `max_rows_per_bundle` splits one push into full bundles, parents first; every
    row arrives and a second device converges."""
    server = start_server(database_url, tmp_path, dev=True, max_rows_per_bundle=50)
    backend = ServerBackend(tmp_path, server)
    try:
        a, b = backend.device("a"), backend.device("b")
        assert a.client.attach("alice").outcome is AttachOutcome.STARTED_EMPTY
        users = [new_id() for _ in range(70)]
        for index, user in enumerate(users):
            a.execute(
                "INSERT INTO users (id, name, email) VALUES (?, ?, ?)", user, f"u{index}", "e@x"
            )
            a.execute(
                "INSERT INTO posts (id, title, content, author_id) VALUES (?, 't', 'c', ?)",
                new_id(),
                user,
            )
        report = a.client.push_pending()
        assert report.outcome is PushOutcome.COMMITTED and report.row_count == 140
        assert report.bundle_seq == 3  # 50 + 50 + 40 rows
        assert a.client.pending_row_count() == 0
        assert b.client.attach("alice").outcome is AttachOutcome.USED_REMOTE_STATE
        assert b.one("SELECT COUNT(*) FROM users") == 70
        assert b.one("SELECT COUNT(*) FROM posts") == 70
    finally:
        backend.close()
        server.stop()
