"""Value codecs: exact round trips between SQLite values and the wire encoding."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sdk_helpers import business_config

from oversqlite import UnsupportedValueError, format_timestamp, parse_timestamp
from oversqlite._codec import key_from_wire, key_to_wire, params_from_wire, row_to_wire
from oversqlite._schema import TableInfo, load_tables

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


@pytest.fixture
def tables(db_path: Path) -> dict[str, TableInfo]:
    return load_tables(sqlite3.connect(db_path), business_config().sync_tables)


def roundtrip(table: TableInfo, row: tuple[object, ...]) -> tuple[object, ...]:
    pk = row[0].hex() if isinstance(row[0], bytes) else str(row[0])
    wire = row_to_wire(table, row, pk)
    # Through JSON text, as on the wire and in the outbox.
    return params_from_wire(table, json.loads(json.dumps(wire)), pk)


@pytest.mark.parametrize("count", [INT64_MIN, -1, 0, 2**53 + 1, INT64_MAX])
@pytest.mark.parametrize("rating", [0.1, -0.0, 1e-300, 1.7976931348623157e308, 6.57111473696007])
def test_numbers_round_trip_exactly(
    tables: dict[str, TableInfo], count: int, rating: float
) -> None:
    row = (str(uuid.uuid4()), "n", None, count, 1, rating, None, None)
    assert roundtrip(tables["typed_rows"], row) == row


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain",
        "émoji 🎉 and 中文",
        "<b>&amp;</b>",
        "line\u2028sep\u2029para",
        "nul\x00byte",
        "\ud7ff",
    ],
)
def test_text_round_trips_exactly(tables: dict[str, TableInfo], text: str) -> None:
    row = (str(uuid.uuid4()), text, text, None, 0, None, None, "2026-03-24T18:42:11.5+00:00")
    assert roundtrip(tables["typed_rows"], row) == row


@pytest.mark.parametrize("data", [b"", b"\x00", bytes(range(256)), b"\xff" * 1000])
def test_blobs_travel_as_padded_base64(tables: dict[str, TableInfo], data: bytes) -> None:
    fid = uuid.uuid4()
    row = (fid.bytes, "f", data)
    wire = row_to_wire(tables["files"], row, fid.bytes.hex())
    assert wire["id"] == str(fid)
    import base64

    assert wire["data"] == base64.b64encode(data).decode()
    assert roundtrip(tables["files"], row) == row


def test_blob_foreign_keys_travel_as_uuids(tables: dict[str, TableInfo]) -> None:
    rid, fid = uuid.uuid4(), uuid.uuid4()
    wire = row_to_wire(tables["file_reviews"], (rid.bytes, "ok", fid.bytes), rid.bytes.hex())
    assert wire == {"id": str(rid), "review": "ok", "file_id": str(fid)}


def test_keys_convert_between_local_and_wire(tables: dict[str, TableInfo]) -> None:
    fid = uuid.uuid4()
    assert key_to_wire(tables["files"], fid.hex) == str(fid)
    assert key_from_wire(tables["files"], {"id": str(fid)}) == fid.hex
    uid = str(uuid.uuid4())
    assert key_from_wire(tables["users"], {"id": uid}) == uid


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ("files", {"id": uuid.uuid4().hex}),  # 32-hex is not the wire form
        ("files", {"id": 5}),
        ("users", {"id": str(uuid.uuid4()).upper()}),
        ("users", {"name": "x"}),
        ("users", {"id": ""}),
    ],
)
def test_non_canonical_wire_keys_are_rejected(
    tables: dict[str, TableInfo], table: str, key: dict[str, object]
) -> None:
    with pytest.raises(ValueError):
        key_from_wire(tables[table], key)


@pytest.mark.parametrize(
    "data",
    ["AAE", "00", "AA E=", "AAE=\n", 12, "AAF="],  # unpadded, hex, spaces, stray bits
)
def test_blob_decoding_is_strict(tables: dict[str, TableInfo], data: object) -> None:
    fid = uuid.uuid4()
    with pytest.raises(ValueError):
        params_from_wire(tables["files"], {"id": str(fid), "name": "f", "data": data}, fid.hex)


def test_payload_must_match_the_local_columns(tables: dict[str, TableInfo]) -> None:
    uid = str(uuid.uuid4())
    full = {"id": uid, "name": "n", "email": "e", "created_at": None, "updated_at": None}
    params_from_wire(tables["users"], full, uid)
    with pytest.raises(ValueError, match="missing"):
        params_from_wire(tables["users"], {k: v for k, v in full.items() if k != "email"}, uid)
    with pytest.raises(ValueError, match="unexpected"):
        params_from_wire(tables["users"], {**full, "extra": 1}, uid)
    with pytest.raises(ValueError, match="does not match the row key"):
        params_from_wire(tables["users"], {**full, "id": str(uuid.uuid4())}, uid)
    with pytest.raises(ValueError, match="int64"):
        params_from_wire(
            tables["typed_rows"],
            {
                "id": uid,
                "name": "n",
                "note": None,
                "count_value": 2**63,
                "enabled_flag": 1,
                "rating": None,
                "data": None,
                "created_at": None,
            },
            uid,
        )


def test_values_without_a_wire_encoding_are_refused(tables: dict[str, TableInfo]) -> None:
    row = (str(uuid.uuid4()), "n", None, None, 1, float("inf"), None, None)
    with pytest.raises(UnsupportedValueError, match="REAL"):
        row_to_wire(tables["typed_rows"], row, str(row[0]))
    with pytest.raises(UnsupportedValueError, match="16 bytes"):
        row_to_wire(tables["file_reviews"], (uuid.uuid4().bytes, "r", b"short"), "00")


def test_json_values_from_the_server_are_stored_as_json_text(tables: dict[str, TableInfo]) -> None:
    uid = str(uuid.uuid4())
    payload = {
        "id": uid,
        "name": "n",
        "note": {"a": [1, "é"]},
        "count_value": True,
        "enabled_flag": 1,
        "rating": 2,
        "data": None,
        "created_at": None,
    }
    params = params_from_wire(tables["typed_rows"], payload, uid)
    assert params[2] == '{"a":[1,"é"]}' and params[3] == 1


def test_timestamps_format_like_postgresql_and_parse_rfc3339() -> None:
    moment = datetime(2026, 3, 24, 18, 42, 11, 123400, tzinfo=timezone(timedelta(hours=2)))
    assert format_timestamp(moment) == "2026-03-24T16:42:11.1234+00:00"
    assert format_timestamp(moment.replace(microsecond=0)) == "2026-03-24T16:42:11+00:00"
    assert parse_timestamp("2026-03-24T16:42:11.1234Z") == moment
    assert parse_timestamp(format_timestamp(moment)) == moment
    with pytest.raises(ValueError):
        format_timestamp(datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        parse_timestamp("2026-01-01T00:00:00")
    assert parse_timestamp("2026-01-01T00:00:00+00:00").tzinfo is not None
    assert parse_timestamp("2026-01-01T00:00:00+00:00") == datetime(2026, 1, 1, tzinfo=UTC)
