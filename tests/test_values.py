"""Keys and values between PostgreSQL and the wire (protocol.md §2-§3): unit checks of the
conversions, and round trips of every supported column type through a real server over HTTP."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from oversync_server.engine.catalog import KeyKind
from oversync_server.engine.values import (
    ValueFormatError,
    bytea_from_wire,
    bytea_to_wire,
    exact_json,
    key_from_bytes,
    key_to_bytes,
    plain_canonical_json,
)
from oversync_wire import bundle_hash, canonical_json
from protocol_helpers import attach, config_file, row
from push_support import chunk, committed, error, page, staging, upload
from serverproc import ServerProcess

# ------------------------------------------------------------------------------ unit


def test_uuid_keys_must_be_canonical() -> None:
    key = "550e8400-e29b-41d4-a716-446655440000"
    assert key_to_bytes(KeyKind.UUID, key) == uuid.UUID(key).bytes
    assert key_from_bytes(KeyKind.UUID, uuid.UUID(key).bytes) == key
    for bad in (key.upper(), key.replace("-", ""), "{" + key + "}", key + "\n", "nope", ""):
        with pytest.raises(ValueFormatError, match="canonical dashed lowercase UUID"):
            key_to_bytes(KeyKind.UUID, bad)


@pytest.mark.parametrize(
    "payload",
    [
        {"b": "x<y>&\u2028\u2029", "a": None, "c": True, "d": 2**53, "e": -(2**53), "é": "ü"},
        {"z": '\x01\x7f\n\t\b\f"\\/', "emoji": "\U0001f600", "": ""},
        {"lone": "\ud800"},  # Go writes U+FFFD: the general path
        {"big": 2**53 + 1},
        {"float": 1.5},
        {"nested": {"a": 1}},
        {"list": [1]},
        {"bool_int": False, "n": 0},
    ],
)
def test_the_plain_fast_path_is_the_canonical_encoding(payload: dict[str, Any]) -> None:
    fast = plain_canonical_json(payload)
    plain = all(
        type(v) in (str, bool, type(None)) or (type(v) is int and abs(v) <= 2**53)
        for v in payload.values()
    ) and not any(
        "\ud800" <= ch <= "\udfff" for v in payload.values() if type(v) is str for ch in v
    )
    assert (fast is not None) == plain
    if fast is not None:
        assert fast == exact_json(payload) == canonical_json(payload).decode("utf-8")


def test_text_keys_are_utf8() -> None:
    assert key_to_bytes(KeyKind.TEXT, "clé-🎉") == "clé-🎉".encode()
    assert key_from_bytes(KeyKind.TEXT, "clé-🎉".encode()) == "clé-🎉"


def test_bytea_conversions() -> None:
    assert bytea_to_wire("\\x0001ff") == "AAH/"
    assert bytea_to_wire("\\x") == ""
    assert bytea_to_wire("AAH/") == "AAH/"  # already base64 (a stored wire payload)
    assert bytea_from_wire("AAH/") == "\\x0001ff"
    assert bytea_from_wire("") == "\\x"
    for bad in ("AAH", "AA=H", "A-_/", "AAH/\n"):
        with pytest.raises(ValueFormatError):
            bytea_from_wire(bad)


# ------------------------------------------------------------------------------ round trips

VALUE_TABLE = """
CREATE SCHEMA IF NOT EXISTS business;
CREATE DOMAIN business.positive_int AS INTEGER CHECK (VALUE > 0);
CREATE TABLE business.value_rows (
    _sync_scope_id TEXT NOT NULL,
    id TEXT NOT NULL,
    small_v SMALLINT, int_v INTEGER, big_v BIGINT,
    num_v NUMERIC, num_scaled NUMERIC(12, 2), real_v REAL, double_v DOUBLE PRECISION,
    bool_v BOOLEAN, date_v DATE, time_v TIME, ts_v TIMESTAMP, tstz_v TIMESTAMPTZ,
    bytes_v BYTEA, json_v JSON, jsonb_v JSONB, uuid_v UUID, varchar_v VARCHAR(8), char_v CHAR(3),
    positive_v business.positive_int,
    PRIMARY KEY (_sync_scope_id, id)
);
"""


@pytest.fixture
def value_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    import asyncio

    async def prepare() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(VALUE_TABLE)
        finally:
            await conn.close()

    asyncio.run(prepare())
    tables = [
        {"schema": "business", "table": "users", "sync_key_columns": ["id"]},
        {"schema": "business", "table": "value_rows", "sync_key_columns": ["id"]},
    ]
    config = config_file(tmp_path, registered_tables=tables)
    process = ServerProcess(database_url, config=config, extra_args=("--example-schema",))
    process.start(tmp_path)
    try:
        yield process
    finally:
        process.stop()


def _push_one(
    client: Any, sbid: int, key: str, payload: dict[str, Any], op: str = "INSERT", base: int = 0
) -> dict[str, Any]:
    push_id = staging(client, "dev-a", sbid, 1)
    upload(client, "dev-a", push_id, 0, [row("value_rows", op, key, payload, base=base)])
    result = committed(client, "dev-a", push_id)
    rows = page(client, "dev-a", result.bundle_seq).rows
    wire = [item.to_dict() for item in rows]
    assert bundle_hash(wire)[0] == result.bundle_hash  # the client's recomputation agrees
    served: dict[str, Any] = wire[0]["payload"]
    return served


def test_value_round_trips(value_server: ServerProcess) -> None:
    blob = bytes(range(256))
    payload = {
        "small_v": -32768,
        "int_v": 2147483647,
        "big_v": 9007199254740993,  # beyond 2**53: kept exact (Go rounds it through float64)
        "num_v": 12.50,
        "num_scaled": "1234.5",
        "real_v": 0.1,
        "double_v": 6.57111473696007,
        "bool_v": True,
        "date_v": "2026-03-24",
        "time_v": "18:42:11.5",
        "ts_v": "2026-03-24 18:42:11.123456",
        "tstz_v": "2026-03-24T18:42:11.123456Z",
        "bytes_v": base64.b64encode(blob).decode(),
        "json_v": {"b": [1, 2.5, None, {"z": "<&>"}], "a": True},
        "jsonb_v": {"k": "v"},
        "uuid_v": "550E8400-E29B-41D4-A716-446655440000",  # PG accepts it; served canonical
        "varchar_v": "héllo",
        "char_v": "ab",
        "positive_v": 7,
    }
    with value_server.client("alice") as client:
        attach(client, "dev-a")
        served = _push_one(client, 1, "row-1", payload)
    assert served["id"] == "row-1" and "_sync_scope_id" not in served
    assert served["small_v"] == -32768 and served["int_v"] == 2147483647
    assert served["big_v"] == 9007199254740993
    assert served["num_v"] == 12.5 and served["num_scaled"] == 1234.5
    assert served["real_v"] == pytest.approx(0.1) and served["double_v"] == 6.57111473696007
    assert served["bool_v"] is True
    assert (served["date_v"], served["time_v"]) == ("2026-03-24", "18:42:11.5")
    assert served["ts_v"] == "2026-03-24T18:42:11.123456"
    instant = datetime.fromisoformat(served["tstz_v"])
    assert instant == datetime.fromisoformat("2026-03-24T18:42:11.123456+00:00")
    assert base64.b64decode(served["bytes_v"], validate=True) == blob
    assert served["json_v"] == {"a": True, "b": [1, 2.5, None, {"z": "<&>"}]}
    assert served["jsonb_v"] == {"k": "v"}
    assert served["uuid_v"] == "550e8400-e29b-41d4-a716-446655440000"
    assert (served["varchar_v"], served["char_v"]) == ("héllo", "ab ")
    assert served["positive_v"] == 7


def test_numeric_and_float_edges(value_server: ServerProcess) -> None:
    with value_server.client("alice") as client:
        attach(client, "dev-a")
        served = _push_one(
            client,
            1,
            "edges",
            {
                "big_v": -(2**63),
                "int_v": -(2**31),
                "num_v": 12345678901234567890,
                "double_v": 1e21,
                "real_v": 1e-7,
                "small_v": 0,
                "bool_v": 1,  # numbers go through PG's text input: 1 is true
            },
        )
        assert (served["big_v"], served["int_v"]) == (-(2**63), -(2**31))
        assert served["num_v"] == 12345678901234567890
        assert served["double_v"] == 1e21 and served["real_v"] == pytest.approx(1e-7)
        assert served["bool_v"] is True
        tiny = _push_one(client, 2, "tiny", {"double_v": 5e-324, "num_v": -0.000001})
        assert tiny["double_v"] == 5e-324 and tiny["num_v"] == -0.000001
        huge = _push_one(client, 3, "huge", {"double_v": 1.7976931348623157e308})
        assert huge["double_v"] == 1.7976931348623157e308
        top = _push_one(client, 4, "top", {"big_v": 2**63 - 1})
        assert top["big_v"] == 2**63 - 1


def test_unicode_keys_and_text(value_server: ServerProcess) -> None:
    text = 'héllo 世界 🎉 <tag> & \u2028 "quoted" \\ \t\n\x01'
    with value_server.client("alice") as client:
        attach(client, "dev-a")
        served = _push_one(client, 1, "clé-🎉", {"varchar_v": "ünï", "json_v": {"t": text}})
        assert served["id"] == "clé-🎉" and served["varchar_v"] == "ünï"
        assert served["json_v"] == {"t": text}
        rows = page(client, "dev-a", 1).rows
        assert rows[0].to_dict()["key"] == {"id": "clé-🎉"}
        # update and delete by the unicode key
        updated = _push_one(client, 2, "clé-🎉", {"varchar_v": "x"}, op="UPDATE", base=1)
        assert updated["json_v"] == {"t": text}  # untouched column kept


def test_nulls_and_empty_bytes(value_server: ServerProcess) -> None:
    with value_server.client("alice") as client:
        attach(client, "dev-a")
        served = _push_one(client, 1, "nulls", {"bytes_v": "", "json_v": None, "int_v": None})
        assert served["bytes_v"] == "" and served["json_v"] is None and served["int_v"] is None
        assert served["num_v"] is None  # absent columns are in the after-image too


def test_out_of_range_values_are_refused_at_upload(value_server: ServerProcess) -> None:
    cases = {
        "big_v": 2**63,
        "int_v": -(2**63),
        "real_v": "fast",
        "small_v": 1.5,
        "varchar_v": "much too long",
        "uuid_v": "nope",
        "date_v": "2026-13-01",
        "time_v": "25:00",
        "positive_v": -1,  # a domain's CHECK
        "num_scaled": 1e12,
    }
    with value_server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 1)
        for column, value in cases.items():
            bad = row("value_rows", "INSERT", "bad", {column: value})
            problem = error(chunk(client, "dev-a", push_id, 0, [bad]), 400, "push_chunk_invalid")
            assert (
                f'business.value_rows has an invalid value for column "{column}"' in problem.message
            )
