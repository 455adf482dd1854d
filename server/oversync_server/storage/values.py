"""Sync keys and column values between PostgreSQL and the wire (protocol.md §2-§3).

Keys: `key_bytes` is the 16 raw bytes of a uuid key (whose wire text must be the canonical
lowercase dashed form) or the UTF-8 bytes of a text key; on the wire a key is always
`{"<key_column>": "<string>"}`.

Values, PostgreSQL -> wire: payloads start from `to_jsonb(row) - '_sync_scope_id'` (captured by
the trigger or read by a query), are parsed the Go way (every number through float64, see
`oversync_wire.parse_json_text`) and bytea columns turn from PG's `"\\x<hex>"` text into padded
standard base64. uuid, text/varchar, integers, numeric, real/double, boolean, date, time,
timestamp/timestamptz and json/jsonb need nothing else: `to_jsonb` already renders them as the
protocol specifies (timestamps in the session TimeZone, numbers as JSON numbers).

Values, wire -> PostgreSQL: payloads are applied with `jsonb_populate_record(set)`, which casts
each JSON scalar through the column type's text input (what the reference does), so the only
conversion needed is bytea: padded standard base64 -> `"\\x<hex>"`. `_sync_scope_id` never leaves
the server and is refused when a client sends it.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Mapping
from typing import Any

from oversync_server.storage.catalog import SCOPE_COLUMN, KeyKind, TableInfo
from oversync_wire import parse_json_text


class ValueFormatError(ValueError):
    """A key or value that does not have the wire form the protocol requires."""


# ------------------------------------------------------------------------------------ keys


def key_to_bytes(kind: KeyKind, text: str) -> bytes:
    """The `key_bytes` of a wire key; uuid keys must be canonical lowercase dashed text."""
    if kind is KeyKind.UUID:
        try:
            parsed = uuid.UUID(text)
        except (ValueError, AttributeError, TypeError):
            raise ValueFormatError("must use canonical dashed lowercase UUID text") from None
        if str(parsed) != text:
            raise ValueFormatError("must use canonical dashed lowercase UUID text")
        return parsed.bytes
    return text.encode("utf-8")


def key_from_bytes(kind: KeyKind, data: bytes) -> str:
    """The wire text of stored `key_bytes`."""
    if kind is KeyKind.UUID:
        return str(uuid.UUID(bytes=bytes(data)))
    return bytes(data).decode("utf-8", "replace")


def wire_key(table: TableInfo, data: bytes) -> dict[str, str]:
    """The wire key object `{"<key_column>": "<text>"}` of stored `key_bytes`."""
    return {table.key_column: key_from_bytes(table.key_kind, data)}


# ------------------------------------------------------------------------------------ bytea


def bytea_to_wire(value: str) -> str:
    """PG's bytea JSON text (`"\\x0102"`) as padded standard base64; other text is kept as is
    (already base64, e.g. a payload re-read from storage)."""
    if value.startswith("\\x"):
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise ValueFormatError("bytea value is not valid hex text") from None
        return base64.b64encode(raw).decode("ascii")
    return value


def bytea_from_wire(value: str) -> str:
    """Padded standard base64 as PG bytea hex input text (`\\x0102`); `ValueFormatError` if the
    text is not strict standard base64 with padding."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ValueFormatError("must be valid base64") from None
    return "\\x" + raw.hex()


# ------------------------------------------------------------------------------------ payloads


def wire_payload(table: TableInfo, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A parsed `to_jsonb(row)` payload as served: no `_sync_scope_id`, bytea as base64."""
    out: dict[str, Any] = {}
    bytea = table.bytea_columns
    for name, value in payload.items():
        if name.lower() == SCOPE_COLUMN:
            continue
        if name in bytea and isinstance(value, str):
            value = bytea_to_wire(value)
        out[name] = value
    return out


def wire_payload_from_db_text(table: TableInfo, text: str) -> dict[str, Any]:
    """`wire_payload` of JSON text from PostgreSQL (numbers parsed through float64)."""
    parsed = parse_json_text(text)
    if not isinstance(parsed, dict):
        raise ValueFormatError(f"row payload of {table.qualified_name} is not a JSON object")
    return wire_payload(table, parsed)
