"""Sync keys and column values between PostgreSQL and the wire (protocol.md §2-§3).

Keys: `key_bytes` is the 16 raw bytes of a uuid key (whose wire text must be the canonical
lowercase dashed form) or the UTF-8 bytes of a text key; on the wire a key is always
`{"<key_column>": "<string>"}`.

Values, PostgreSQL -> wire: payloads start from `to_jsonb(row) - '_sync_scope_id'` (captured by
the trigger or read by a query) and bytea columns turn from PG's `"\\x<hex>"` text into padded
standard base64. uuid, text/varchar, integers, numeric, real/double, boolean, date, time,
timestamp/timestamptz and json/jsonb need nothing else: `to_jsonb` already renders them as the
protocol specifies (timestamps in the session TimeZone, numbers as JSON numbers).

Values, wire -> PostgreSQL: payloads are applied with `jsonb_populate_record(set)`, which casts
each JSON scalar through the column type's text input (what the reference does), so the only
conversion needed is bytea: padded standard base64 -> `"\\x<hex>"`. `_sync_scope_id` never leaves
the server and is refused when a client sends it.

Integers of integer and numeric columns keep all their digits (`normalize_columns`,
`exact_json`): the reference rounds every number through float64 when it stores a pushed or
captured payload, which silently changes int64 values beyond 2**53. Every other value is
float64-normalised as in the reference. Only the hash input is fully float64-canonical
(`oversync_wire.bundle_hash` normalises on its own, so `bundle_hash` is bit-identical to Go's);
stored and served payloads are Go-canonical JSON in every other respect (sorted keys, Go number
and string formatting), and Go clients parse them through float64 as before.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping
from typing import Any, NoReturn

from oversync_server.engine.catalog import (
    SCOPE_COLUMN,
    KeyKind,
    TableInfo,
    ValueKind,
    quote_literal,
)
from oversync_wire import canonical_json, html_escaped, normalize_payload, sorted_compact_json


class ValueFormatError(ValueError):
    """A key or value that does not have the wire form the protocol requires."""


# ------------------------------------------------------------------------------------ keys


_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def key_to_bytes(kind: KeyKind, text: str) -> bytes:
    """The `key_bytes` of a wire key; uuid keys must be canonical lowercase dashed text."""
    if kind is KeyKind.UUID:
        if type(text) is str and _CANONICAL_UUID.fullmatch(text):  # the common case, fast
            return bytes.fromhex(text.replace("-", ""))
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


_EXACT_KINDS = frozenset({ValueKind.INTEGER, ValueKind.NUMERIC})


def normalize_columns(table: TableInfo, payload: Mapping[str, Any]) -> dict[str, Any]:
    """Values as Go sees them (float64 numbers, see `oversync_wire.normalize_payload`), except
    integers of integer and numeric columns, which stay exact."""
    out: dict[str, Any] = {}
    for name, value in payload.items():
        column = table.column(name)
        if type(value) is int and column is not None and column.kind in _EXACT_KINDS:
            out[name] = value
        else:
            out[name] = normalize_payload(value)
    return out


def wire_payload(table: TableInfo, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A parsed `to_jsonb(row)` payload as served: no `_sync_scope_id`, bytea as base64,
    numbers normalised by `normalize_columns`. Columns this process's catalog does not know
    (added to the table since the server started) are left out: their wire form is only known
    once a restart has validated their type, and until then no client can expect them."""
    out: dict[str, Any] = {}
    bytea = table.bytea_columns
    for name, value in payload.items():
        if name.lower() == SCOPE_COLUMN or table.column(name) is None:
            continue
        if name in bytea and isinstance(value, str):
            value = bytea_to_wire(value)
        out[name] = value
    return normalize_columns(table, out)


def _reject_constant(name: str) -> NoReturn:
    raise ValueFormatError(f"{name} is not valid JSON")


def parse_exact(text: str) -> Any:
    """JSON text with integers kept exact (floats as Python floats, which round-trip)."""
    return json.loads(text, parse_constant=_reject_constant)


def wire_payload_from_db_text(table: TableInfo, text: str) -> dict[str, Any]:
    """`wire_payload` of `to_jsonb` text from PostgreSQL (integers kept exact)."""
    parsed = parse_exact(text)
    if not isinstance(parsed, dict):
        raise ValueFormatError(f"row payload of {table.qualified_name} is not a JSON object")
    return wire_payload(table, parsed)


