"""Helpers for the schema-change tests: a restartable real server and devices of two app versions.

The server runs on the example schema with the dev endpoints; `ChangingServer.sql(...)` changes
the business tables through asyncpg, and `restart(**config)` stops the process and starts it
again on the same database and port (so devices keep their base URL) with config overrides
(e.g. `min_client_schema_version=2`, or more `registered_tables`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import yaml
from sdk_helpers import Device, FaultTransport, business_config, server_sql

from oversqlite import ClientConfig, Migration, SyncTable
from protocol_helpers import EXAMPLE_CONFIG, config_file
from serverproc import ServerProcess

PINNED_SERVER = "ALTER TABLE business.posts ADD COLUMN pinned boolean NOT NULL DEFAULT false"
PINNED_LOCAL = Migration(
    2, sql="ALTER TABLE posts ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0", description="pinned"
)
TAGS_SERVER = """
CREATE TABLE business.tags (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    label TEXT NOT NULL,
    post_id UUID,
    PRIMARY KEY (_sync_scope_id, id),
    CONSTRAINT tags_post_id_fkey FOREIGN KEY (_sync_scope_id, post_id)
        REFERENCES business.posts (_sync_scope_id, id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED
)
"""
TAGS_LOCAL = (
    "CREATE TABLE IF NOT EXISTS tags (id TEXT PRIMARY KEY NOT NULL, label TEXT NOT NULL, "
    "post_id TEXT REFERENCES posts (id) ON DELETE CASCADE)"
)
TAGS_REGISTRATION = {"schema": "business", "table": "tags", "sync_key_columns": ["id"]}


def new_config(**overrides: Any) -> ClientConfig:
    """The app version 2: posts has a `pinned` column (migration 2)."""
    return business_config(migrations=[PINNED_LOCAL], **overrides)


def with_tags() -> ClientConfig:
    """The app version 2 of the new-table story: it also syncs `tags` (migration 2 adds it)."""
    config = business_config(migrations=[Migration(2, sql=TAGS_LOCAL)])
    return dataclasses.replace(config, tables=[*config.tables, SyncTable("tags")])


def registered_with_tags() -> list[dict[str, Any]]:
    example = yaml.safe_load(EXAMPLE_CONFIG.read_text(encoding="utf-8"))
    return [*example["registered_tables"], TAGS_REGISTRATION]


class ChangingServer:
    def __init__(self, database_url: str, root: Path) -> None:
        self.database_url = database_url
        self.root = root
        self.process: ServerProcess | None = None
        self.port = 0
        self.overrides: dict[str, Any] = {}

    # ------------------------------------------------------------------ process

    def start(self, **overrides: Any) -> ChangingServer:
        self.overrides = {**self.overrides, **overrides}
        config = config_file(self.root, **self.overrides)
        process = ServerProcess(
            self.database_url,
            config=config,
            extra_args=("--example-schema", "--dev"),
            port=self.port,
        )
        self.process = process.start(self.root)
        self.port = process.port
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self, **overrides: Any) -> None:
        """Stop and start again on the same database and port (re-reads the table shapes)."""
        self.stop()
        self.start(**overrides)

    @property
    def base_url(self) -> str:
        assert self.process is not None
        return self.process.base_url

    def token(self, user: str) -> str:
        assert self.process is not None
        return self.process.token(user)

    def log(self) -> str:
        return self.process.log() if self.process else ""

    # ------------------------------------------------------------------ database

    def sql(self, statement: str, *args: Any) -> list[asyncpg.Record]:
        return server_sql(self.database_url, statement, *args)

    def posts(self, user: str) -> dict[str, dict[str, Any]]:
        """The server's posts of `user`: id -> row (every column but the scope)."""
        rows = self.sql(
            "SELECT to_jsonb(p) - '_sync_scope_id' AS row FROM business.posts p "
            "WHERE _sync_scope_id = $1",
            user,
        )
        return {r["id"]: r for r in (json.loads(row["row"]) for row in rows)}

    def bundle_count(self) -> int:
        return int(self.sql("SELECT count(*) AS n FROM sync.bundle_log")[0]["n"])

    # ------------------------------------------------------------------ devices

    def device(self, path: Path, user: str = "alice", config: ClientConfig | None = None) -> Device:
        return Device(
            path,
            base_url=self.base_url,
            token=lambda: self.token(user),
            transport=FaultTransport(httpx.HTTPTransport()),
            config=config or business_config(),
        )
