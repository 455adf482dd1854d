"""Cheap refusal of push chunks that are too long or malformed, before FastAPI decodes them.

FastAPI decodes a request body into Python objects with `json.loads` and validates the whole of
it, building one error for every bad field of every row: a 1,000,000-row chunk of `{"a":1}`
(8 MB) took 25 s and 3.9 GB before the service looked at the row count, and one row whose key
holds a million entries costs the same. pydantic cannot help on its own (`validate_json` parses
the whole document into a tree first: 450 MB for those 8 MB, and `max_length` is checked after).

`check_chunk(body, ...)` walks the document with the C scanner of the `json` module instead:
the top-level object key by key, and the `rows` array one element at a time, so it holds one
row at a time and stops counting at twice the limit. Each row is validated by a fail-fast copy
of the generated row model (the same schema, but lists and dicts stop at their first bad item),
so a bad row costs one error, not one per field. The answer is the one the service would give:

* more rows than `max_rows_per_push_chunk`: 400 `push_chunk_invalid` "rows length N exceeds
  max_rows_per_push_chunk M" (N is "more than 2M" beyond twice the limit, where counting stops);
* a row that does not validate: the request-validation error FastAPI would report first
  (`errors.validation_error`), computed on a stand-in document holding only that row;
* a top-level array beyond 64 KiB: the "not an object" error, without decoding the array;
* any of these without an `Oversync-Source-ID` header: the error for the missing header.

Anything else (a valid chunk, or a body that is not JSON) returns None and the request goes on
to FastAPI unchanged, where it costs what it costs today: a valid chunk is decoded twice, once
here, which is cheap next to staging its rows. The check runs before the token is verified: a
chunk that cannot be accepted is refused whoever sends it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError
from pydantic_core import SchemaValidator

from oversync_protocol import models
from oversync_server.engine.errors import SyncError
from oversync_server.errors import validation_error

OPERATION_ID = "uploadPushChunk"
# A top-level array up to this size goes to FastAPI, which also reports it if it is not JSON.
SMALL_DOCUMENT_BYTES = 64 * 1024
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_FAIL_FAST_TYPES = frozenset({"list", "dict", "set", "frozenset", "tuple"})
_decode_at = json.JSONDecoder().raw_decode  # the C scanner: one JSON value at a position


def _fail_fast(schema: Any) -> Any:
    """A copy of a pydantic core schema whose containers stop at their first bad item.

    Model nodes are replaced by their field schemas: a `model` node would be served by the
    model's prebuilt validator (ignoring the changes), and the instances are not needed.
    """
    if isinstance(schema, dict):
        if schema.get("type") == "model":
            return _fail_fast(schema["schema"])
        copied = {name: _fail_fast(value) for name, value in schema.items()}
        if copied.get("type") in _FAIL_FAST_TYPES:
            copied["fail_fast"] = True
        return copied
    if isinstance(schema, list):
        return [_fail_fast(item) for item in schema]
    return schema


_ROW = SchemaValidator(_fail_fast(models.PushRequestRow.__pydantic_core_schema__))
_CHUNK = SchemaValidator(_fail_fast(models.PushChunkRequest.__pydantic_core_schema__))


class _NotDecided(Exception):
    """The body is not a JSON document this check understands: let FastAPI answer it."""


def _skip_whitespace(text: str, position: int) -> int:
    match = _WHITESPACE.match(text, position)
    assert match is not None  # the pattern matches the empty string
    return match.end()


def _value(text: str, position: int) -> tuple[Any, int]:
    try:
        value, end = _decode_at(text, position)
    except (ValueError, RecursionError):
        raise _NotDecided from None
    return value, end


def _expect(text: str, position: int, allowed: str) -> str:
    if position >= len(text) or text[position] not in allowed:
        raise _NotDecided
    return text[position]


def too_many_rows(count: str, limit: int) -> SyncError:
    return SyncError(
        "push_chunk_invalid", f"rows length {count} exceeds max_rows_per_push_chunk {limit}"
    )


def _walk_rows(text: str, position: int, limit: int) -> tuple[int, tuple[int, Any] | None, int]:
    """Count (up to 2 x limit + 1) and validate the elements of the array at `position`.

    Returns the element count, the first invalid row (index, value) and the end position.
    """
    cap = 2 * limit
    count = 0
    invalid: tuple[int, Any] | None = None
    position = _skip_whitespace(text, position + 1)
    if position < len(text) and text[position] == "]":
        return 0, None, position + 1
    while True:
        element, position = _value(text, position)
        count += 1
        if count > cap:
            return count, invalid, position
        if invalid is None and count <= limit:
            try:
                _ROW.validate_python(element, from_attributes=True)  # as FastAPI validates
            except ValidationError:
                invalid = (count - 1, element)
        position = _skip_whitespace(text, position)
        if _expect(text, position, ",]") == "]":
            return count, invalid, position + 1
        position = _skip_whitespace(text, position + 1)


def _records(document: Any, row_index: int = 0) -> list[dict[str, Any]]:
    """FastAPI-shaped validation records of `document` (a stand-in whose only row is the
    chunk's row `row_index`)."""
    try:
        _CHUNK.validate_python(document, from_attributes=True)
    except ValidationError as error:
        records = []
        for record in error.errors(include_url=False):
            location = tuple(record["loc"])
            if location[:2] == ("rows", 0):
                location = ("rows", row_index, *location[2:])
            records.append({**record, "loc": ("body", *location)})
        return records
    return []


def _source_header_missing(headers: list[tuple[bytes, bytes]]) -> bool:
    return not any(name == b"oversync-source-id" and value for name, value in headers)


def check_chunk(body: bytes, max_rows: int, headers: list[tuple[bytes, bytes]]) -> SyncError | None:
    """The refusal of a push chunk body that is too long or malformed, or None to go on."""
    try:
        text = body.decode(json.detect_encoding(body), "surrogatepass")
        decision = _check(text, max_rows, small=len(body) <= SMALL_DOCUMENT_BYTES)
    except (_NotDecided, UnicodeDecodeError, LookupError):
        return None
    if decision is None:
        return None
    if _source_header_missing(headers):  # the service would refuse the request for that first
        return validation_error(OPERATION_ID, [{"type": "missing", "loc": ("header",)}])
    if isinstance(decision, SyncError):
        return decision
    return validation_error(OPERATION_ID, decision)


def _check(text: str, max_rows: int, *, small: bool) -> SyncError | list[dict[str, Any]] | None:
    position = _skip_whitespace(text, 0)
    if position >= len(text):
        return None
    if text[position] == "[" and not small:  # not an object: never decode a big array
        return _records([])
    if text[position] != "{":
        return None
    others: dict[str, Any] = {}
    invalid: tuple[int, Any] | None = None
    position = _skip_whitespace(text, position + 1)
    if _expect(text, position, '"}') == "}":
        return None
    while True:
        _expect(text, position, '"')
        key, position = _value(text, position)
        position = _skip_whitespace(text, position)
        _expect(text, position, ":")
        position = _skip_whitespace(text, position + 1)
        if key == "rows" and position < len(text) and text[position] == "[":
            count, invalid, position = _walk_rows(text, position, max_rows)
            if count > 2 * max_rows:
                return too_many_rows(f"more than {2 * max_rows}", max_rows)
            if count > max_rows:
                return too_many_rows(str(count), max_rows)
            others.pop("rows", None)
        else:
            others[key], position = _value(text, position)
            if key == "rows":  # a later `rows` wins, as in json.loads
                invalid = None
        position = _skip_whitespace(text, position)
        if _expect(text, position, ",}") == "}":
            break
        position = _skip_whitespace(text, position + 1)
    if _skip_whitespace(text, position + 1) != len(text):
        return None  # trailing data: FastAPI's decoder refuses it (cheaply)
    if invalid is None:
        return None
    index, row = invalid
    return _records({**others, "rows": [row]}, index)