_MAX_EXACT = 2**53
# Big integers are swapped for marker strings while the canonical encoder runs; the random part
# keeps a client's own strings from ever matching a marker.
_NONCE = uuid.uuid4().hex
_MARK = f"\\u0000{_NONCE}-"  # how canonical JSON writes the start of a marker string


def _has_big_int(value: Any) -> bool:
    kind = type(value)
    if kind is int:
        return bool(value > _MAX_EXACT or value < -_MAX_EXACT)
    if kind is dict:
        return any(_has_big_int(item) for item in value.values())
    if kind is list:
        return any(_has_big_int(item) for item in value)
    return False


def _mark_big_ints(value: Any, found: list[int]) -> Any:
    kind = type(value)
    if kind is int and (value > _MAX_EXACT or value < -_MAX_EXACT):
        found.append(value)
        return f"\x00{_NONCE}-{len(found) - 1}\x00"
    if kind is dict:
        return {key: _mark_big_ints(item, found) for key, item in value.items()}
    if kind is list:
        return [_mark_big_ints(item, found) for item in value]
    return value


_SURROGATE = re.compile("[\ud800-\udfff]")


def plain_canonical_json(payload: Any) -> str | None:
    """The fast path of `exact_json(normalize_columns(table, payload))` and of
    `canonical_json(payload)`: for an object whose values are strings, booleans, nulls and
    integers within +-2**53 (which every normalisation leaves as they are), Go-canonical JSON is
    the C encoder's compact sorted output with `< > & U+2028 U+2029` escaped. None for any other
    value, and for text holding surrogates (Go turns them into U+FFFD): the general path."""
    if type(payload) is not dict:
        return None
    for value in payload.values():
        kind = type(value)
        if kind is str or value is None or kind is bool:
            continue
        if kind is int and -_MAX_EXACT <= value <= _MAX_EXACT:
            continue
        return None
    text = sorted_compact_json(payload)  # Go-canonical once the HTML characters are escaped
    if not text.isascii() and _SURROGATE.search(text):
        return None
    return html_escaped(text)


def exact_json(value: Any) -> str:
    """Go-canonical JSON text (`oversync_wire.canonical_json`), except that integers beyond
    2**53 keep all their digits instead of being rounded through float64."""
    if not _has_big_int(value):
        return canonical_json(value).decode("utf-8")
    found: list[int] = []
    text = canonical_json(_mark_big_ints(value, found)).decode("utf-8")
    for index, number in enumerate(found):
        text = text.replace(f'"{_MARK}{index}\\u0000"', str(number), 1)
    return text


# SQL rendering the start of a wire row object, `{"schema":..,"table":..,"key":{"col":"value"}`
# (no closing brace), from `c` (a sync.table_catalog row) and `r.key_bytes`: uuid keys as
# lowercase dashed text, text keys as UTF-8. Pull pages and snapshot chunks both render rows
# inside PostgreSQL with it, so the key encoding lives in one place.
ROW_IDENTITY_JSON_SQL = """'{"schema":' || to_json(c.schema_name)::text
    || ',"table":' || to_json(c.table_name)::text
    || ',"key":{' || to_json(c.sync_key_column)::text || ':'
    || CASE c.sync_key_kind
           WHEN 1 THEN '"' || encode(r.key_bytes, 'hex')::uuid::text || '"'
           ELSE to_json(convert_from(r.key_bytes, 'UTF8'))::text
       END
    || '}'"""


def table_row_identity_json_sql(table: TableInfo, key_sql: str) -> str:
    """`ROW_IDENTITY_JSON_SQL`'s text for a row of `table` whose key is the SQL expression
    `key_sql` (the key column itself, uuid or text), without a catalog row: the constant part
    is one InitPlan per statement, and the key is rendered from its own value, not its bytes."""
    prefix = (
        f"""(SELECT '{{"schema":' || to_json({quote_literal(table.schema)}::text)::text"""
        f""" || ',"table":' || to_json({quote_literal(table.table)}::text)::text"""
        f""" || ',"key":{{' || to_json({quote_literal(table.key_column)}::text)::text || ':')"""
    )
    if table.key_kind is KeyKind.UUID:
        key = f"""'"' || {key_sql}::text || '"'"""
    else:
        key = f"to_json({key_sql}::text)::text"
    return f"{prefix} || {key} || '}}'"
