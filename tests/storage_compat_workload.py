"""A fixed sync workload and a dump of the `sync.*` rows it writes (the storage-compat proof).

    python tests/storage_compat_workload.py --admin-dsn URL --out FILE [--tree DIR]

Starts `oversync-server serve --example-schema` of `--tree` (default: this work tree; its folders
go first on PYTHONPATH, so run the script itself with the same PYTHONPATH to use the tree's
`server_writes` too, `tests/test_storage_compat.py` does) on a fresh database, runs a fixed set of
pushes from several users and devices (inserts, full and partial updates, deletes, FK
parent/child rows, ON DELETE CASCADE chains, bytea, big and float numbers) and server-originated
writes (coalesced insert-then-update, insert-then-delete, a key-changing update, a cascade), then
writes the `sync.*` rows as JSON: user/scope/source state, `row_state`, `bundle_log` (hash and
byte_count included) and `bundle_rows` (payload text byte for byte), and the leftover stage,
push-session and snapshot rows (none). Only what legitimately varies is left out: timestamps of
the sync tables (`committed_at`, leases, `initialized_at`) and session ids; every business
timestamp is given explicitly, so payloads and hashes are fixed. Users are named by `user_id`,
not `user_pk`.

`tests/data/storage_compat_golden.json` was produced by this script run against revision
8e9a512 (the code before the batch-capture work):

    git archive 8e9a512 | tar -x -C /tmp/x
    PYTHONPATH=/tmp/x/common:/tmp/x/generated:/tmp/x/generated/oversync_client:/tmp/x/server \\
        .venv/bin/python tests/storage_compat_workload.py --tree /tmp/x \\
        --admin-dsn "$DSN" --out tests/data/storage_compat_golden.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

SECRET = "storage-compat-secret"
HERE = Path(__file__).resolve().parent
SOURCE_DIRS = ("common", "generated", "generated/oversync_client", "server", "client")
TS = "2026-01-02T03:04:05+00:00"


def key(name: str) -> str:
    """A fixed uuid per name."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"oversync-storage-compat/{name}"))


