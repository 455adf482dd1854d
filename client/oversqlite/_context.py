"""What every sync flow needs: the connection, the server API, the config and the tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from oversqlite._config import ClientConfig
from oversqlite._schema import TableInfo
from oversqlite._transport import Api, with_retry

__all__ = ["Context"]

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    conn: sqlite3.Connection
    api: Api
    config: ClientConfig
    tables: dict[str, TableInfo]
    """Managed tables by lowercase name, in push (parent-first) order."""
    sleep: Callable[[float], None]
    _limits: dict[str, int] = field(default_factory=dict)

    def retry(self, operation: str, attempt: Callable[[], T]) -> T:
        return with_retry(self.config.retry, operation, attempt, sleep=self.sleep)

    def max_rows_per_bundle(self, source_id: str) -> int:
        """The server's `max_rows_per_bundle` (0 = no limit), asked once per client."""
        if "max_rows_per_bundle" not in self._limits:
            capabilities = self.retry("capabilities", lambda: self.api.capabilities(source_id))
            limits = capabilities.bundle_limits
            value = getattr(limits, "max_rows_per_bundle", 0)
            self._limits["max_rows_per_bundle"] = value if isinstance(value, int) else 0
        return self._limits["max_rows_per_bundle"]
