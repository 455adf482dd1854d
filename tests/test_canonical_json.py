"""Go-canonical JSON, bundle_hash and RFC3339Nano formatting (oversync_wire).

The vectors in tests/data/hash-vectors.json were produced by go-oversync's own canonicalJSON /
computeCommittedBundleHash; every case must match byte for byte. No PostgreSQL needed.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import random
import struct
import sys
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("oversync_wire") is None:  # not installed: use the source tree
    sys.path.append(str(Path(__file__).resolve().parents[1] / "common"))

from oversync_wire import (
    CanonicalJSONError,
    CanonicalJSONTypeError,
    bundle_hash,
    bundle_hash_input,
    canonical_json,
    canonicalize_json_text,
    format_float64,
    normalize_payload,
    parse_json_text,
    rfc3339_nano,
)

VECTORS: dict[str, Any] = json.loads(
    (Path(__file__).parent / "data" / "hash-vectors.json").read_text(encoding="utf-8")
)
CANON_CASES: list[dict[str, str]] = VECTORS["canonical_json"]
BUNDLE_CASES: list[dict[str, Any]] = VECTORS["bundle_hash"]


def test_vector_file_is_complete() -> None:
    assert len(CANON_CASES) == 38
    assert len(BUNDLE_CASES) == 6


# --------------------------------------------------------------------------------------------
# reference vectors


@pytest.mark.parametrize("case", CANON_CASES, ids=[c["input"][:40] for c in CANON_CASES])
def test_canonicalize_vector(case: dict[str, str]) -> None:
    expected = case["go_canonical"].encode("utf-8")
    assert canonicalize_json_text(case["input"]) == expected
    assert canonicalize_json_text(case["input"].encode("utf-8")) == expected
    # the value path: Python's json.loads also keeps the last duplicate key
    assert canonical_json(json.loads(case["input"])) == expected
    # the canonical form is a fixed point
    assert canonicalize_json_text(expected) == expected


@pytest.mark.parametrize("case", BUNDLE_CASES, ids=[c["name"] for c in BUNDLE_CASES])
def test_bundle_hash_vector(case: dict[str, Any]) -> None:
    expected = case["canonical"].encode("utf-8")
    assert bundle_hash_input(case["rows"]) == expected
    assert bundle_hash(case["rows"]) == (case["bundle_hash"], case["byte_count"])
    assert hashlib.sha256(expected).hexdigest() == case["bundle_hash"]
    assert len(expected) == case["byte_count"]


@pytest.mark.parametrize("case", BUNDLE_CASES, ids=[c["name"] for c in BUNDLE_CASES])
def test_bundle_hash_vector_with_explicit_ordinals(case: dict[str, Any]) -> None:
    rows = [{**row, "row_ordinal": i} for i, row in enumerate(case["rows"])]
    for row in rows:
        if row["op"] == "DELETE":
            row["payload"] = None
    assert bundle_hash(rows) == (case["bundle_hash"], case["byte_count"])
    # rows coming from a generator (e.g. a DB cursor) work too
    assert bundle_hash(iter(rows)) == (case["bundle_hash"], case["byte_count"])


# --------------------------------------------------------------------------------------------
# protocol.md §5.4 worked examples

USERS_INSERT: dict[str, Any] = {
    "row_ordinal": 0,
    "schema": "business",
    "table": "users",
    "key": {"id": "550e8400-e29b-41d4-a716-446655440000"},
    "op": "INSERT",
    "row_version": 143,
    "payload": {
        "id": "550e8400-e29b-41d4-a716-446655440000",
        "name": "John Doe",
        "email": "john@example.com",
    },
}
USERS_DELETE: dict[str, Any] = {
    "row_ordinal": 1,
    "schema": "business",
    "table": "users",
    "key": {"id": "6ba7b810-9dad-11d1-80b4-00c04fd430c8"},
    "op": "DELETE",
    "row_version": 143,
    "payload": None,
}


def test_worked_example_single_insert() -> None:
    assert bundle_hash_input([USERS_INSERT]) == (
        b'[{"key":{"id":"550e8400-e29b-41d4-a716-446655440000"},"op":"INSERT",'
        b'"payload":{"email":"john@example.com","id":"550e8400-e29b-41d4-a716-446655440000",'
        b'"name":"John Doe"},"row_ordinal":0,"row_version":143,"schema":"business",'
        b'"table":"users"}]'
    )
    assert bundle_hash([USERS_INSERT]) == (
        "0ab2b08d01bb7da478119a608463e98fe6ce37ee7cdf4b63d1dc4d5894c81f28",
        240,
    )


def test_worked_example_insert_and_delete() -> None:
    assert bundle_hash([USERS_INSERT, USERS_DELETE]) == (
        "aea47a94e5bcc822ceb4e7d079c2fdddaff5323935407765314386483debf1c8",
        393,
    )


# --------------------------------------------------------------------------------------------
# numbers


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e21, "1e+21"),
        (1.5e21, "1.5e+21"),
        (1e20, "100000000000000000000"),
        (999999999999999900000.0, "999999999999999900000"),
        (1e-7, "1e-7"),
        (-1e-7, "-1e-7"),
        (1.5e-7, "1.5e-7"),
        (1e-6, "0.000001"),
        (1e-5, "0.00001"),
        (-2.5e-5, "-0.000025"),
        (1e-4, "0.0001"),
        (100.0, "100"),
        (1.0, "1"),
        (0.1, "0.1"),
        (-12.5, "-12.5"),
        (0.0, "0"),
        (-0.0, "-0"),
        (1e16, "10000000000000000"),
        (2**53 + 1, "9007199254740992"),
        (2**53, "9007199254740992"),
        (-(2**63), "-9223372036854776000"),
        (12345678901234567890, "12345678901234567000"),
        (10**21, "1e+21"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (2147483647, "2147483647"),
        (Decimal("1.10"), "1.1"),
        (Decimal("-0"), "-0"),
        (Decimal("123456789012345678901234567890"), "1.2345678901234568e+29"),
    ],
)
def test_numbers(value: float | int | Decimal, expected: str) -> None:
    assert canonical_json(value) == expected.encode()
    assert canonical_json([value]) == f"[{expected}]".encode()
    assert canonical_json({"n": value}) == f'{{"n":{expected}}}'.encode()


def test_bool_is_not_a_number() -> None:
    assert canonical_json([True, False, None, 1, 0]) == b"[true,false,null,1,0]"


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 2**1024, -(2**1024), 10**400, Decimal("NaN"), Decimal("1e400")],
)
def test_unrepresentable_numbers_raise(value: float | int | Decimal) -> None:
    with pytest.raises(CanonicalJSONError):
        canonical_json({"x": [value]})
    with pytest.raises(ValueError):
        normalize_payload(value)


def test_largest_integer_rounding_to_max_float_is_accepted() -> None:
    # rounds down to the largest finite float64, as strconv.ParseFloat does
    assert canonical_json(2**1024 - 2**970 - 1) == b"1.7976931348623157e+308"


@pytest.mark.parametrize(
    "text", ["NaN", "Infinity", "-Infinity", "[1e400]", "-1e400", "1" * 400, "1" * 5000]
)
def test_unrepresentable_numbers_in_text_raise(text: str) -> None:
    with pytest.raises(CanonicalJSONError):
        canonicalize_json_text(text)


def test_number_text_parsing() -> None:
    assert canonicalize_json_text("[-0, 0, -0.0, -0e5, 1E2, 1e-400, -1e-400]") == (
        b"[-0,0,-0,-0,100,0,-0]"
    )
    assert canonicalize_json_text("123456789012345678901234567890") == b"1.2345678901234568e+29"


def test_format_float64_matches_reference_sketch_on_random_floats() -> None:
    rnd = random.Random(20260624)
    for _ in range(3000):
        f = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        if math.isfinite(f):
            assert format_float64(f) == _oracle_number(f), repr(f)
    for exp in range(-323, 309):
        for f in (float(f"1e{exp}"), float(f"-1.5e{exp}"), float(f"9.999999999999999e{exp}")):
            if math.isfinite(f):
                assert format_float64(f) == _oracle_number(f), repr(f)


# --------------------------------------------------------------------------------------------
# strings


def test_html_characters_are_escaped() -> None:
    assert canonical_json("<>&") == b'"\\u003c\\u003e\\u0026"'
    assert (
        canonical_json({"<a&b>": "</script>"})
        == b'{"\\u003ca\\u0026b\\u003e":"\\u003c/script\\u003e"}'
    )


def test_line_separators_are_escaped() -> None:
    assert canonical_json("a\u2028b\u2029c") == b'"a\\u2028b\\u2029c"'


def test_control_characters() -> None:
    assert canonical_json("\b\f\n\r\t") == b'"\\b\\f\\n\\r\\t"'
    assert canonical_json("\x00\x01\x0b\x1f") == b'"\\u0000\\u0001\\u000b\\u001f"'
    assert canonical_json('"\\') == b'"\\"\\\\"'
    assert canonical_json("\x7f") == b'"\x7f"'  # DEL is not escaped
    assert canonical_json("a/b") == b'"a/b"'  # nor is the slash


def test_non_ascii_is_raw_utf8() -> None:
    text = "Zoë 日本 😀 \u00a0\u0085\ufffd"
    assert canonical_json(text) == b'"' + text.encode("utf-8") + b'"'


def test_surrogates() -> None:
    # lone surrogates become U+FFFD; a pair in a Python str is the character it encodes
    assert canonical_json("a\ud800b\udc00") == '"a\ufffdb\ufffd"'.encode()
    assert canonical_json("\ud83d\ude00") == '"😀"'.encode()
    assert (
        canonicalize_json_text('"\\ud800\\u0041\\udc00\\ud83d\\ude00"')
        == '"\ufffdA\ufffd😀"'.encode()
    )
    # keys collapsing to U+FFFD: the last one wins, as in Go's decoder
    assert (
        canonicalize_json_text('{"\\ud800":1,"\\udc00":2,"\\ud800":3}') == '{"\ufffd":3}'.encode()
    )


def test_invalid_utf8_becomes_one_replacement_per_byte() -> None:
    # Go replaces every byte of an invalid sequence; Python's "replace" would merge some
    assert canonicalize_json_text(b'"\xe2\x82A\xed\xa0\x80\xff"') == (
        '"\ufffd\ufffdA\ufffd\ufffd\ufffd\ufffd"'.encode()
    )


# --------------------------------------------------------------------------------------------
# objects, arrays, parsing


def test_nested_objects_sort_keys_at_every_level() -> None:
    value = {
        "z": {"b": [3, {"y": 1, "x": 2}], "a": None},
        "a": [{"d": True, "c": False}],
        "m": {},
        "k": [],
    }
    assert canonical_json(value) == (
        b'{"a":[{"c":false,"d":true}],"k":[],"m":{},"z":{"a":null,"b":[3,{"x":2,"y":1}]}}'
    )


def test_keys_sort_by_utf8_bytes() -> None:
    # UTF-16 order (RFC 8785) would put the astral key before U+E000
    value = {"😀": 1, "\ue000": 2, "é": 3, "Z": 4, "a": 5, "": 6}
    assert canonical_json(value) == '{"":6,"Z":4,"a":5,"é":3,"\ue000":2,"😀":1}'.encode()


def test_mappings_and_sequences() -> None:
    class Row(Mapping[str, Any]):
        def __init__(self, data: dict[str, Any]) -> None:
            self._data = data

        def __getitem__(self, key: str) -> Any:
            return self._data[key]

        def __iter__(self) -> Iterator[str]:
            return iter(self._data)

        def __len__(self) -> int:
            return len(self._data)

    assert canonical_json(Row({"b": (1, 2.0), "a": "x"})) == b'{"a":"x","b":[1,2]}'


@pytest.mark.parametrize("value", [{1: "a"}, {None: 1}, {b"k": 1}, {(1,): 2}])
def test_non_string_keys_raise(value: Any) -> None:
    with pytest.raises(CanonicalJSONTypeError):
        canonical_json(value)


@pytest.mark.parametrize("value", [b"bytes", {1, 2}, object(), datetime(2026, 1, 1, tzinfo=UTC)])
def test_unsupported_types_raise(value: Any) -> None:
    with pytest.raises(CanonicalJSONTypeError) as info:
        canonical_json({"v": value})
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    "text", ["", "{", "[1,]", "01", "'a'", '"\x01"', "1 2", "\ufeff1", "{a:1}"]
)
def test_invalid_json_text_raises(text: str) -> None:
    with pytest.raises(CanonicalJSONError):
        canonicalize_json_text(text)


def test_deep_nesting_raises_a_clean_error() -> None:
    deep: Any = []
    for _ in range(100_000):
        deep = [deep]
    with pytest.raises(CanonicalJSONError):
        canonical_json(deep)
    with pytest.raises(CanonicalJSONError):
        canonicalize_json_text("[" * 100_000 + "]" * 100_000)


def test_slow_float_path_keeps_all_other_rules() -> None:
    # -0.0 and |f| < 1e-4 are rendered without the C encoder; escapes and ordering still apply
    value = {"b": [-0.0, 1e-5, 1e-7], "a": "<\u2028>", "é": {"y": 1, "x": 0.5}}
    assert canonical_json(value) == (
        '{"a":"\\u003c\\u2028\\u003e","b":[-0,0.00001,1e-7],"é":{"x":0.5,"y":1}}'.encode()
    )


def test_strings_that_look_like_numbers_are_untouched() -> None:
    value = {"a": "1e-05", "b": ",-0.0,", "c": "4e-7", "d": [1e-5]}
    assert canonical_json(value) == b'{"a":"1e-05","b":",-0.0,","c":"4e-7","d":[0.00001]}'


# --------------------------------------------------------------------------------------------
# normalize_payload / parse_json_text


def test_normalize_payload_representation() -> None:
    out = normalize_payload(
        {
            "exact": 42,
            "big": 2**53 + 1,
            "huge": 12345678901234567890,
            "whole": 100.0,
            "e21": 1e21,
            "frac": 0.5,
            "negzero": -0.0,
            "dec": Decimal("2.50"),
            "tuple": (1, "x"),
            "text": "a\ud800",
            "flag": True,
        }
    )
    assert out == {
        "exact": 42,
        "big": 9007199254740992,
        "huge": 12345678901234567000,
        "whole": 100,
        "e21": 1e21,
        "frac": 0.5,
        "negzero": -0.0,
        "dec": 2.5,
        "tuple": [1, "x"],
        "text": "a\ufffd",
        "flag": True,
    }
    assert type(out["big"]) is int
    assert type(out["huge"]) is int
    assert float(out["huge"]) == float(12345678901234567890)
    assert type(out["whole"]) is int
    assert type(out["e21"]) is float
    assert math.copysign(1.0, out["negzero"]) == -1.0
    assert out["flag"] is True
    assert normalize_payload(out) == out
    assert canonical_json(out) == canonical_json(
        {
            "exact": 42,
            "big": 2**53 + 1,
            "huge": 12345678901234567890,
            "whole": 100.0,
            "e21": 1e21,
            "frac": 0.5,
            "negzero": -0.0,
            "dec": Decimal("2.50"),
            "tuple": (1, "x"),
            "text": "a\ud800",
            "flag": True,
        }
    )


def test_parse_json_text_is_normalized() -> None:
    assert parse_json_text(b'{"a":1,"a":9007199254740993,"b":[1.0,2.5,-0]}') == {
        "a": 9007199254740992,
        "b": [1, 2.5, -0.0],
    }


def test_normalize_does_not_mutate_input() -> None:
    value = {"a": [1.0, {"b": 2**60}]}
    normalize_payload(value)
    canonical_json(value)
    assert value == {"a": [1.0, {"b": 2**60}]}
    assert type(value["a"][0]) is float


# --------------------------------------------------------------------------------------------
# bundle_hash_input details


def test_delete_payload_is_always_null() -> None:
    row = {**USERS_DELETE, "payload": {"id": "ignored"}}
    assert bundle_hash([USERS_INSERT, row])[0] == (
        "aea47a94e5bcc822ceb4e7d079c2fdddaff5323935407765314386483debf1c8"
    )


def test_missing_payload_is_null() -> None:
    row = {k: v for k, v in USERS_DELETE.items() if k != "payload"}
    assert bundle_hash([USERS_INSERT, row])[1] == 393


def test_row_ordinal_must_match_position() -> None:
    with pytest.raises(CanonicalJSONError, match="row_ordinal"):
        bundle_hash([{**USERS_INSERT, "row_ordinal": 1}])
    with pytest.raises(CanonicalJSONError, match="row_ordinal"):
        bundle_hash([USERS_DELETE])


def test_bad_bundle_rows_raise() -> None:
    with pytest.raises(CanonicalJSONError, match="op"):
        bundle_hash([{**USERS_INSERT, "op": "UPSERT"}])
    with pytest.raises(CanonicalJSONError, match="schema"):
        bundle_hash([{k: v for k, v in USERS_INSERT.items() if k != "schema"}])


def test_empty_bundle() -> None:
    assert bundle_hash([]) == (hashlib.sha256(b"[]").hexdigest(), 2)


# --------------------------------------------------------------------------------------------
# independent oracle: the Go rules applied literally, character by character


def _oracle_number(f: float) -> str:
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    d = Decimal(repr(f)).normalize()
    if 1e-6 <= abs(f) < 1e21:
        return format(d, "f")
    sign, digits, exp = d.as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    e10 = exp + len(ds) - 1
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    return ("-" if sign else "") + mant + "e" + ("+" if e10 >= 0 else "-") + str(abs(e10))


_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _oracle_string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch in _SHORT:
            out.append(_SHORT[ch])
        elif ord(ch) < 0x20 or ch in "<>&\u2028\u2029":
            out.append(f"\\u{ord(ch):04x}")
        elif 0xD800 <= ord(ch) <= 0xDFFF:
            out.append("\ufffd")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _oracle(v: Any) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, int | float):
        return _oracle_number(float(v))
    if isinstance(v, str):
        return _oracle_string(v)
    if isinstance(v, list):
        return "[" + ",".join(_oracle(x) for x in v) + "]"
    assert isinstance(v, dict)
    keys = sorted(v, key=lambda k: k.encode("utf-8"))
    return "{" + ",".join(_oracle_string(k) + ":" + _oracle(v[k]) for k in keys) + "}"


_ALPHABET = [
    "a",
    "Z",
    " ",
    "<",
    ">",
    "&",
    "/",
    "\\",
    '"',
    "\n",
    "\b",
    "\f",
    "\t",
    "\r",
    "\x00",
    "\x1f",
    "\x7f",
    "é",
    "日",
    "😀",
    "\u2028",
    "\u2029",
    "\ue000",
    "\uffff",
    "e-",
    "1",
]


def _random_value(rnd: random.Random, depth: int = 0) -> Any:
    k = rnd.random()
    if depth < 4 and k < 0.15:
        return {
            _random_string(rnd): _random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 5))
        }
    if depth < 4 and k < 0.3:
        return [_random_value(rnd, depth + 1) for _ in range(rnd.randint(0, 5))]
    if k < 0.45:
        f = struct.unpack("<d", struct.pack("<Q", rnd.getrandbits(64)))[0]
        return f if math.isfinite(f) else 0.25
    if k < 0.55:
        return rnd.randint(-(2 ** rnd.randint(1, 90)), 2 ** rnd.randint(1, 90))
    if k < 0.6:
        return rnd.choice([0.0, -0.0, 1e-5, 3e-7, 1e21, 1e20, 100.0, 0.1, 2**53 + 1])
    if k < 0.9:
        return _random_string(rnd)
    return rnd.choice([True, False, None])


def _random_string(rnd: random.Random) -> str:
    return "".join(rnd.choice(_ALPHABET) for _ in range(rnd.randint(0, 6)))


def test_matches_literal_oracle_on_random_values() -> None:
    rnd = random.Random(5)
    for _ in range(3000):
        value = _random_value(rnd)
        expected = _oracle(value).encode("utf-8")
        assert canonical_json(value) == expected, value
        assert canonicalize_json_text(json.dumps(value)) == expected, value
        assert canonical_json(normalize_payload(value)) == expected, value


# --------------------------------------------------------------------------------------------
# rfc3339_nano


@pytest.mark.parametrize(
    ("dt", "expected"),
    [
        (datetime(2026, 3, 24, 18, 0, 0, tzinfo=UTC), "2026-03-24T18:00:00Z"),
        (datetime(2026, 3, 24, 18, 0, 0, 500000, tzinfo=UTC), "2026-03-24T18:00:00.5Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), "2026-01-02T03:04:05.123456Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 120, tzinfo=UTC), "2026-01-02T03:04:05.00012Z"),
        (datetime(2026, 1, 2, 3, 4, 5, 1, tzinfo=UTC), "2026-01-02T03:04:05.000001Z"),
        (
            datetime(2026, 1, 1, 1, 30, 0, 250000, tzinfo=timezone(timedelta(hours=2))),
            "2025-12-31T23:30:00.25Z",
        ),
        (
            datetime(2026, 6, 1, 12, 0, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
            "2026-06-01T17:30:00Z",
        ),
        (datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00Z"),
    ],
)
def test_rfc3339_nano(dt: datetime, expected: str) -> None:
    assert rfc3339_nano(dt) == expected


def test_rfc3339_nano_rejects_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        rfc3339_nano(datetime(2026, 1, 1))
