"""Client configuration: which tables are synced and how the client talks to the server."""

from __future__ import annotations

import enum
import itertools
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from oversqlite._conflicts import ConflictResolver, server_wins

__all__ = [
    "BASE_SCHEMA_VERSION",
    "DEFAULT_CAPABILITIES_TTL",
    "DEFAULT_CHUNK_ROWS",
    "DEFAULT_HTTP_TIMEOUT",
    "DEFAULT_MAX_BUNDLE_ROWS",
    "DEFAULT_MAX_CONFLICT_RETRIES",
    "DEFAULT_RETRY_POLICY",
    "MAX_CHUNK_ROWS",
    "ClientConfig",
    "ForeignKeyCheck",
    "KeyKind",
    "Migration",
    "RetryPolicy",
    "SyncTable",
]

DEFAULT_CHUNK_ROWS = 1000
# The protocol's hard limits: bigger push chunks or pull pages are rejected with a 400.
MAX_CHUNK_ROWS = 5000
DEFAULT_HTTP_TIMEOUT = 120.0
DEFAULT_BUSY_TIMEOUT = 30.0
# The server reports one conflicting row per attempt, so N conflicting rows need N retries.
DEFAULT_MAX_CONFLICT_RETRIES = 5
# The local schema version of tables as the app's first release creates them; migrations
# produce the versions after it.
BASE_SCHEMA_VERSION = 1
# Rows per pushed bundle at most (the server's max_rows_per_bundle may be lower): bounds the
# client's memory whatever is pending; each bundle is atomic on its own.
DEFAULT_MAX_BUNDLE_ROWS = 10_000
# How long the server's capabilities (bundle limits, the version gate) are trusted.
DEFAULT_CAPABILITIES_TTL = 60.0


class KeyKind(enum.StrEnum):
    """How a table's sync key is stored locally and sent on the wire."""

    TEXT = "text"
    """Any non-empty text, sent unchanged (server key type ``text``)."""
    UUID = "uuid"
    """Canonical lowercase dashed UUID text (server key type ``uuid``)."""
    BLOB_UUID = "blob_uuid"
    """A 16-byte BLOB, sent as a dashed lowercase UUID (server key type ``uuid``)."""


class ForeignKeyCheck(enum.StrEnum):
    """What ``open()``/``attach()`` do about SQLite foreign keys of managed tables.

    SQLite enforces foreign keys only on connections that ran ``PRAGMA foreign_keys = ON``;
    an app connection without it can delete a referenced row, which the server then refuses
    (the change lands in the rejected changes).
    """

    WARN = "warn"
    """Log a warning when managed tables have foreign keys that SQLite does not enforce by
    default, and list rows that violate them (the default)."""
    REFUSE = "refuse"
    """Like ``WARN``, but raise :class:`~oversqlite.ConfigError` when managed rows violate
    their foreign keys (written by a connection with foreign keys off)."""
    IGNORE = "ignore"
    """Check nothing."""


@dataclass(frozen=True)
class SyncTable:
    """One managed table.

    ``key_kind`` is inferred from the key column's declared type when omitted: ``BLOB`` gives
    ``BLOB_UUID``, ``UUID`` gives ``UUID``, ``TEXT``/``CHAR``/``CLOB`` give ``TEXT``. Pass
    ``KeyKind.UUID`` for a TEXT column that holds UUIDs, so malformed keys are refused at write
    time rather than by the server. ``uuid_columns`` names further BLOB columns that hold 16-byte
    UUIDs (BLOB foreign keys to a ``BLOB_UUID`` key are detected automatically).

    >>> SyncTable("files", key_column="id", uuid_columns=("owner_id",))
    SyncTable(name='files', key_column='id', key_kind=None, uuid_columns=('owner_id',))
    """

    name: str
    key_column: str = "id"
    key_kind: KeyKind | None = None
    uuid_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise ValueError("SyncTable.name must not be empty")
        if not self.key_column.strip():
            raise ValueError(f"SyncTable {self.name!r}: key_column must not be empty")
        object.__setattr__(self, "uuid_columns", tuple(self.uuid_columns))


