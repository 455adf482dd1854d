"""What every sync flow needs: the connection, the server API, the config and the tables.

It also caches the server's capabilities per client (for ``ClientConfig.capabilities_ttl``
seconds; :meth:`Context.forget_capabilities` drops them when an answer suggests the server
changed) and runs the client schema version gate from them.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from oversqlite._config import ClientConfig
from oversqlite._control import Control
from oversqlite._drift import SchemaDrift
from oversqlite._errors import UpgradeRequiredError
from oversqlite._schema import TableInfo
from oversqlite._transport import Api, with_retry
from oversync_client.models import CapabilitiesResponse, ClientSchemaVersions

__all__ = ["Context"]

T = TypeVar("T")


class _CapabilitiesCache:
    def __init__(self) -> None:
        self.value: CapabilitiesResponse | None = None
        self.fetched_at = 0.0
        self.lock = threading.Lock()


@dataclass(frozen=True)
class Context:
    conn: sqlite3.Connection
    api: Api
    config: ClientConfig
    tables: dict[str, TableInfo]
    """Managed tables by lowercase name, in push (parent-first) order."""
    sleep: Callable[[float], None]
    drift: SchemaDrift = field(default_factory=SchemaDrift)
    control: Control = field(default_factory=Control)
    """The running operation's cancel token and progress callback."""
    _capabilities: _CapabilitiesCache = field(default_factory=_CapabilitiesCache)

    def retry(self, operation: str, attempt: Callable[[], T]) -> T:
        return with_retry(self.config.retry, operation, attempt, sleep=self.sleep)

    def capabilities(self, source_id: str, *, refresh: bool = False) -> CapabilitiesResponse:
        """The server's capabilities, asked at most once per ``capabilities_ttl``."""
        cache = self._capabilities
        with cache.lock:
            age = time.monotonic() - cache.fetched_at
            if refresh or cache.value is None or age >= self.config.capabilities_ttl:
                value = self.retry("capabilities", lambda: self.api.capabilities(source_id))
                cache.value, cache.fetched_at = value, time.monotonic()
            return cache.value

    def forget_capabilities(self) -> None:
        with self._capabilities.lock:
            self._capabilities.value = None

    def max_rows_per_bundle(self, source_id: str) -> int:
        """The server's `max_rows_per_bundle` (0 = no limit)."""
        limits = self.capabilities(source_id).bundle_limits
        value = getattr(limits, "max_rows_per_bundle", 0)
        return value if isinstance(value, int) else 0

    def check_schema_version(
        self, operation: str, source_id: str, *, refresh: bool = False
    ) -> None:
        """Raise :class:`UpgradeRequiredError` if the server does not serve this app's version.

        Servers without the ``client_schema_version_gate`` feature serve every version.
        """
        capabilities = self.capabilities(source_id, refresh=refresh)
        versions = capabilities.client_schema_versions
        if capabilities.features.client_schema_version_gate is not True:
            return
        if not isinstance(versions, ClientSchemaVersions):
            return
        local = self.config.schema_version
        low, high = versions.min_supported, versions.max_supported
        if local < low or (high > 0 and local > high):
            self.forget_capabilities()  # ask again next time: the server may be rolled back
            raise UpgradeRequiredError(operation, local, low, high)
