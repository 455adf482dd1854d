"""Service configuration: the registered tables and the protocol limits.

Usable from Python (`ServiceConfig(...)`) and from a file (`load_config(path)`, JSON or YAML with
the same field names). Defaults follow the reference server.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

PROTOCOL_VERSION = "v1"
MAX_BUNDLES_PER_PULL = 5000
DEFAULT_BUNDLES_PER_PULL = 1000
WATCH_NOTIFY_CHANNEL = "oversync_bundle_change_v1"

_IDENTIFIER = re.compile(r"^[a-z0-9_]+$")


class ConfigError(ValueError):
    """The configuration is unusable; the message says which setting and why."""


@dataclass(frozen=True, slots=True)
class RegisteredTable:
    """A business table that syncs: `schema.table` with exactly one sync key column."""

    schema: str
    table: str
    sync_key_columns: tuple[str, ...] = ("id",)

    @property
    def qualified_name(self) -> str:
        return f"{self.schema}.{self.table}"

    @property
    def sync_key_column(self) -> str:
        return self.sync_key_columns[0]

    def normalized(self) -> RegisteredTable:
        schema = (self.schema or "public").strip().lower() or "public"
        table = self.table.strip().lower()
        columns = tuple(column.strip().lower() for column in self.sync_key_columns)
        for kind, name in (("schema", schema), ("table", table)):
            if not _IDENTIFIER.match(name):
                raise ConfigError(
                    f"registered table {self.schema}.{self.table}: invalid {kind} name"
                )
        if len(columns) != 1 or not columns[0]:
            raise ConfigError(
                f"registered table {schema}.{table}: exactly one sync key column is required,"
                f" got {list(columns)}"
            )
        if columns[0] == "_sync_scope_id":
            raise ConfigError(
                f"registered table {schema}.{table}: the sync key cannot be _sync_scope_id"
            )
        return RegisteredTable(schema, table, columns)


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """What the sync service serves and its limits (seconds for TTLs, 0 = unlimited for sizes)."""

    registered_tables: tuple[RegisteredTable, ...]
    app_name: str = "oversync-py"
    schema_version: int = 1
    # Rows one bundle may hold (pushed rows plus cascades and trigger writes); 0 = unlimited,
    # an explicit choice: the commit's memory and time grow with it.
    max_rows_per_bundle: int = 100_000
    max_bytes_per_bundle: int = 0
    default_rows_per_push_chunk: int = 1000
    max_rows_per_push_chunk: int = 5000
    push_session_ttl_seconds: int = 900
    default_rows_per_committed_bundle_chunk: int = 1000
    max_rows_per_committed_bundle_chunk: int = 5000
    default_rows_per_snapshot_chunk: int = 1000
    max_rows_per_snapshot_chunk: int = 5000
    snapshot_session_ttl_seconds: int = 900
    max_rows_per_snapshot_session: int = 0
    max_bytes_per_snapshot_session: int = 0
    initialization_lease_ttl_seconds: int = 900
    # Retention: keep this many bundles per user (0 = keep everything), pruning at most
    # `retention_prune_batch_size` bundles per commit.
    retained_bundles_per_user: int = 10000
    retention_prune_batch_size: int = 1000
    bundle_change_watch: bool = True
    watch_heartbeat_seconds: float = 25.0
    # ---- operational bounds: no client can hurt another (seconds; 0 = off where noted)
    # HTTP: a request body beyond this is refused while it is read (413); a request head beyond
    # `max_request_header_bytes` answers 431. Heads and bodies must arrive within their
    # timeouts (whole-message deadlines, not idle timers, so a trickle cannot hold a socket);
    # an idle keep-alive connection is closed after `keep_alive_timeout_seconds`.
    max_request_body_bytes: int = 64 * 1024 * 1024
    max_request_header_bytes: int = 32 * 1024
    header_read_timeout_seconds: float = 30.0
    body_read_timeout_seconds: float = 60.0
    keep_alive_timeout_seconds: float = 5.0
    # SIGTERM: stop accepting, answer new sync requests 503, close watch streams, and give
    # in-flight requests this long to finish.
    shutdown_grace_seconds: float = 30.0
    # Server processes of `serve`: a supervisor and this many workers on one listening socket,
    # each with its own event loop and pool (0 = one per CPU core; 1 = a single process).
    workers: int = 0
    # The HTTP/1.1 parser: "httptools" (llhttp, C) or "h11" (pure Python); both keep the
    # limits and deadlines above.
    http_parser: str = "httptools"
    # PostgreSQL pool of each server process, and how long a request waits for a connection.
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_acquire_timeout_seconds: float = 10.0
    # Per-user serialisation: how long a writer waits for its user's turn before a 503.
    user_lock_timeout_seconds: float = 30.0
    # Session settings of every pooled connection (0 = off): row-lock waits, one statement, and
    # a transaction left idle.
    lock_timeout_seconds: float = 10.0
    statement_timeout_seconds: float = 300.0
    idle_in_transaction_timeout_seconds: float = 60.0
    # Pull: a page stops before it exceeds this many bundle bytes (always at least one bundle).
    max_bytes_per_pull: int = 8 * 1024 * 1024
    # Janitor: expired push and snapshot sessions are deleted in batches, outside user locks.
    janitor_interval_seconds: float = 30.0
    janitor_batch_size: int = 1000
    # Live snapshot sessions per user (a new one of the same source replaces its older one).
    max_snapshot_sessions_per_user: int = 4
    # Watch streams per user and per server process (0 = unlimited).
    max_watch_streams_per_user: int = 16
    max_watch_streams_per_process: int = 2000
    # The version gate (oversync-py extension, docs/schema-changes.md): the app schema versions
    # (the `schema_version` a client declares for its local tables) this server serves,
    # advertised as capabilities `client_schema_versions`. A client outside the range must
    # upgrade before it syncs. 0 as the maximum means no upper bound.
    min_client_schema_version: int = 0
    max_client_schema_version: int = 0

    def __post_init__(self) -> None:
        tables = tuple(
            sorted(
                (table.normalized() for table in self.registered_tables),
                key=lambda table: table.qualified_name.encode(),
            )
        )
        names = [table.qualified_name for table in tables]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"tables registered twice: {', '.join(duplicates)}")
        object.__setattr__(self, "registered_tables", tables)
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{item.name} must be >= 0, got {value}")
        for name in (
            "default_rows_per_push_chunk",
            "max_rows_per_push_chunk",
            "push_session_ttl_seconds",
            "default_rows_per_committed_bundle_chunk",
            "max_rows_per_committed_bundle_chunk",
            "default_rows_per_snapshot_chunk",
            "max_rows_per_snapshot_chunk",
            "snapshot_session_ttl_seconds",
            "initialization_lease_ttl_seconds",
            "retention_prune_batch_size",
            "pool_min_size",
            "pool_max_size",
            "janitor_batch_size",
            "max_snapshot_sessions_per_user",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if self.http_parser not in ("httptools", "h11"):
            raise ConfigError(f"http_parser must be httptools or h11, got {self.http_parser!r}")
        if self.pool_min_size > self.pool_max_size:
            raise ConfigError("pool_min_size must be <= pool_max_size")
        if 0 < self.max_client_schema_version < self.min_client_schema_version:
            raise ConfigError(
                "min_client_schema_version must be <= max_client_schema_version"
                f" (got {self.min_client_schema_version} > {self.max_client_schema_version};"
                " a max_client_schema_version of 0 means no upper bound)"
            )

    def table(self, schema: str, table: str) -> RegisteredTable | None:
        return self.tables_by_name().get(f"{schema}.{table}")

    def tables_by_name(self) -> dict[str, RegisteredTable]:
        return {table.qualified_name: table for table in self.registered_tables}

    def table_ids(self) -> dict[str, int]:
        """The table ids the reference would assign: 1-based positions in the bytewise-sorted
        `schema.table` list. Only right for a fresh sync schema: once it exists, ids are what
        `sync.table_catalog` stores (a table registered later gets the next free id), so use
        the bootstrapped `Catalog`, never this, to map names to ids."""
        return {
            table.qualified_name: index for index, table in enumerate(self.registered_tables, 1)
        }

    def with_changes(self, **changes: Any) -> ServiceConfig:
        return replace(self, **changes)


def config_from_mapping(data: dict[str, Any]) -> ServiceConfig:
    known = {item.name for item in fields(ServiceConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"unknown configuration keys: {', '.join(unknown)}")
    raw_tables = data.get("registered_tables")
    if not isinstance(raw_tables, list) or not raw_tables:
        raise ConfigError("registered_tables must be a non-empty list")
    tables = []
    for entry in raw_tables:
        if isinstance(entry, str):
            schema, _, table = entry.rpartition(".")
            tables.append(RegisteredTable(schema or "public", table))
        elif isinstance(entry, dict):
            columns = entry.get("sync_key_columns", ["id"])
            tables.append(
                RegisteredTable(entry.get("schema", "public"), entry["table"], tuple(columns))
            )
        else:
            raise ConfigError(f"registered_tables entry {entry!r} must be a string or a mapping")
    return ServiceConfig(**{**data, "registered_tables": tuple(tables)})


def load_config(path: Path) -> ServiceConfig:
    """Read a JSON or YAML configuration file."""
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        data = yaml.safe_load(text)
    else:
        data = json.loads(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping")
    return config_from_mapping(data)