@dataclass(frozen=True)
class RetryPolicy:
    """Retries with exponential backoff for transport errors and 429/502/503/504 answers.

    The delay before retry *n* is ``initial_backoff * 2**(n-1)`` capped at ``max_backoff``, with
    ``± jitter`` of it added at random; a ``Retry-After`` header (capped at ``max_backoff``) wins.

    >>> RetryPolicy(max_attempts=5, initial_backoff=0.2, max_backoff=5.0)
    RetryPolicy(max_attempts=5, initial_backoff=0.2, max_backoff=5.0, jitter=0.2)
    >>> RetryPolicy.disabled().max_attempts
    1
    """

    max_attempts: int = 3
    initial_backoff: float = 0.1
    max_backoff: float = 1.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("RetryPolicy.max_attempts must be >= 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff:
            raise ValueError("RetryPolicy needs 0 <= initial_backoff <= max_backoff")
        if not 0.0 <= self.jitter <= 1.0:
            raise ValueError("RetryPolicy.jitter must be within [0, 1]")

    @classmethod
    def disabled(cls) -> RetryPolicy:
        """A policy that makes exactly one attempt."""
        return cls(max_attempts=1)


DEFAULT_RETRY_POLICY = RetryPolicy()


@dataclass(frozen=True)
class Migration:
    """One step of the local schema: run by ``open()`` to produce local schema ``version``.

    Give ``sql`` (one or more statements, run in order) or ``apply`` (a callable receiving the
    SDK's ``sqlite3.Connection`` inside the migration's transaction; it must not commit). A
    migration runs in one transaction with change capture suspended and foreign keys checked at
    its end, so a table may be rebuilt (create new, copy, drop, rename). Rows it writes are not
    pushed: tables it adds or reshapes are re-hydrated from the server at the next sync.

    >>> Migration(2, sql="ALTER TABLE posts ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0").version
    2
    """

    version: int
    sql: str | None = None
    apply: Callable[[sqlite3.Connection], object] | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if (self.sql is None) == (self.apply is None):
            raise ValueError(f"Migration {self.version}: give exactly one of sql= or apply=")
        if self.sql is not None and not self.sql.strip():
            raise ValueError(f"Migration {self.version}: sql is empty")
        if self.version <= BASE_SCHEMA_VERSION:
            raise ValueError(
                f"Migration versions start at {BASE_SCHEMA_VERSION + 1} (version "
                f"{BASE_SCHEMA_VERSION} is the schema the app creates), got {self.version}"
            )


def _positive_chunk(name: str, value: int) -> None:
    if not 1 <= value <= MAX_CHUNK_ROWS:
        raise ValueError(f"ClientConfig.{name} must be within 1..{MAX_CHUNK_ROWS}, got {value}")


@dataclass(frozen=True)
class ClientConfig:
    """What to sync: the server schema name and the managed tables.

    ``tables`` accepts :class:`SyncTable` values or plain table names (key column ``id``). The
    managed set must be closed under foreign keys; :meth:`oversqlite.Client.open` checks it
    against the database and raises :class:`~oversqlite.ConfigError` otherwise.

    ``schema_version`` is the local schema version this build of the app works with; it is
    recorded in the database and checked against the server's supported range (when the server
    advertises ``client_schema_version_gate``). It defaults to the last migration's version, or
    to 1 without migrations. ``migrations`` lists :class:`Migration` steps in increasing version
    order; the last one must produce ``schema_version``.

    >>> config = ClientConfig(schema="business", tables=["users", "posts"])
    >>> [t.name for t in config.tables]
    ['users', 'posts']
    >>> config.schema_version
    1
    """

    schema: str
    tables: Sequence[SyncTable | str]
    resolver: ConflictResolver = server_wins
    retry: RetryPolicy = DEFAULT_RETRY_POLICY
    max_conflict_retries: int = DEFAULT_MAX_CONFLICT_RETRIES
    upload_chunk_rows: int = DEFAULT_CHUNK_ROWS
    pull_max_bundles: int = DEFAULT_CHUNK_ROWS
    committed_chunk_rows: int = DEFAULT_CHUNK_ROWS
    snapshot_chunk_rows: int = MAX_CHUNK_ROWS
    """Rows per snapshot page: large pages make hydration fast (the server caps the value)."""
    http_timeout: float = DEFAULT_HTTP_TIMEOUT
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    schema_version: int = 0
    """0: the last migration's version, or 1 without migrations."""
    migrations: Sequence[Migration] = ()
    capabilities_ttl: float = DEFAULT_CAPABILITIES_TTL
    """Seconds the server's capabilities are trusted before they are asked again."""
    max_bundle_rows: int = DEFAULT_MAX_BUNDLE_ROWS
    """Rows per pushed bundle at most (0: only the server's ``max_rows_per_bundle``). More
    pending rows go out as several bundles, parents first, each atomic on its own."""
    foreign_keys: ForeignKeyCheck = ForeignKeyCheck.WARN
    """What open()/attach() do when SQLite foreign keys of managed tables are not enforced."""

    def __post_init__(self) -> None:
        schema = self.schema.strip().lower()
        if not schema:
            raise ValueError("ClientConfig.schema must name the server schema, e.g. 'business'")
        object.__setattr__(self, "schema", schema)
        tables = tuple(t if isinstance(t, SyncTable) else SyncTable(t) for t in self.tables)
        if not tables:
            raise ValueError("ClientConfig.tables must name at least one table")
        seen: set[str] = set()
        for table in tables:
            lowered = table.name.lower()
            if lowered in seen:
                raise ValueError(f"ClientConfig.tables lists {table.name!r} twice")
            seen.add(lowered)
        object.__setattr__(self, "tables", tables)
        for name in (
            "upload_chunk_rows",
            "pull_max_bundles",
            "committed_chunk_rows",
            "snapshot_chunk_rows",
        ):
            _positive_chunk(name, getattr(self, name))
        if self.max_conflict_retries < 0:
            raise ValueError("ClientConfig.max_conflict_retries must be >= 0")
        if self.http_timeout <= 0 or self.busy_timeout < 0:
            raise ValueError("ClientConfig timeouts must be positive")
        if self.capabilities_ttl < 0:
            raise ValueError("ClientConfig.capabilities_ttl must be >= 0")
        if self.max_bundle_rows < 0:
            raise ValueError("ClientConfig.max_bundle_rows must be >= 0 (0: no client cap)")
        object.__setattr__(self, "foreign_keys", ForeignKeyCheck(self.foreign_keys))
        self._check_migrations()

    def _check_migrations(self) -> None:
        migrations = tuple(self.migrations)
        for item in migrations:
            if not isinstance(item, Migration):
                raise ValueError(f"ClientConfig.migrations takes Migration values, got {item!r}")
        versions = [m.version for m in migrations]
        if any(b <= a for a, b in itertools.pairwise(versions)):
            raise ValueError(
                f"ClientConfig.migrations must have strictly increasing versions, got {versions}"
            )
        object.__setattr__(self, "migrations", migrations)
        last = versions[-1] if versions else BASE_SCHEMA_VERSION
        if self.schema_version == 0:
            object.__setattr__(self, "schema_version", last)
        elif self.schema_version < BASE_SCHEMA_VERSION:
            raise ValueError(f"ClientConfig.schema_version must be >= 1, got {self.schema_version}")
        elif versions and self.schema_version != last:
            raise ValueError(
                f"ClientConfig.schema_version is {self.schema_version} but the last migration "
                f"produces version {last}; they must match (or leave schema_version unset)"
            )

    @property
    def sync_tables(self) -> tuple[SyncTable, ...]:
        """The managed tables, normalized to :class:`SyncTable` values."""
        return tuple(t for t in self.tables if isinstance(t, SyncTable))
