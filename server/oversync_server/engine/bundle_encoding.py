"""The wire form of a bundle's rows and its `bundle_hash`, built once per row (server.md §14).

`BundleEncoder.add(table, key_bytes, op_code, payload_db_text)` takes the bundle's coalesced rows
in order and returns each row's stored `payload_wire` text; `result()` gives `(bundle_hash,
byte_count)`. The hash input is the canonical JSON array of the rows' hash items (`key, op,
payload, row_ordinal, row_version, schema, table`), hashed as it is produced, so memory stays
constant whatever the bundle's size.

Most rows take the fast path: a payload whose values are strings, booleans, nulls and integers
within +-2**53, of a table without bytea columns, whose columns the catalog knows. Go-canonical
JSON of such a payload is the stdlib C encoder's compact sorted output with `< > & U+2028
U+2029` escaped (`values.plain_canonical_json`), its exact-integer stored form is the same
text, and the hash item is that text between constant parts, so each row is parsed once, encoded once and
never normalised. Every other row (floats, big integers, nested JSON, bytea, unknown columns)
takes the general path (`values.wire_payload_from_db_text`, `values.exact_json`,
`oversync_wire.canonical_json`), which is what the fast path reproduces byte for byte.
"""

from __future__ import annotations

import hashlib
import json

from oversync_server.engine.catalog import KeyKind, PerTable, TableInfo
from oversync_server.engine.values import (
    exact_json,
    key_from_bytes,
    plain_canonical_json,
    wire_payload_from_db_text,
)
from oversync_wire import canonical_json

OP_NAMES = {1: "INSERT", 2: "UPDATE", 3: "DELETE"}
_decode = json.JSONDecoder().decode


def _text(value: str) -> str:
    return canonical_json(value).decode("utf-8")


def _uuid_text(data: bytes) -> str:
    h = data.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _TableForm:
    """What every row of one table shares in its hash item."""

    __slots__ = ("columns", "fast", "key_head", "table", "tail", "uuid_key")

    def __init__(self, table: TableInfo) -> None:
        self.table = table
        self.columns = frozenset(c.name for c in table.payload_columns)
        self.fast = not table.bytea_columns
        self.uuid_key = table.key_kind is KeyKind.UUID
        self.key_head = '{"key":{' + _text(table.key_column) + ":"
        self.tail = ',"schema":' + _text(table.schema) + ',"table":' + _text(table.table) + "}"


# The forms of the catalog's tables, built once per table (a bundle of one row would otherwise
# build its table's each time).
_FORMS: PerTable[_TableForm] = PerTable(limit=1024)


def _table_form(table: TableInfo) -> _TableForm:
    return _FORMS.get(table, None, lambda: _TableForm(table))


class BundleEncoder:
    """Wire payloads and the bundle hash of one bundle's rows, added in bundle order."""

    __slots__ = ("_byte_count", "_rows", "_sha", "bundle_seq")

    def __init__(self, bundle_seq: int) -> None:
        self.bundle_seq = bundle_seq
        self._sha = hashlib.sha256(b"[")
        self._byte_count = 1
        self._rows = 0

    def add(self, table: TableInfo, key_bytes: bytes, op_code: int, text: str | None) -> str | None:
        """Hash the next row; its stored `payload_wire` text (None for a delete)."""
        form = _table_form(table)
        ordinal = self._rows
        if form.uuid_key:
            key = '"' + _uuid_text(key_bytes) + '"'
        else:
            key = _text(key_from_bytes(table.key_kind, key_bytes))
        stored: str | None = None
        payload = "null"
        if text is not None:
            parsed = _decode(text)
            fast = None
            if form.fast and type(parsed) is dict and form.columns.issuperset(parsed):
                fast = plain_canonical_json(parsed)
            if fast is not None:
                stored = payload = fast
            else:
                wire = wire_payload_from_db_text(table, text)
                stored = exact_json(wire)
                payload = canonical_json(wire).decode("utf-8")
        item = (
            f'{form.key_head}{key}}},"op":"{OP_NAMES[op_code]}","payload":{payload},'
            f'"row_ordinal":{ordinal},"row_version":{self.bundle_seq}{form.tail}'
        ).encode()
        if ordinal:
            self._sha.update(b",")
            self._byte_count += 1
        self._sha.update(item)
        self._byte_count += len(item)
        self._rows += 1
        return stored

    def result(self) -> tuple[str, int]:
        """`(bundle_hash, byte_count)` of the rows added so far."""
        final = self._sha.copy()
        final.update(b"]")
        return final.hexdigest(), self._byte_count + 1
