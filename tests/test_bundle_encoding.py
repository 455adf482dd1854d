"""`engine.bundle_encoding` (the finalizer's per-row encoder) against the general path it
shortcuts: the stored payload text (`values.exact_json` of `values.wire_payload_from_db_text`)
and `oversync_wire.bundle_hash` over the rows as served, byte for byte, for payloads of every
value family, on the fast path and off it."""

from __future__ import annotations

import json
import uuid
from typing import Any

from oversync_server.engine.bundle_encoding import BundleEncoder
from oversync_server.engine.catalog import ColumnInfo, KeyKind, TableInfo
from oversync_server.engine.values import exact_json, wire_key, wire_payload_from_db_text
from oversync_wire import bundle_hash

COLUMNS = [
    ("_sync_scope_id", "text"),
    ("id", "uuid"),
    ("name", "text"),
    ("note", "text"),
    ("n", "int8"),
    ("flag", "bool"),
    ("rating", "float8"),
    ("amount", "numeric"),
    ("doc", "jsonb"),
    ("at", "timestamptz"),
]
USERS = TableInfo(
    3, "business", "things", "id", KeyKind.UUID, tuple(ColumnInfo(n, t, t) for n, t in COLUMNS)
)
FILES = TableInfo(
    1,
    "business",
    "files",
    "name",
    KeyKind.TEXT,
    tuple(
        ColumnInfo(n, t, t)
        for n, t in [("_sync_scope_id", "text"), ("name", "text"), ("data", "bytea")]
    ),
)

PAYLOADS: list[dict[str, Any]] = [
    {"name": "plain", "note": None, "n": 1, "flag": True},
    {"name": "<b>&amp;</b> \u2028\u2029 \u00e9\u4e2d\U0001f600", "note": 'tab\tnl\n\x01\x7f"\\/'},
    {"name": "limits", "n": 2**53, "flag": False, "at": "2026-01-02T03:04:05.123456+00:00"},
    {"name": "big", "n": 2**53 + 1},
    {"name": "negative big", "n": -(2**60)},
    {"name": "floats", "rating": 0.1, "amount": 1.5e-7},
    {"name": "huge", "rating": 1e21, "amount": 100.0},
    {"name": "zero", "rating": -0.0, "amount": 0},
    {"name": "nested", "doc": {"z": [1, 2.5, {"<": None}], "a": "x"}},
    {"name": "json scalar", "doc": "just text"},
    {"name": "unknown column", "added_later": 5},
]


def _db_text(payload: dict[str, Any], key: str) -> str:
    # PostgreSQL's jsonb text form: ", " and ": " separators, non-ASCII raw
    return json.dumps({"id": key, **payload}, ensure_ascii=False)


def test_each_row_is_encoded_and_hashed_like_the_general_path() -> None:
    rows: list[tuple[TableInfo, bytes, int, str | None]] = []
    for index, payload in enumerate(PAYLOADS):
        key = uuid.UUID(int=index + 1)
        rows.append((USERS, key.bytes, 1 + index % 2, _db_text(payload, str(key))))
    rows.append((USERS, uuid.UUID(int=99).bytes, 3, None))
    rows.append(
        (FILES, "k\u00e9y <&>".encode(), 1, json.dumps({"name": "k\u00e9y <&>", "data": "\\x00ff"}))
    )
    rows.append((FILES, b"gone", 3, None))

    encoder = BundleEncoder(42)
    stored = [encoder.add(table, key, op, text) for table, key, op, text in rows]

    served = []
    expected_stored = []
    for table, key, op, text in rows:
        row: dict[str, Any] = {
            "schema": table.schema,
            "table": table.table,
            "key": wire_key(table, key),
            "op": {1: "INSERT", 2: "UPDATE", 3: "DELETE"}[op],
            "row_version": 42,
        }
        if text is None:
            expected_stored.append(None)
        else:
            row["payload"] = wire_payload_from_db_text(table, text)
            expected_stored.append(exact_json(row["payload"]))
        served.append(row)
    assert stored == expected_stored
    assert encoder.result() == bundle_hash(served)
    assert '"n":9007199254740993' in (stored[3] or "")  # big integers stay exact when stored
