"""Service configuration: the registered tables, the protocol limits and the process settings.

One pydantic-settings model, `ServiceConfig`. From Python, `ServiceConfig(registered_tables=...,
pool_max_size=...)` is exactly what it is given (the environment is not read). `serve` builds it
with `load_settings`: defaults, then the config file (JSON or YAML, the same field names), then
`OVERSYNC_<FIELD>` environment variables, then the command line's flags, each over the one
before. A bad value stops with a `ConfigError` that names the setting, where it came from and
what is wrong. Adding a setting is one field here (with a comment when the why is not obvious)
plus its line in `docs/hooks/settings_reference.py`. Defaults follow the reference server.
"""

from __future__ import annotations

import contextvars
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

PROTOCOL_VERSION = "v1"
MAX_BUNDLES_PER_PULL = 5000
DEFAULT_BUNDLES_PER_PULL = 1000
WATCH_NOTIFY_CHANNEL = "oversync_bundle_change_v1"
ENV_PREFIX = "OVERSYNC_"

_IDENTIFIER = re.compile(r"^[a-z0-9_]+$")
LogLevel = Literal["critical", "error", "warning", "info", "debug", "trace"]
SnapshotStorage = Literal["pages", "reference"]


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


def _table_entry(entry: Any) -> RegisteredTable:
    """A config file's table entry: `"schema.table"` or `{schema, table, sync_key_columns}`."""
    if isinstance(entry, RegisteredTable):
        return entry
    if isinstance(entry, str):
        schema, _, table = entry.rpartition(".")
        return RegisteredTable(schema or "public", table)
    if isinstance(entry, Mapping) and isinstance(entry.get("table"), str):
        unknown = sorted(set(entry) - {"schema", "table", "sync_key_columns"})
        if unknown:
            raise ConfigError(f"registered table {entry['table']}: unknown keys {unknown}")
        columns = entry.get("sync_key_columns", ["id"])
        if isinstance(columns, str) or not isinstance(columns, list | tuple):
            raise ConfigError(f"registered table {entry['table']}: sync_key_columns is a list")
        return RegisteredTable(entry.get("schema") or "public", entry["table"], tuple(columns))
    raise ConfigError(f"entry {entry!r} must be a string or a mapping with a table")


# Where the settings being validated came from (`load_settings`), for the error messages of
# `ServiceConfig.__init__`: a setting's name, or its variable, flag or file.
_SOURCES: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "sources", default=None
)

# Settings only a file can give (a list of mappings has no sensible environment form).
FILE_ONLY = frozenset({"registered_tables"})
# Integer settings that must be at least 1 (the others are >= 0, 0 meaning off or unlimited).
_AT_LEAST_ONE = (
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
)


