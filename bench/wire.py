"""A lean protocol client for the load generator: JSON over bench/http1.py connections.

Each `Device` is one user and one source on its own keep-alive connection, sending what the Go
client sends (reference/protocol.md §6): a push is create + chunks of 1000 rows + commit, and a
"full" push also re-downloads the committed rows, as the client does to replay the authoritative
bundle. Bodies are encoded with the stdlib json module and every response is parsed by it.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from bench.http1 import AsyncConnection, Connection, HttpError
from bench.serving import SECRET
from oversync_server.auth import sign_token

CHUNK_ROWS = 1000  # the Go client's default upload limit
PAGE_ROWS = 1000  # its default committed-rows and snapshot page size
PULL_BUNDLES = 1000  # its default download limit
Row = dict[str, Any]
Params = dict[str, int | str]


def _headers(user: str, source: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {sign_token(SECRET, user)}",
        "Oversync-Source-ID": source,
    }


def _check(method: str, path: str, answer: tuple[int, bytes]) -> Any:
    status, body = answer
    if status != 200:
        raise HttpError(method, path, status, body)
    return json.loads(body)


def user_row(index: int) -> Row:
    key = str(uuid.uuid4())
    return {
        "schema": "business",
        "table": "users",
        "key": {"id": key},
        "op": "INSERT",
        "base_row_version": 0,
        "payload": {"id": key, "name": f"user {index}", "email": f"user{index}@example.com"},
    }


def post_row(index: int, author: str) -> Row:
    key = str(uuid.uuid4())
    return {
        "schema": "business",
        "table": "posts",
        "key": {"id": key},
        "op": "INSERT",
        "base_row_version": 0,
        "payload": {
            "id": key,
            "title": f"post {index}",
            "content": f"the content of post {index}",
            "author_id": author,
        },
    }


def _create_body(bundle: int, rows: int) -> bytes:
    return json.dumps({"source_bundle_id": bundle, "planned_row_count": rows}).encode()


def _chunk_body(start: int, rows: list[Row]) -> bytes:
    return json.dumps({"start_row_ordinal": start, "rows": rows}).encode()


class Device:
    """A blocking client: one user, one source, sequential bundles."""

    def __init__(self, base: str, user: str, source: str) -> None:
        self.user = user
        self.http = Connection(base, _headers(user, source))
        self.next_bundle = 1

    def close(self) -> None:
        self.http.close()

    def call(
        self, method: str, path: str, body: bytes | None = None, params: Params | None = None
    ) -> Any:
        return _check(method, path, self.http.request(method, path, body, params))

    def connect(self) -> None:
        self.call("POST", "/sync/connect", b'{"has_local_pending_rows":false}')

    def push(self, rows: list[Row], *, full: bool = False) -> int:
        """Push one bundle; its bundle_seq. `full` adds the committed-rows download."""
        created = self.call(
            "POST", "/sync/push-sessions", _create_body(self.next_bundle, len(rows))
        )
        push_id = created["push_id"]
        for start in range(0, len(rows), CHUNK_ROWS):
            self.call(
                "POST",
                f"/sync/push-sessions/{push_id}/chunks",
                _chunk_body(start, rows[start : start + CHUNK_ROWS]),
            )
        commit = self.call("POST", f"/sync/push-sessions/{push_id}/commit")
        self.next_bundle += 1
        seq = int(commit["bundle_seq"])
        if full:
            self.committed_rows(seq)
        return seq

    def committed_rows(self, bundle_seq: int) -> int:
        rows, after = 0, None
        while True:
            params: Params = {"max_rows": PAGE_ROWS}
            if after is not None:
                params["after_row_ordinal"] = after
            page = self.call("GET", f"/sync/committed-bundles/{bundle_seq}/rows", params=params)
            rows += len(page["rows"])
            if not page["has_more"]:
                return rows
            after = page["next_row_ordinal"]

    def pull_all(self) -> int:
        """Pull every bundle from checkpoint 0 to the first page's stable seq; rows received."""
        rows, after, target = 0, 0, 0
        while True:
            params: Params = {"after_bundle_seq": after, "max_bundles": PULL_BUNDLES}
            if target:
                params["target_bundle_seq"] = target
            page = self.call("GET", "/sync/pull", params=params)
            target = page["stable_bundle_seq"]
            for bundle in page["bundles"]:
                rows += len(bundle["rows"])
                after = bundle["bundle_seq"]
            if not page["has_more"] or after >= target:
                return rows

    def snapshot_all(self, page_rows: int = PAGE_ROWS) -> int:
        """Create a snapshot, page through all of it, delete it; rows received."""
        created = self.call("POST", "/sync/snapshot-sessions")
        snapshot_id = created["snapshot_id"]
        rows, after = 0, 0
        while True:
            page = self.call(
                "GET",
                f"/sync/snapshot-sessions/{snapshot_id}",
                params={"after_row_ordinal": after, "max_rows": page_rows},
            )
            rows += len(page["rows"])
            after = page["next_row_ordinal"]
            if not page["has_more"]:
                break
        self.http.request("DELETE", f"/sync/snapshot-sessions/{snapshot_id}")
        if rows != created["row_count"]:
            raise RuntimeError(f"snapshot returned {rows} of {created['row_count']} rows")
        return rows


class AsyncDevice:
    """The same client on asyncio, for many concurrent devices in one lean process."""

    def __init__(self, base: str, user: str, source: str) -> None:
        self.user = user
        self.http = AsyncConnection(base, _headers(user, source))
        self.next_bundle = 1

    async def close(self) -> None:
        await self.http.close()

    async def call(self, method: str, path: str, body: bytes | None = None) -> Any:
        return _check(method, path, await self.http.request(method, path, body))

    async def connect(self) -> None:
        await self.call("POST", "/sync/connect", b'{"has_local_pending_rows":false}')

    async def push(self, rows: list[Row]) -> int:
        """create + chunks + commit of one bundle; its bundle_seq."""
        created = await self.call(
            "POST", "/sync/push-sessions", _create_body(self.next_bundle, len(rows))
        )
        push_id = created["push_id"]
        for start in range(0, len(rows), CHUNK_ROWS):
            await self.call(
                "POST",
                f"/sync/push-sessions/{push_id}/chunks",
                _chunk_body(start, rows[start : start + CHUNK_ROWS]),
            )
        commit = await self.call("POST", f"/sync/push-sessions/{push_id}/commit")
        self.next_bundle += 1
        return int(commit["bundle_seq"])
