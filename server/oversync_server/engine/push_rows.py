"""Validation of uploaded push rows, before any database work (protocol.md §6.3 step 5).

`prepare_rows(catalog, rows)` checks every row in upload order with the reference's rules and
messages and returns `PreparedRow`s ready for staging: the table, the key bytes, the op code and
the canonical apply payload (key column injected, bytea converted to PG hex input). The first
broken rule raises 400 `push_chunk_invalid`.

Stricter than the reference, so that a bad payload fails here with 400 instead of at commit with
500 (docs/deviations.md): payload keys must already be lowercase and must name a column of the
table. Type errors in values are caught by the chunk upload itself (`push_sessions.stage_chunk`).
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple

from oversync_protocol import models
from oversync_server.engine.capture import OP_CODES, OP_DELETE
from oversync_server.engine.catalog import SCOPE_COLUMN, Catalog, TableInfo
from oversync_server.engine.errors import SyncError
from oversync_server.engine.values import (
    ValueFormatError,
    bytea_from_wire,
    exact_json,
    key_to_bytes,
    normalize_columns,
    plain_canonical_json,
)
from oversync_wire import CanonicalJSONError

_NAME = re.compile(r"^[a-z0-9_]+$")


class PreparedRow(NamedTuple):
    """One validated push row, as it is staged in `sync.push_session_rows` (a named tuple:
    a chunk makes a thousand of them)."""

    table: TableInfo
    key_text: str
    key_bytes: bytes
    op_code: int
    base_row_version: int
    payload_apply: str | None  # canonical JSON for jsonb_populate_record; None for DELETE


def chunk_invalid(message: str) -> SyncError:
    return SyncError("push_chunk_invalid", message)


def _table(catalog: Catalog, row: models.PushRequestRow) -> TableInfo:
    schema = (row.schema_ or "").strip().lower() or "public"
    table_name = row.table.strip().lower()
    if not _NAME.match(schema):
        raise chunk_invalid(f'invalid schema name "{schema}"')
    if not _NAME.match(table_name):
        raise chunk_invalid(f'invalid table name "{table_name}"')
    table = catalog.by_name(schema, table_name)
    if table is None:
        raise chunk_invalid(f"table {schema}.{table_name} is not registered")
    return table


def _sendable(table: TableInfo) -> frozenset[str]:
    """The payload keys that pass the column checks of `_payload` as they are."""
    return frozenset(
        c.name for c in table.columns if c.name != SCOPE_COLUMN and _NAME.match(c.name)
    )


def _payload(
    table: TableInfo,
    op: str,
    row: models.PushRequestRow,
    key_text: str,
    sendable: frozenset[str],
) -> str | None:
    name = table.qualified_name
    sent = "payload" in row.model_fields_set  # an explicit `"payload": null` counts as sent
    if op == "DELETE":
        if sent:
            raise chunk_invalid(f"DELETE for {name} must not include payload")
        return None
    if not sent:
        raise chunk_invalid(f"{op} for {name} requires payload")
    if not isinstance(row.payload, dict):
        raise chunk_invalid(f"payload for {name} must be a JSON object")
    payload: dict[str, Any] = dict(row.payload)
    if SCOPE_COLUMN in payload:
        raise chunk_invalid(
            f'payload for {name} must not include hidden scope column "{SCOPE_COLUMN}"'
        )
    key = table.key_column
    if key in payload:
        if payload[key] != key_text or not isinstance(payload[key], str):
            raise chunk_invalid(f"payload key {name}.{key} must match request key")
    else:
        payload[key] = key_text
    bytea = table.bytea_columns
    if not bytea and payload.keys() <= sendable:  # the common case: nothing to refuse, convert
        fast = plain_canonical_json(payload)
        if fast is not None:
            return fast
    for column_name in payload:
        if not _NAME.match(column_name.lower()):
            raise chunk_invalid(f'payload for {name} contains invalid column "{column_name}"')
        column = table.column(column_name)
        if column is None or column.name == SCOPE_COLUMN:
            raise chunk_invalid(
                f'payload for {name} contains unknown column "{column_name}"'
                + (" (column names are lowercase)" if column_name != column_name.lower() else "")
            )
    for column_name in bytea & payload.keys():
        value = payload[column_name]
        if value is None:
            continue
        if not isinstance(value, str):
            raise chunk_invalid(
                f"payload binary field {name}.{column_name} must be a base64 string"
            )
        try:
            payload[column_name] = bytea_from_wire(value)
        except ValueFormatError:
            raise chunk_invalid(
                f"payload binary field {name}.{column_name} must be valid base64"
            ) from None
    try:
        return exact_json(normalize_columns(table, payload))
    except CanonicalJSONError as error:
        raise chunk_invalid(f"payload for {name} is not representable: {error}") from None


def prepare_rows(catalog: Catalog, rows: list[models.PushRequestRow]) -> list[PreparedRow]:
    """Validate one chunk's rows in order; 400 `push_chunk_invalid` on the first broken rule."""
    prepared: list[PreparedRow] = []
    seen: set[tuple[int, bytes]] = set()
    tables: dict[tuple[str | None, str], TableInfo] = {}
    sendable: dict[int, frozenset[str]] = {}
    for row in rows:
        named = (row.schema_, row.table)
        table = tables.get(named) or tables.setdefault(named, _table(catalog, row))
        if table.table_id not in sendable:
            sendable[table.table_id] = _sendable(table)
        name = table.qualified_name
        op = row.op.strip().upper()
        if op not in OP_CODES:
            raise chunk_invalid(f'invalid op "{row.op.strip()}"')
        key_value = row.key.root.get(table.key_column)
        if key_value is None:
            raise chunk_invalid(f'row key for {name} must include "{table.key_column}"')
        if not isinstance(key_value, str):
            raise chunk_invalid(f"row key {name}.{table.key_column} must be a string")
        try:
            key_bytes = key_to_bytes(table.key_kind, key_value)
        except ValueFormatError as error:
            raise chunk_invalid(f"row key {name}.{table.key_column} {error}") from None
        if (table.table_id, key_bytes) in seen:
            raise chunk_invalid(f"duplicate target row in push request: {name} {key_value}")
        seen.add((table.table_id, key_bytes))
        prepared.append(
            PreparedRow(
                table=table,
                key_text=key_value,
                key_bytes=key_bytes,
                op_code=OP_CODES[op],
                base_row_version=row.base_row_version,
                payload_apply=_payload(table, op, row, key_value, sendable[table.table_id]),
            )
        )
    return prepared


__all__ = ["OP_DELETE", "PreparedRow", "chunk_invalid", "prepare_rows"]