def pythonpath(tree: Path) -> str:
    return os.pathsep.join(str(tree / folder) for folder in SOURCE_DIRS)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    def __init__(self, tree: Path, dsn: str, log: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        command = [
            sys.executable,
            "-m",
            "oversync_server.cli",
            "serve",
            "--database-url",
            dsn,
            "--port",
            str(self.port),
            "--example-schema",
            "--log-level",
            "warning",
        ]
        env = {**os.environ, "OVERSYNC_JWT_SECRET": SECRET, "PYTHONPATH": pythonpath(tree)}
        self.log = log
        with log.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tree
            )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited:\n{log.read_text(errors='replace')[-3000:]}")
            try:
                if httpx.get(self.base + "/openapi.json", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


class Device:
    def __init__(self, base: str, user: str, source: str) -> None:
        from oversync_server.auth import sign_token

        self.http = httpx.Client(
            base_url=base,
            headers={
                "Authorization": f"Bearer {sign_token(SECRET, user)}",
                "Oversync-Source-ID": source,
            },
            timeout=60,
        )
        self.next_bundle = 1

    def call(self, method: str, path: str, body: Any = None) -> Any:
        answer = self.http.request(method, path, json=body)
        if answer.status_code != 200:
            raise RuntimeError(f"{method} {path}: {answer.status_code} {answer.text[:500]}")
        return answer.json()

    def push(self, rows: list[dict[str, Any]], chunk: int = 3) -> int:
        created = self.call(
            "POST",
            "/sync/push-sessions",
            {"source_bundle_id": self.next_bundle, "planned_row_count": len(rows)},
        )
        push_id = created["push_id"]
        for start in range(0, len(rows), chunk):
            self.call(
                "POST",
                f"/sync/push-sessions/{push_id}/chunks",
                {"start_row_ordinal": start, "rows": rows[start : start + chunk]},
            )
        done = self.call("POST", f"/sync/push-sessions/{push_id}/commit")
        self.next_bundle += 1
        return int(done["bundle_seq"])


async def versions(dsn: str, user: str) -> dict[str, int]:
    """Key text -> row_state.bundle_seq of `user`'s rows (the base_row_version to send)."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT encode(r.key_bytes, 'hex') AS k, r.bundle_seq FROM sync.row_state r"
            " JOIN sync.user_state u USING (user_pk) WHERE u.user_id = $1",
            user,
        )
    finally:
        await conn.close()
    return {str(uuid.UUID(hex=r["k"])): r["bundle_seq"] for r in rows}


def row(
    table: str, op: str, name: str, payload: dict[str, Any] | None = None, base: int = 0
) -> dict[str, Any]:
    k = key(name)
    out: dict[str, Any] = {
        "schema": "business",
        "table": table,
        "key": {"id": k},
        "op": op,
        "base_row_version": base,
    }
    if op != "DELETE":
        out["payload"] = {"id": k, **(payload or {})}
    return out


def user(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "email": f"{name}@example.com",
        "created_at": TS,
        "updated_at": TS,
        **extra,
    }


def post(title: str, author: str) -> dict[str, Any]:
    return {
        "title": title,
        "content": f"content of {title} <&>",
        "author_id": key(author),
        "created_at": TS,
        "updated_at": TS,
    }


def pushes(base: str, dsn: str) -> None:
    alice_a = Device(base, "alice", "alice-a")
    alice_b = Device(base, "alice", "alice-b")
    bob = Device(base, "bob", "bob-1")
    for device in (alice_a, alice_b, bob):
        device.call("POST", "/sync/connect", {"has_local_pending_rows": False})
    alice_a.push(
        [
            row("users", "INSERT", "u1", user("ada")),
            row("users", "INSERT", "u2", user("bea")),
            row("posts", "INSERT", "p1", post("first", "u1")),
            row("posts", "INSERT", "p2", post("second", "u2")),
            row("posts", "INSERT", "p3", post("child before parent", "u3")),
            row("users", "INSERT", "u3", user("cy", email="cy@example.org")),
            row("categories", "INSERT", "c1", {"name": "root"}),
            row("categories", "INSERT", "c2", {"name": "mid", "parent_id": key("c1")}),
            row("categories", "INSERT", "c3", {"name": "leaf", "parent_id": key("c2")}),
            row("teams", "INSERT", "t1", {"name": "team"}),
            row("team_members", "INSERT", "m1", {"name": "m one", "team_id": key("t1")}),
            row("team_members", "INSERT", "m2", {"name": "m two", "team_id": key("t1")}),
            row("teams", "INSERT", "t2", {"name": "team 2"}),
            row("teams", "INSERT", "t3", {"name": "team 3"}),
            row("team_members", "INSERT", "m3", {"name": "m three", "team_id": key("t2")}),
            row("team_members", "INSERT", "m4", {"name": "m four", "team_id": key("t3")}),
            row("files", "INSERT", "f1", {"name": "f", "data": "AAECAwT/"}),
            row("file_reviews", "INSERT", "r1", {"review": "ok", "file_id": key("f1")}),
            row(
                "typed_rows",
                "INSERT",
                "x1",
                {
                    "name": "numbers \u2028 \u00e9",
                    "note": None,
                    "count_value": 2**60 + 1,
                    "enabled_flag": 1,
                    "rating": 0.1,
                    "data": "",
                    "created_at": TS,
                },
            ),
            row(
                "typed_rows",
                "INSERT",
                "x2",
                {"name": "tiny", "enabled_flag": 0, "rating": 1.5e-7, "count_value": -3},
            ),
        ]
    )
    v = asyncio.run(versions(dsn, "alice"))
    alice_b.push(
        [
            row("users", "UPDATE", "u1", user("ada lovelace"), v[key("u1")]),
            row("posts", "UPDATE", "p1", {"title": "first, edited"}, v[key("p1")]),
            row("posts", "DELETE", "p2", base=v[key("p2")]),
            row("categories", "DELETE", "c1", base=v[key("c1")]),
            row("files", "DELETE", "f1", base=v[key("f1")]),
            row("users", "INSERT", "u4", user("dee")),
            row("typed_rows", "UPDATE", "x1", {"rating": 1e21, "count_value": 7}, v[key("x1")]),
        ]
    )
    v = asyncio.run(versions(dsn, "alice"))
    alice_a.push(
        [
            row("teams", "DELETE", "t3", base=v[key("t3")]),
            row("teams", "DELETE", "t1", base=v[key("t1")]),
            row("team_members", "UPDATE", "m3", {"name": "m3 renamed"}, v[key("m3")]),
            row("teams", "DELETE", "t2", base=v[key("t2")]),
            row("posts", "DELETE", "p3", base=v[key("p3")]),
            row("users", "DELETE", "u3", base=v[key("u3")]),
            row("categories", "INSERT", "c1", {"name": "root again"}, v[key("c1")]),
        ]
    )
    bob.push(
        [row("users", "INSERT", "b1", user("bob")), row("posts", "INSERT", "bp1", post("b", "b1"))]
    )
    v = asyncio.run(versions(dsn, "bob"))
    bob.push(
        [
            row("posts", "DELETE", "bp1", base=v[key("bp1")]),
            row("users", "UPDATE", "b1", user("bob 2"), v[key("b1")]),
        ]
    )


async def server_writes(tree: Path, dsn: str) -> None:
    """Server-originated writes with this tree's `oversync_server.server_writes`."""
    from oversync_server.config import load_config
    from oversync_server.engine import schema as sync_schema
    from oversync_server.runtime import SyncRuntime
    from oversync_server.server_writes import exec_write

    config_path = tree / "examples" / "business" / "config.yaml"
    runtime = SyncRuntime(config=load_config(config_path), database_url=dsn)
    sync_schema.install(runtime)
    await runtime.start()
    try:

        async def alice_write(conn: Any) -> None:
            ins = (
                "INSERT INTO business.users (id, name, email, created_at, updated_at)"
                " VALUES ($1, $2, $3, $4::text::timestamptz, $4::text::timestamptz)"
            )
            await conn.execute(ins, uuid.UUID(key("s1")), "srv", "srv@example.com", TS)
            await conn.execute(
                "UPDATE business.users SET name = 'srv 2' WHERE id = $1", uuid.UUID(key("s1"))
            )
            await conn.execute(ins, uuid.UUID(key("s2")), "gone", "gone@example.com", TS)
            await conn.execute("DELETE FROM business.users WHERE id = $1", uuid.UUID(key("s2")))
            await conn.execute(
                "UPDATE business.users SET id = $2, name = 'renamed' WHERE id = $1",
                uuid.UUID(key("u4")),
                uuid.UUID(key("u4-new")),
            )
            await conn.execute(
                "UPDATE business.users SET email = 'ada@example.net' WHERE id = $1",
                uuid.UUID(key("u1")),
            )
            await conn.execute(
                "INSERT INTO business.categories (id, name) VALUES ($1, 'srv root'), ($2, 'x')",
                uuid.UUID(key("sc1")),
                uuid.UUID(key("sc2")),
            )
            await conn.execute(
                "UPDATE business.categories SET parent_id = $1 WHERE id = $2",
                uuid.UUID(key("sc1")),
                uuid.UUID(key("sc2")),
            )

        async def alice_cascade(conn: Any) -> None:
            await conn.execute(
                "DELETE FROM business.categories WHERE id = $1", uuid.UUID(key("sc1"))
            )
            await conn.execute(
                "UPDATE business.posts SET title = 'by server' WHERE id = $1", uuid.UUID(key("p1"))
            )

        async def carol_write(conn: Any) -> None:
            await conn.execute(
                "INSERT INTO business.teams (id, name) VALUES ($1, 'carol team')",
                uuid.UUID(key("ct1")),
            )

        await exec_write(runtime, "alice", writer_id="server:admin", fn=alice_write)
        await exec_write(runtime, "alice", writer_id="server:admin", fn=alice_cascade)
        await exec_write(runtime, "carol", writer_id="server:jobs", fn=carol_write)
    finally:
        await runtime.stop()


DUMPS = {
    "user_state": """
SELECT user_id, next_bundle_seq, retained_bundle_floor FROM sync.user_state ORDER BY user_id""",
    "scope_state": """
SELECT u.user_id, s.state_code, s.initializer_source_id, s.initialized_by_source_id
FROM sync.scope_state s JOIN sync.user_state u USING (user_pk) ORDER BY u.user_id""",
    "source_state": """
SELECT u.user_id, s.source_id, s.state, s.max_committed_source_bundle_id,
       s.replaced_by_source_id, s.retirement_reason
FROM sync.source_state s JOIN sync.user_state u USING (user_pk) ORDER BY u.user_id, s.source_id""",
    "row_state": """
SELECT u.user_id, r.table_id, encode(r.key_bytes, 'hex') AS key_hex, r.bundle_seq, r.deleted
FROM sync.row_state r JOIN sync.user_state u USING (user_pk)
ORDER BY u.user_id, r.table_id, r.key_bytes""",
    "bundle_log": """
SELECT u.user_id, b.bundle_seq, b.source_id, b.source_bundle_id, b.row_count, b.byte_count,
       encode(b.bundle_hash, 'hex') AS bundle_hash
FROM sync.bundle_log b JOIN sync.user_state u USING (user_pk) ORDER BY u.user_id, b.bundle_seq""",
    "bundle_rows": """
SELECT u.user_id, b.bundle_seq, b.row_ordinal, b.table_id, encode(b.key_bytes, 'hex') AS key_hex,
       b.op_code, b.payload_wire::text AS payload_wire
FROM sync.bundle_rows b JOIN sync.user_state u USING (user_pk)
ORDER BY u.user_id, b.bundle_seq, b.row_ordinal""",
    "table_catalog": "SELECT * FROM sync.table_catalog ORDER BY table_id",
    "meta": "SELECT * FROM sync.meta",
    "leftovers": """
SELECT (SELECT count(*) FROM sync.bundle_capture_stage) AS bundle_capture_stage,
       (SELECT count(*) FROM sync.push_sessions) AS push_sessions,
       (SELECT count(*) FROM sync.push_session_rows) AS push_session_rows,
       (SELECT count(*) FROM sync.snapshot_sessions) AS snapshot_sessions""",
}


async def dump(dsn: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            name: [dict(record) for record in await conn.fetch(sql)] for name, sql in DUMPS.items()
        }
    finally:
        await conn.close()


async def fresh_database(admin: str) -> tuple[str, str]:
    name = f"storage_compat_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.execute(f"ALTER DATABASE \"{name}\" SET timezone = 'UTC'")
    finally:
        await conn.close()
    base, _, query = admin.partition("?")
    head = base.rsplit("/", 1)[0]
    return name, f"{head}/{name}" + (f"?{query}" if query else "")


async def drop_database(admin: str, name: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def run(tree: Path, admin: str, log_dir: Path) -> dict[str, list[dict[str, Any]]]:
    """The dump of the workload run by `tree`'s server on a fresh database of `admin`."""
    name, dsn = asyncio.run(fresh_database(admin))
    try:
        server = Server(tree, dsn, log_dir / "storage-compat-server.log")
        try:
            pushes(server.base, dsn)
            asyncio.run(server_writes(tree, dsn))
        finally:
            server.stop()
        return asyncio.run(dump(dsn))
    finally:
        asyncio.run(drop_database(admin, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--tree", type=Path, default=HERE.parent)
    parser.add_argument("--admin-dsn", required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="storage-compat-") as logs:
        result = run(args.tree.resolve(), args.admin_dsn, Path(logs))
    args.out.write_text(json.dumps(result, indent=1, sort_keys=True, default=str) + "\n")


if __name__ == "__main__":
    main()