class ServiceConfig(BaseSettings):
    """What the sync service serves and its limits (seconds for TTLs, 0 = unlimited for sizes)."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="forbid"
    )

    registered_tables: tuple[RegisteredTable, ...] = ()
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
    # Where a created snapshot session keeps its rows: "pages" (`sync.snapshot_pages`, our
    # extra table, rendered once) or "reference" (one `sync.snapshot_session_rows` row per
    # row, as the Go server writes them, so a Go server sharing the database can page it).
    snapshot_storage: SnapshotStorage = "pages"
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
    http_parser: Literal["httptools", "h11"] = "httptools"
    # PostgreSQL pool of each server process, and how long a request waits for a connection.
    pool_min_size: int = 1
    pool_max_size: int = 10
    pool_acquire_timeout_seconds: float = 10.0
    # `session` (direct, or a session-mode pooler) or `transaction` (a PgBouncer in transaction
    # pooling mode: per-user locks and session timeouts become transaction-scoped; see
    # engine/txpool.py). The watch listener's LISTEN needs a real session: with `transaction`,
    # `watch_database_url` names a direct or session-mode URL for it (empty = the main URL).
    pool_mode: Literal["session", "transaction"] = "session"
    watch_database_url: str = ""
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
    # The sync inspector (`/inspector`, a read-only HTML page for operators) is on only when
    # this admin token is set; it is its own credential, not a sync user's JWT.
    inspector_token: str | None = None
    # ---- the server process (`oversync-server serve`; flags override these)
    # Where it listens. Behind a reverse proxy keep 127.0.0.1 (docs/server/deployment.md).
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: LogLevel = "info"
    # Browser origins answered with CORS headers: `*` (any), a list (the request's Origin is
    # echoed when listed), or empty (no CORS headers). Environment: comma-separated.
    cors_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ("*",)
    # Behind a proxy: trust X-Forwarded-For/-Proto from these addresses (comma-separated, `*` =
    # any) for the client address and scheme; the path prefix the proxy serves the API under.
    proxy_headers: bool = True
    forwarded_allow_ips: str = "127.0.0.1"
    root_path: str = ""
    # Development endpoints (/dummy-signin, /test/*) and the built-in JWT secret: never in
    # production (`--dev`).
    dev_endpoints: bool = False
    # The PostgreSQL to serve (also read from DATABASE_URL). Empty: a local development
    # PostgreSQL of its own, with its data in `pgdata` (empty: the per-user default) on
    # 127.0.0.1:`pgport` (0: a free port at each start).
    database_url: str = ""
    pgdata: str = ""
    pgport: int = 15432
    # ---- authentication (docs/server/auth.md): the shared secret is OVERSYNC_JWT_SECRET; the
    # rest verifies tokens of an identity provider. Lists are comma-separated ("" = not checked;
    # no algorithms = every one the configured keys can verify).
    jwt_algorithms: str = ""
    jwt_public_key_file: str = ""
    jwt_jwks_url: str = ""
    jwt_jwks_cache_seconds: float = 300.0
    jwt_jwks_refetch_seconds: float = 30.0
    jwt_jwks_timeout_seconds: float = 5.0
    jwt_issuer: str = ""
    jwt_audience: str = ""
    jwt_user_claim: str = "sub"
    jwt_leeway_seconds: float = 0.0
    # ---- observability (docs/server/monitoring.md): one log line per request, text or json;
    # Prometheus metrics at GET /metrics.
    log_format: Literal["text", "json"] = "text"
    metrics_enabled: bool = True

    def __init__(self, *tables: Any, **values: Any) -> None:
        # `ServiceConfig(tables, ...)`: the table list may come first, unnamed
        if tables:
            (values["registered_tables"],) = tables
        try:
            super().__init__(**values)
        except ValidationError as error:
            raise ConfigError(describe(error, _SOURCES.get())) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Built from Python, a config is exactly its arguments; `load_settings` layers the
        # file, the environment and the flags explicitly.
        return (init_settings,)

    @field_validator("registered_tables", mode="before")
    @classmethod
    def _tables(cls, value: Any) -> tuple[RegisteredTable, ...]:
        if isinstance(value, str) or not isinstance(value, list | tuple):
            raise ConfigError("must be a list of tables")
        tables = sorted(
            (_table_entry(entry).normalized() for entry in value),
            key=lambda table: table.qualified_name.encode(),
        )
        names = [table.qualified_name for table in tables]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ConfigError(f"tables registered twice: {', '.join(duplicates)}")
        return tuple(tables)

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if isinstance(value, str):  # the environment's comma-separated form
            return tuple(origin.strip() for origin in value.split(",") if origin.strip())
        return value

    @field_validator("log_level", mode="before")
    @classmethod
    def _log_level(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("root_path")
    @classmethod
    def _root_path(cls, value: str) -> str:
        if value and (not value.startswith("/") or value.endswith("/")):
            raise ConfigError("must be empty or a path like /oversync (leading /, no trailing /)")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        if value and not value.startswith(("postgresql://", "postgres://")):
            raise ConfigError("must be a postgresql:// URL")
        return value

    @field_validator("port", "pgport")
    @classmethod
    def _port(cls, value: int) -> int:
        if not 0 <= value <= 65535:
            raise ConfigError(f"must be a TCP port (0-65535), got {value}")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> ServiceConfig:
        for name, value in self:
            if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
                raise ConfigError(f"{name} must be >= 0, got {value}")
        for name in _AT_LEAST_ONE:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        watching = self.bundle_change_watch and not self.watch_database_url
        if self.pool_mode == "transaction" and watching:
            raise ConfigError(
                "pool_mode transaction needs watch_database_url: the watch listener's LISTEN"
                " does not work through a transaction-pooling PgBouncer; give it a direct or"
                " session-mode URL (or set bundle_change_watch: false)"
            )
        if self.jwt_jwks_timeout_seconds <= 0:
            raise ConfigError("jwt_jwks_timeout_seconds must be > 0")
        if self.pool_min_size > self.pool_max_size:
            raise ConfigError("pool_min_size must be <= pool_max_size")
        if 0 < self.max_client_schema_version < self.min_client_schema_version:
            raise ConfigError(
                "min_client_schema_version must be <= max_client_schema_version"
                f" (got {self.min_client_schema_version} > {self.max_client_schema_version};"
                " a max_client_schema_version of 0 means no upper bound)"
            )
        return self

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
        """A copy with `changes`, validated like a new config."""
        return type(self)(**{**dict(self), **changes})


# ------------------------------------------------------------------ settings and their sources
def settings() -> dict[str, FieldInfo]:
    """Every setting but the table list, by name, in declaration order."""
    return {
        name: info for name, info in ServiceConfig.model_fields.items() if name not in FILE_ONLY
    }


def env_name(setting: str) -> str:
    """The environment variable of a setting: `OVERSYNC_<SETTING>`."""
    return f"{ENV_PREFIX}{setting.upper()}"


def default_text(setting: str) -> str:
    """A setting's default as `serve --help` and the docs show it."""
    value = ServiceConfig.model_fields[setting].default
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        return ",".join(value)
    return str(value) if value != "" else '""'


