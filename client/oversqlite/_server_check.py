"""Checks at ``attach()``: the token's user and the server's registered tables and columns.

The server's capabilities list the registered tables with their sync key columns, and (with
the ``registered_table_columns`` feature) their columns; with ``authenticated_user`` they echo
the user the token authenticates. Every difference is collected into one
:class:`~oversqlite.ServerSchemaMismatchError`, each with its fix. Columns only the server has
are allowed (an additive server change: this client ignores them, see ``_drift``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from oversqlite._errors import ServerSchemaMismatchError, TokenUserMismatchError
from oversqlite._schema import TableInfo
from oversync_client.models import CapabilitiesResponse
from oversync_client.types import Unset

__all__ = ["check_server"]

logger = logging.getLogger("oversqlite")


def check_server(
    schema: str,
    tables: Mapping[str, TableInfo],
    capabilities: CapabilitiesResponse,
    user_id: str,
) -> None:
    """Raise when the token belongs to another user or the managed tables do not match."""
    token_user = capabilities.user_id
    echoed = capabilities.features.authenticated_user is True and isinstance(token_user, str)
    if echoed and token_user != user_id:
        raise TokenUserMismatchError(user_id, str(token_user))
    differences = _differences(schema, tables, capabilities)
    if differences:
        raise ServerSchemaMismatchError(schema, differences)


def _differences(
    schema: str, tables: Mapping[str, TableInfo], capabilities: CapabilitiesResponse
) -> list[str]:
    specs = capabilities.registered_table_specs
    if isinstance(specs, Unset):
        return []  # an old server: nothing to compare with
    registered = {(spec.schema, spec.table): spec for spec in specs}
    with_columns = capabilities.features.registered_table_columns is True
    out: list[str] = []
    for table in tables.values():
        spec = registered.get((schema, table.name))
        name = f"{schema}.{table.name}"
        if spec is None:
            out.append(
                f"table {name} is managed locally but the server does not register it: register "
                "it on the server, or remove it from ClientConfig.tables"
            )
            continue
        keys = spec.sync_key_columns
        if not isinstance(keys, Unset) and list(keys) != [table.key.wire_name]:
            out.append(
                f"table {name}: the local key column is {table.key.wire_name!r} but the server's "
                f"sync key is {list(keys)}: set SyncTable(key_column=...) to the server's key"
            )
        columns = spec.columns
        if not with_columns or isinstance(columns, Unset):
            continue
        local_only = sorted(table.wire_columns - set(columns))
        for column in local_only:
            out.append(
                f"table {name}: local column {column!r} does not exist on the server, which "
                "refuses rows that carry it: add it on the server (nullable or with a default) "
                "and restart it, or drop it locally with a migration (local-only data belongs "
                "in an unmanaged table)"
            )
        server_only = sorted(set(columns) - table.wire_columns)
        if server_only:
            logger.info(
                "attach: %s has server column(s) %s that the local table lacks; they are "
                "ignored until a migration adds them",
                name,
                server_only,
            )
    return out
