"""Helpers for the SDK tests: the SQLite mirror of the example schema and a device wrapper."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from oversqlite import Client, ClientConfig, KeyKind, RetryPolicy, SyncTable
from oversqlite._capture import fold_capture_log
from oversqlite._store import begin_immediate

# protocol.md §15.5: same column names as business.*; uuid keys as TEXT except files and
# file_reviews (16-byte BLOB uuids); timestamps as TEXT; bytea as BLOB.
BUSINESS_SQLITE_SCHEMA = """
CREATE TABLE users (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    created_at TEXT, updated_at TEXT);
CREATE TABLE posts (
    id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL,
    author_id TEXT REFERENCES users (id), created_at TEXT, updated_at TEXT);
CREATE TABLE categories (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL,
    parent_id TEXT REFERENCES categories (id) ON DELETE CASCADE);
CREATE TABLE teams (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL,
    captain_member_id TEXT REFERENCES team_members (id) DEFERRABLE INITIALLY DEFERRED);
CREATE TABLE team_members (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL,
    team_id TEXT NOT NULL REFERENCES teams (id) ON DELETE CASCADE);
CREATE TABLE files (id BLOB PRIMARY KEY NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE file_reviews (
    id BLOB PRIMARY KEY NOT NULL, review TEXT NOT NULL,
    file_id BLOB NOT NULL REFERENCES files (id) ON DELETE CASCADE);
CREATE TABLE typed_rows (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, note TEXT, count_value INTEGER,
    enabled_flag INTEGER NOT NULL, rating REAL, data BLOB, created_at TEXT);
"""

TEXT_TABLES = ("users", "posts", "categories", "teams", "team_members", "typed_rows")
BLOB_TABLES = ("files", "file_reviews")
ALL_TABLES = (*TEXT_TABLES, *BLOB_TABLES)
FAST_RETRY = RetryPolicy(max_attempts=3, initial_backoff=0.001, max_backoff=0.005)


def new_id() -> str:
    return str(uuid.uuid4())


def business_db(path: Path) -> Path:
    conn = sqlite3.connect(path)
    conn.executescript(BUSINESS_SQLITE_SCHEMA)
    conn.close()
    return path


def business_config(**overrides: Any) -> ClientConfig:
    tables = [SyncTable(name, key_kind=KeyKind.UUID) for name in TEXT_TABLES]
    tables += [SyncTable(name) for name in BLOB_TABLES]
    settings: dict[str, Any] = {"retry": FAST_RETRY, "tables": tables, **overrides}
    return ClientConfig(schema="business", **settings)


def app_connection(path: Path) -> sqlite3.Connection:
    """The application's own connection (autocommit, foreign keys on)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def fold(conn: sqlite3.Connection) -> None:
    """Fold the capture log into ``_sync_dirty_rows``, as the SDK's next write transaction does
    (tests that read or rewrite the state tables directly call it first)."""
    if conn.in_transaction:
        fold_capture_log(conn)
        return
    begin_immediate(conn)
    conn.execute("COMMIT")


class Crash(BaseException):
    """Raised by a fault to simulate the client process dying at that point."""


_OPERATIONS = (
    ("GET", r"/sync/capabilities", "capabilities"),
    ("POST", r"/sync/connect", "connect"),
    ("POST", r"/sync/push-sessions", "create_push"),
    ("POST", r"/sync/push-sessions/[^/]+/chunks", "chunk"),
    ("POST", r"/sync/push-sessions/[^/]+/commit", "commit"),
    ("DELETE", r"/sync/push-sessions/[^/]+", "delete_push"),
    ("GET", r"/sync/committed-bundles/\d+/rows", "committed_rows"),
    ("GET", r"/sync/pull", "pull"),
    ("POST", r"/sync/snapshot-sessions", "create_snapshot"),
    ("GET", r"/sync/snapshot-sessions/[^/]+", "snapshot_chunk"),
    ("DELETE", r"/sync/snapshot-sessions/[^/]+", "delete_snapshot"),
)


def operation_of(request: httpx.Request) -> str:
    for method, pattern, name in _OPERATIONS:
        if request.method == method and re.fullmatch(pattern, request.url.path):
            return name
    return f"{request.method} {request.url.path}"


@dataclass
class _Rule:
    operation: str
    action: Callable[[httpx.Request, httpx.Response | None], httpx.Response | None]
    after: bool
    times: int


def server_sql(database_url: str, statement: str, *args: Any) -> list[asyncpg.Record]:
    """Run one statement on a server's database from synchronous test code."""

    async def run() -> list[asyncpg.Record]:
        conn = await asyncpg.connect(database_url)
        try:
            return list(await conn.fetch(statement, *args))
        finally:
            await conn.close()

    return asyncio.run(run())


class FaultTransport(httpx.BaseTransport):
    """Wraps a transport; injects faults per protocol operation (works for any server)."""

    def __init__(self, inner: httpx.BaseTransport) -> None:
        self.inner = inner
        self.rules: list[_Rule] = []
        self.log: list[str] = []
        self.bodies: list[tuple[str, bytes]] = []

    def _add(self, operation: str, action: Any, *, after: bool, times: int) -> None:
        self.rules.append(_Rule(operation, action, after, times))

    def fail(
        self, operation: str, status: int = 503, *, code: str = "injected", times: int = 1
    ) -> None:
        """Answer with ``status`` instead of sending the request."""
        body = {"error": code, "message": f"injected {operation} failure"}
        self._add(
            operation, lambda r, _: httpx.Response(status, json=body), after=False, times=times
        )

    def drop_response(self, operation: str, times: int = 1) -> None:
        """Send the request, then lose the answer (a network failure after the server acted)."""

        def drop(request: httpx.Request, _: httpx.Response | None) -> None:
            raise httpx.ReadError("injected: connection lost", request=request)

        self._add(operation, drop, after=True, times=times)

    def crash(self, operation: str, *, after: bool = True) -> None:
        """Simulate the process dying before sending or after the server answered."""

        def die(request: httpx.Request, _: httpx.Response | None) -> None:
            raise Crash(operation)

        self._add(operation, die, after=after, times=1)

    def exit_process(self, operation: str) -> None:
        """Kill this process for real once the server has answered ``operation``."""
        self._add(operation, lambda r, _: os._exit(17), after=True, times=1)

    def rewrite(self, operation: str, change: Callable[[dict[str, Any]], None]) -> None:
        """Let the server answer, then alter its JSON body (a broken or hostile server)."""

        def alter(request: httpx.Request, response: httpx.Response | None) -> httpx.Response:
            assert response is not None
            body = response.json()
            change(body)
            return httpx.Response(response.status_code, json=body)

        self._add(operation, alter, after=True, times=1)

    def call(self, operation: str, callback: Callable[[], None], *, after: bool = False) -> None:
        """Run ``callback`` (e.g. an application write) around ``operation``."""

        def run(request: httpx.Request, response: httpx.Response | None) -> httpx.Response | None:
            callback()
            return response

        self._add(operation, run, after=after, times=1)

    def _rule(self, operation: str, after: bool) -> _Rule | None:
        for rule in self.rules:
            if rule.operation == operation and rule.after == after and rule.times > 0:
                rule.times -= 1
                return rule
        return None

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        operation = operation_of(request)
        self.log.append(operation)
        self.bodies.append((operation, request.read()))
        rule = self._rule(operation, after=False)
        if rule is not None:
            answer = rule.action(request, None)
            if answer is not None:
                return answer
        response = self.inner.handle_request(request)
        rule = self._rule(operation, after=True)
        if rule is not None:
            response.read()
            answer = rule.action(request, response)
            if answer is not None:
                return answer
        return response

    def close(self) -> None:
        self.inner.close()


class Device:
    """One SQLite file with its client and an application connection."""

    def __init__(
        self,
        path: Path,
        *,
        base_url: str,
        token: Any,
        transport: httpx.BaseTransport | None = None,
        config: ClientConfig | None = None,
    ) -> None:
        self.path = path
        self._base_url, self._token, self._transport = base_url, token, transport
        self.config = config or business_config()
        if not path.exists():
            business_db(path)
        self.db = app_connection(path)
        self.client = self._make_client()

    def _make_client(self) -> Client:
        return Client(
            self.path,
            self.config,
            base_url=self._base_url,
            token=self._token,
            transport=self._transport,
        ).open()

    @property
    def faults(self) -> FaultTransport:
        assert isinstance(self._transport, FaultTransport)
        return self._transport

    def reopen(self) -> None:
        """Close the client (an open transaction rolls back, as in a crash) and open anew."""
        self.client.close()
        self.client = self._make_client()

    def close(self) -> None:
        self.client.close()
        self.db.close()

    def execute(self, sql: str, *params: Any) -> None:
        self.db.execute(sql, params)

    def rows(self, table: str) -> list[tuple[Any, ...]]:
        return self.db.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()

    def everything(self) -> dict[str, list[tuple[Any, ...]]]:
        return {table: self.rows(table) for table in ALL_TABLES}

    def one(self, sql: str, *params: Any) -> Any:
        row = self.db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def dirty(self) -> list[tuple[Any, ...]]:
        fold(self.db)
        return self.db.execute(
            "SELECT table_name, pk, base_row_version FROM _sync_dirty_rows ORDER BY dirty_ordinal"
        ).fetchall()


class Backend:
    """The sync server of a scenario test: a real server process."""

    name = ""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.devices: list[Device] = []

    def inner_transport(self) -> httpx.BaseTransport:
        raise NotImplementedError

    def base_url(self) -> str:
        raise NotImplementedError

    def token(self, user: str) -> Any:
        raise NotImplementedError

    def set_floor(self, user: str, floor: int) -> None:
        raise NotImplementedError

    def device(self, name: str, user: str = "alice", **overrides: Any) -> Device:
        config = business_config(**overrides) if overrides else None
        device = Device(
            self.root / f"{name}.db",
            base_url=self.base_url(),
            token=self.token(user),
            transport=FaultTransport(self.inner_transport()),
            config=config,
        )
        self.devices.append(device)
        return device

    def close(self) -> None:
        for device in self.devices:
            device.close()


class ServerBackend(Backend):
    name = "server"

    def __init__(self, root: Path, server: Any) -> None:
        super().__init__(root)
        self.server = server

    def inner_transport(self) -> httpx.BaseTransport:
        return httpx.HTTPTransport()

    def base_url(self) -> str:
        return str(self.server.base_url)

    def token(self, user: str) -> Any:
        return lambda: self.server.token(user)

    def set_floor(self, user: str, floor: int) -> None:
        answer = httpx.post(
            f"{self.server.base_url}/test/retention-floor",
            json={"user_id": user, "retained_bundle_floor": floor},
        )
        assert answer.status_code == 200, answer.text