def describe(error: ValidationError, where: Mapping[str, str] | None = None) -> str:
    """One clear line per problem: the setting (as `where` names its source: a variable, a
    flag or a file), what is wrong, and the value given."""
    where = where or {}
    problems = []
    for item in error.errors(include_url=False):
        message = str(item["msg"]).removeprefix("Value error, ")
        field = str(item["loc"][0]) if item["loc"] else ""
        if not field:  # a rule across settings: its message names them; say where they came from
            named = [where[name] for name in where if re.search(rf"\b{name}\b", message)]
            sources = [name for name in named if " " in name or not name.islower()]
            problems.append(message + (f" (from {', '.join(sources)})" if sources else ""))
            continue
        if item["type"] == "extra_forbidden":
            problems.append(f"{where.get(field, field)}: unknown setting")
            continue
        value = item.get("input")
        shown = (
            "" if item["type"] == "value_error" or isinstance(value, dict) else f", got {value!r}"
        )
        problems.append(f"{where.get(field, field)}: {message}{shown}")
    return "; ".join(problems)


class _Environment(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of `os.environ`."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(ServiceConfig)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(
            dict(self._environ), self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name in FILE_ONLY:
            return None, field_name, False
        return super().get_field_value(field, field_name)


def environment_settings(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings `OVERSYNC_<SETTING>` variables give (empty ones are not set), and the
    conventional `DATABASE_URL` when `OVERSYNC_DATABASE_URL` is not set."""
    values = dict(_Environment(environ)())
    if "database_url" not in values and environ.get("DATABASE_URL", "").strip():
        values["database_url"] = environ["DATABASE_URL"].strip()
    return values


def read_config_file(path: Path) -> dict[str, Any]:
    """The mapping in a JSON or YAML configuration file."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration: {error.strerror}") from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except ValueError as error:  # json.JSONDecodeError and yaml.YAMLError both are
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.').upper()}: {error}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the configuration must be a mapping of settings")
    return data


def config_from_mapping(
    data: Mapping[str, Any], where: Mapping[str, str] | None = None
) -> ServiceConfig:
    """Validate settings given as a mapping (a config file's); errors name `where[setting]`."""
    token = _SOURCES.set(where or {})
    try:
        return ServiceConfig(**data)
    finally:
        _SOURCES.reset(token)


def load_config(path: Path) -> ServiceConfig:
    """Read a JSON or YAML configuration file (nothing from the environment)."""
    data = read_config_file(path)
    return config_from_mapping(data, {key: f"{path}: {key}" for key in data})


def apply_env(config: ServiceConfig, environ: Mapping[str, str]) -> ServiceConfig:
    """`config` with `environ`'s `OVERSYNC_*` settings over it; errors name the variables."""
    values = environment_settings(environ)
    token = _SOURCES.set({key: env_name(key) for key in values})
    try:
        return config.with_changes(**values)
    finally:
        _SOURCES.reset(token)


def load_settings(
    path: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    override_names: Mapping[str, str] | None = None,
) -> ServiceConfig:
    """The configuration `serve` runs with: defaults < the file at `path` < `environ`'s
    `OVERSYNC_*` variables < `overrides` (command-line flags, named by `override_names`)."""
    layers: list[tuple[dict[str, Any], dict[str, str]]] = []
    if path is not None:
        data = read_config_file(path)
        layers.append((data, {key: f"{path}: {key}" for key in data}))
    if environ is not None:
        values = environment_settings(environ)
        names = {key: env_name(key) for key in values}
        if "database_url" in values and not environ.get(env_name("database_url"), "").strip():
            names["database_url"] = "DATABASE_URL"
        layers.append((values, names))
    given = {key: value for key, value in (overrides or {}).items() if value is not None}
    layers.append((given, {key: (override_names or {}).get(key, key) for key in given}))
    merged: dict[str, Any] = {}
    where: dict[str, str] = {}
    for values, names in layers:
        merged.update(values)
        where.update(names)
    return config_from_mapping(merged, where)
