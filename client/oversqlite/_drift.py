"""Schema drift between the server and this client, tolerated and reported once per shape.

Old clients must survive additive server changes: rows of tables they do not manage and payload
columns their local tables do not have are dropped after verification (bundle hashes cover what
the server sent), and local columns the server does not send keep their local value. Each
distinct shape is logged once per client (logger ``oversqlite``), not once per row.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

__all__ = ["SchemaDrift"]

logger = logging.getLogger("oversqlite")


class SchemaDrift:
    """Remembers which drift this client already reported (thread-safe)."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str, frozenset[str]]] = set()
        self._lock = threading.Lock()

    def _first(self, kind: str, table: str, columns: Iterable[str] = ()) -> frozenset[str] | None:
        key = (kind, table, frozenset(columns))
        with self._lock:
            if key in self._seen:
                return None
            self._seen.add(key)
        return key[2]

    def unmanaged_table(self, schema: str, table: str) -> None:
        if self._first("table", table) is not None:
            logger.info(
                "ignoring rows of %s.%s: the server syncs it but this client does not manage it "
                "(add a local table and list it in ClientConfig.tables to sync it)",
                schema,
                table,
            )

    def server_only_columns(self, table: str, columns: Iterable[str]) -> None:
        seen = self._first("extra", table, columns)
        if seen:
            logger.warning(
                "ignoring server column(s) %s of %s: the local table does not have them (an "
                "app update with a migration adding them fetches their values)",
                sorted(seen),
                table,
            )

    def local_only_columns(self, table: str, columns: Iterable[str]) -> None:
        seen = self._first("missing", table, columns)
        if seen:
            logger.warning(
                "the server sends no column(s) %s of %s: pulls keep their local values, but "
                "pushes of %s will be refused until the server has them (add them there, or drop "
                "them locally with a migration)",
                sorted(seen),
                table,
                table,
            )
