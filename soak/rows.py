"""The managed tables of the soak and their comparable form, on a device and on the server.

Rows are compared as ``{table: {key: (columns...)}}`` with uuids as dashed text and blobs as
their SHA-256, so a SQLite device and the PostgreSQL server give the same value for the same row.
"""

from __future__ import annotations

import hashlib
import sqlite3
import uuid
from typing import Any

import asyncpg

# The part of the example server's business schema the soak syncs (as examples/two_devices.py).
SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id TEXT PRIMARY KEY NOT NULL, name TEXT NOT NULL, email TEXT NOT NULL,
    created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS posts (
    id TEXT PRIMARY KEY NOT NULL, title TEXT NOT NULL, content TEXT NOT NULL,
    author_id TEXT REFERENCES users (id), created_at TEXT, updated_at TEXT);
CREATE TABLE IF NOT EXISTS files (id BLOB PRIMARY KEY NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS file_reviews (
    id BLOB PRIMARY KEY NOT NULL, review TEXT NOT NULL,
    file_id BLOB NOT NULL REFERENCES files (id) ON DELETE CASCADE);
"""
TABLES = ("users", "posts", "files", "file_reviews")
# Every write sets this column to a fresh, globally unique tag: a row's tag names its write.
TAG_COLUMN = {"users": "name", "posts": "title", "files": "name", "file_reviews": "review"}

Rows = dict[str, dict[str, list[Any]]]

_DEVICE_QUERIES = {
    "users": "SELECT id, name, email FROM users",
    "posts": "SELECT id, title, content, author_id FROM posts",
    "files": "SELECT id, name, data FROM files",
    "file_reviews": "SELECT id, review, file_id FROM file_reviews",
}
_SERVER_QUERIES = {
    "users": "SELECT id::text, name, email FROM business.users WHERE _sync_scope_id = $1",
    "posts": "SELECT id::text, title, content, author_id::text FROM business.posts"
    " WHERE _sync_scope_id = $1",
    "files": "SELECT id::text, name, data FROM business.files WHERE _sync_scope_id = $1",
    "file_reviews": "SELECT id::text, review, file_id::text FROM business.file_reviews"
    " WHERE _sync_scope_id = $1",
}


def comparable(value: Any, *, blob_is_uuid: bool = False) -> Any:
    """One column value as the checker compares it (uuid BLOBs as text, data as its hash)."""
    if isinstance(value, bytes | memoryview):
        raw = bytes(value)
        if blob_is_uuid:
            return str(uuid.UUID(bytes=raw))
        return "sha256:" + hashlib.sha256(raw).hexdigest()
    return value


def _row(table: str, row: tuple[Any, ...] | asyncpg.Record) -> tuple[str, list[Any]]:
    values = list(row)
    uuid_positions = {0, 2} if table == "file_reviews" else {0}
    out = [comparable(v, blob_is_uuid=i in uuid_positions) for i, v in enumerate(values)]
    return str(out[0]), out[1:]


def device_rows(db: sqlite3.Connection) -> Rows:
    return {
        table: dict(_row(table, row) for row in db.execute(query))
        for table, query in _DEVICE_QUERIES.items()
    }


async def server_rows(conn: asyncpg.Connection, user_id: str) -> Rows:
    rows: Rows = {}
    for table, query in _SERVER_QUERIES.items():
        rows[table] = dict(_row(table, row) for row in await conn.fetch(query, user_id))
    return rows
