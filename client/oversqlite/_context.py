"""What every sync flow needs: the connection, the server API, the config and the tables."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
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

    def retry(self, operation: str, attempt: Callable[[], T]) -> T:
        return with_retry(self.config.retry, operation, attempt, sleep=self.sleep)
