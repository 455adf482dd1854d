"""Value codecs between SQLite values and the wire (protocol.md §3).

=================  ==========================  =====================================
SQLite value       wire                        notes
=================  ==========================  =====================================
NULL               ``null``
INTEGER            number                      full int64 range, exact
REAL               number                      exact (shortest round-trip digits)
TEXT               string                      timestamps: RFC 3339 text
BLOB               padded standard base64      strict decoding (must round-trip)
UUID BLOB          dashed lowercase UUID       keys, FKs to BLOB keys, ``uuid_columns``
=================  ==========================  =====================================

Local key strings (in the ``_sync_*`` tables) are the text key itself, or the lowercase hex of
a 16-byte BLOB key. Wire decoding raises :class:`ValueError`; callers turn it into the error
that fits (a protocol error for server data, an invalid resolution for a merged row).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from oversqlite._config import KeyKind
from oversqlite._errors import UnsupportedValueError
from oversqlite._schema import ColumnInfo, TableInfo

__all__ = [
    "columns_from_wire",
    "format_timestamp",
    "key_from_wire",
    "key_to_wire",
    "params_from_wire",
    "parse_timestamp",
    "row_to_wire",
    "wire_key",
]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_CANONICAL_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 text in UTC, the way PostgreSQL returns ``timestamptz`` values in JSON.

    Storing timestamps in this form makes them come back byte-identical after a round trip
    through the server (``2026-03-24T18:42:11.5+00:00``). A naive datetime raises ValueError.

    >>> format_timestamp(datetime(2026, 3, 24, 18, 42, 11, 500000, tzinfo=UTC))
    '2026-03-24T18:42:11.5+00:00'
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError("format_timestamp needs a timezone-aware datetime")
    u = moment.astimezone(UTC)
    text = u.strftime("%Y-%m-%dT%H:%M:%S")
    if u.microsecond:
        text += "." + f"{u.microsecond:06d}".rstrip("0")
    return text + "+00:00"


def parse_timestamp(text: str) -> datetime:
    """Parse RFC 3339 text (``Z`` or an offset, any fraction) into an aware datetime."""
    moment = datetime.fromisoformat(text.replace("z", "Z"))
    if moment.tzinfo is None:
        raise ValueError(f"timestamp {text!r} has no UTC offset")
    return moment


def _uuid_text(raw: bytes, where: str) -> str:
    if len(raw) != 16:
        raise UnsupportedValueError(f"{where}: a UUID BLOB must be 16 bytes, got {len(raw)}")
    return str(uuid.UUID(bytes=raw))


def _uuid_bytes(value: object, where: str) -> bytes:
    if not isinstance(value, str) or not _CANONICAL_UUID.match(value.lower()):
        raise ValueError(f"{where}: expected a dashed UUID string, got {value!r}")
    return bytes.fromhex(value.replace("-", ""))  # the match leaves 32 hex digits


def key_to_wire(table: TableInfo, pk: str) -> str:
    """The wire value of a local key string."""
    if table.key_kind is KeyKind.BLOB_UUID:
        return _uuid_text(bytes.fromhex(pk), f"{table.name}.{table.key.name}")
    return pk


def wire_key(table: TableInfo, pk: str) -> dict[str, str]:
    """The wire key object ``{"<key column>": "<value>"}`` of a local key string."""
    return {table.key.wire_name: key_to_wire(table, pk)}


def key_from_wire(table: TableInfo, key: Mapping[str, Any]) -> str:
    """The local key string of a wire key object; raises ValueError when it is not canonical."""
    value = key.get(table.key.wire_name)
    kind = table.key_kind  # the error text is only formatted on failure (called per row)
    if not isinstance(value, str) or not value:
        where = f"{table.name}.{table.key.wire_name}"
        raise ValueError(f"key for {table.name} must carry a non-empty string {where}")
    if kind is KeyKind.BLOB_UUID:
        return _uuid_bytes(value, f"{table.name}.{table.key.wire_name}").hex()
    if kind is KeyKind.UUID and not _CANONICAL_UUID.match(value):
        where = f"{table.name}.{table.key.wire_name}"
        raise ValueError(f"{where}: {value!r} is not a canonical lowercase dashed UUID")
    return value


def _encode(column: ColumnInfo, value: object, where: str) -> Any:
    if value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise UnsupportedValueError(f"{where}: REAL {value!r} has no JSON encoding")
        return value
    if isinstance(value, bytes):
        if column.uuid_blob:
            return _uuid_text(value, where)
        return base64.b64encode(value).decode("ascii")
    raise UnsupportedValueError(f"{where}: unsupported SQLite value {value!r}")


def row_to_wire(table: TableInfo, row: tuple[Any, ...], pk: str) -> dict[str, Any]:
    """Encode a live row (``table.select_sql`` column order) as a wire payload."""
    return {
        column.wire_name: _encode(column, value, f"{table.name} {pk} column {column.wire_name}")
        for column, value in zip(table.columns, row, strict=True)
    }


def _decode(column: ColumnInfo, value: object, where: str) -> Any:
    if value is None:
        return None
    if column.uuid_blob:
        return _uuid_bytes(value, where)
    if column.is_blob:
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected a base64 string, got {value!r}")
        try:
            raw = base64.b64decode(value, validate=True)
        except binascii.Error as exc:
            raise ValueError(f"{where}: invalid base64: {exc}") from None
        if base64.b64encode(raw).decode("ascii") != value:
            raise ValueError(f"{where}: base64 is not canonical padded standard base64")
        return raw
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"{where}: integer {value} is outside the int64 range")
        return value
    if isinstance(value, float | str):
        return value
    if isinstance(value, dict | list):  # json/jsonb server columns: stored as JSON text
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    raise ValueError(f"{where}: unsupported JSON value {value!r}")


def params_from_wire(table: TableInfo, payload: object, pk: str) -> tuple[Any, ...]:
    """Decode a full-row wire payload into ``table.upsert_sql`` parameters.

    The payload must hold exactly the local table's columns and its key column must equal the
    row's key (server rows are first fitted to the local table by ``_apply.fit_payload``).
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload for {table.name} must be a JSON object")
    keys = set(payload)
    if keys != table.wire_columns:
        missing = sorted(table.wire_columns - keys)
        extra = sorted(keys - table.wire_columns)
        raise ValueError(
            f"payload for {table.name} does not match the local columns "
            f"(missing {missing}, unexpected {extra}); the local table must mirror the server's"
        )
    return columns_from_wire(table, payload, pk)[1]


def columns_from_wire(
    table: TableInfo, payload: object, pk: str
) -> tuple[tuple[ColumnInfo, ...], tuple[Any, ...]]:
    """Decode a payload holding some of the local columns (the key always): columns, params.

    Columns are in table order. Unknown columns and a key that differs from ``pk`` raise.
    """
    if not isinstance(payload, Mapping):
        raise ValueError(f"payload for {table.name} must be a JSON object")
    extra = sorted(set(payload) - table.wire_columns)
    if extra:
        raise ValueError(f"payload for {table.name} has columns the local table lacks: {extra}")
    if table.key.wire_name not in payload:
        raise ValueError(f"payload for {table.name} lacks its key column {table.key.wire_name}")
    columns = tuple(c for c in table.columns if c.wire_name in payload)
    params = tuple(
        _decode(c, payload[c.wire_name], f"{table.name} column {c.wire_name}") for c in columns
    )
    if params[columns.index(table.key)] != table.key_param(pk):
        raise ValueError(f"payload key of {table.name} does not match the row key")
    return columns, params
