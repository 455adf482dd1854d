"""Go-compatible canonical JSON and the committed-bundle hash.

go-oversync hashes committed bundles over "Go ``encoding/json`` after a round trip through
``interface{}``" (protocol.md §5, server.md §14). The bytes produced here are bit-identical to
that:

* every number (``bool`` excluded) is an IEEE-754 float64 and is printed the Go/ECMAScript way:
  shortest round-trip digits, plain notation when ``1e-6 <= |f| < 1e21`` (no trailing ``.0``),
  otherwise ``d[.ddd]e±N`` (``1e+21``, ``1.5e-7``); negative zero prints as ``-0``;
* object keys are sorted by their UTF-8 bytes (for valid Unicode this is code-point order);
* strings use Go's escaping with HTML escaping on: ``\\" \\\\ \\b \\f \\n \\r \\t``, other
  control characters as ``\\u00xx`` (lowercase), ``<`` ``>`` ``&`` as ``\\u003c \\u003e
  \\u0026``, U+2028/U+2029 as ``\\u2028 \\u2029``; everything else (DEL, ``/``, all other
  non-ASCII) is written raw; a Python string's lone surrogates become U+FFFD and its surrogate
  pairs the character they encode (Go's decoder never yields surrogates);
* no whitespace at all.

Implementation: values are first *normalized* (see :func:`normalize_payload`) into a tree whose
stdlib ``json`` rendering already matches Go for every number except negative zero and floats
below 1e-4; the tree is then rendered by the C encoder of the stdlib ``json`` module with sorted
keys, and the five HTML/line-separator characters are replaced in the output (they can only occur
inside strings). A value containing one of those rare floats (normalization notes them) is
rendered by a small pure-Python renderer instead.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextvars import ContextVar
from decimal import Decimal
from json.encoder import encode_basestring as _encode_basestring
from typing import Any, Final, NoReturn

__all__ = [
    "BUNDLE_ROW_OPS",
    "BundleHasher",
    "CanonicalJSONError",
    "CanonicalJSONTypeError",
    "bundle_hash",
    "bundle_hash_input",
    "canonical_json",
    "canonicalize_json_text",
    "format_float64",
    "html_escaped",
    "normalize_payload",
    "parse_json_text",
    "sorted_compact_json",
]


class CanonicalJSONError(ValueError):
    """A value or JSON text that Go's ``encoding/json`` round trip cannot represent.

    Raised for numbers outside the float64 range, NaN/Infinity, invalid JSON text, nesting too
    deep to process and malformed bundle rows.
    """


class CanonicalJSONTypeError(CanonicalJSONError, TypeError):
    """A Python value of a type with no JSON counterpart (also a :class:`TypeError`)."""


BUNDLE_ROW_OPS: Final[frozenset[str]] = frozenset({"INSERT", "UPDATE", "DELETE"})

# Integers with magnitude <= 2**53 are exact in float64 and Go prints all their digits.
_MAX_EXACT_INT: Final = 2**53
# Ints parsed from JSON text with at most this many characters (sign included) are < 2**53.
_SHORT_INT_LEN: Final = 15

# A high+low surrogate pair (a Python str can hold one, e.g. from surrogatepass decoding), or a
# lone surrogate.
_SURROGATE_RE: Final = re.compile("[\ud800-\udbff][\udc00-\udfff]|[\ud800-\udfff]")
# Undecodable bytes, as mapped by the "surrogateescape" error handler.
_ESCAPED_BYTE_RE: Final = re.compile("[\udc80-\udcff]")
# In JSON *text*: a raw surrogate (only possible in str input) or a \\uD800-\\uDFFF escape.
# Only such texts can yield object keys that collapse to U+FFFD.
_SURROGATE_SOURCE_RE: Final = re.compile(r"[\ud800-\udfff]|\\u[dD][89a-fA-F]")
# After normalization the only floats that Python's json/repr prints differently from Go are
# -0.0 and non-integral values with |f| < 1e-4 (repr writes 1e-05). While canonical bytes are
# being built, normalization notes such floats here so that rendering can take the slow path.
_REPR_MISMATCH_FLOATS: ContextVar[list[float] | None] = ContextVar(
    "oversync_wire_repr_mismatch_floats", default=None
)


def _unserializable(obj: object) -> NoReturn:
    raise CanonicalJSONTypeError(f"type {type(obj).__name__} is not JSON serializable")


def _make_encode() -> Callable[[Any], str]:
    """Return a function rendering a normalized tree with sorted keys and no whitespace."""
    try:
        from _json import encode_basestring, make_encoder
    except ImportError:  # pragma: no cover - Python without the C accelerator
        return json.JSONEncoder(
            ensure_ascii=False,
            check_circular=False,
            allow_nan=False,
            sort_keys=True,
            separators=(",", ":"),
        ).encode
    # What json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False) builds on
    # every call, built once: the C encoder object is stateless when markers is None.
    c_encode = make_encoder(
        None, _unserializable, encode_basestring, None, ":", ",", True, False, False
    )

    def encode(normalized: Any) -> str:
        chunks = c_encode(normalized, 0)
        return chunks if isinstance(chunks, str) else "".join(chunks)

    return encode


_encode: Final = _make_encode()


def sorted_compact_json(value: Any) -> str:
    """``json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`` without
    building an encoder per call: no normalisation and no HTML escaping (for callers that know
    their value needs neither, e.g. only strings, booleans, nulls and small integers)."""
    return _encode(value)


# --------------------------------------------------------------------------------------------
# numbers


def format_float64(f: float) -> str:
    """Format a finite float64 exactly like Go ``encoding/json`` (ECMAScript number rules).

    >>> [format_float64(x) for x in (100.0, 1e21, 1e-7, 1e-6, -0.0, 1e16)]
    ['100', '1e+21', '1e-7', '0.000001', '-0', '10000000000000000']
    """
    if f == 0.0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    if not math.isfinite(f):
        raise CanonicalJSONError(f"{f!r} cannot be represented in JSON")
    r = repr(f)  # shortest round-trip digits, same digit string as Go's strconv
    a = abs(f)
    if 1e-6 <= a < 1e21:
        exp_pos = r.find("e")
        if exp_pos < 0:  # repr used plain notation (1e-4 <= |f| < 1e16)
            return r[:-2] if r.endswith(".0") else r
        mant, exp = r[:exp_pos], int(r[exp_pos + 1 :])
        sign = ""
        if mant[0] == "-":
            sign, mant = "-", mant[1:]
        digits = mant.replace(".", "")
        if exp < 0:  # 1e-6 <= |f| < 1e-4
            return f"{sign}0.{'0' * (-exp - 1)}{digits}"
        # 1e16 <= |f| < 1e21: at most 17 digits, so always an integer
        return sign + digits + "0" * (exp + 1 - len(digits))
    # exponent form: repr already gives "d[.ddd]e±XX"; Go drops a leading zero of the exponent
    mant, _, exp_text = r.partition("e")
    exp = int(exp_text)
    return f"{mant}e{'-' if exp < 0 else '+'}{-exp if exp < 0 else exp}"


def _int_to_float(value: int) -> float:
    try:
        return float(value)  # correctly rounded, like Go's strconv.ParseFloat
    except OverflowError:
        raise CanonicalJSONError(
            f"integer of {value.bit_length()} bits is outside the float64 range"
        ) from None


def _note_repr_mismatch(f: float) -> None:
    seen = _REPR_MISMATCH_FLOATS.get()
    if seen is not None:
        seen.append(f)


def _normalize_float(f: float) -> Any:
    if f.is_integer():  # False for inf and NaN
        if -_MAX_EXACT_INT <= f <= _MAX_EXACT_INT:
            if f == 0.0 and math.copysign(1.0, f) < 0:
                _note_repr_mismatch(f)
                return f  # -0.0 must stay a float to keep its sign
            return int(f)
        if -1e21 < f < 1e21:
            # Go prints the shortest digits padded with zeros, e.g. 12345678901234567000 for
            # float64(12345678901234567890); this int has the same float64 value.
            return int(format_float64(f))
        return f  # Go uses exponent form, e.g. 1e+21; Python's repr agrees
    if not math.isfinite(f):
        raise CanonicalJSONError(f"{f!r} is not a valid JSON number (outside the float64 range)")
    if -1e-4 < f < 1e-4:
        _note_repr_mismatch(f)
    return f


# --------------------------------------------------------------------------------------------
# normalization


def _surrogate_replacement(match: re.Match[str]) -> str:
    units = match.group()
    if len(units) == 2:  # a pair denotes one astral character, as JSON \\uD83D\\uDE00 does
        return chr(0x10000 + ((ord(units[0]) - 0xD800) << 10) + (ord(units[1]) - 0xDC00))
    return "\ufffd"


def _fix_str(s: str) -> str:
    return _SURROGATE_RE.sub(_surrogate_replacement, s)


def _fix_key(key: object) -> str:
    if not isinstance(key, str):
        raise CanonicalJSONTypeError(f"object keys must be str, got {type(key).__name__}: {key!r}")
    return _fix_str(str(key))


def _normalize(value: Any) -> Any:
    t = type(value)
    if t is dict:
        return _normalize_items(value.items())
    if t is str:
        return value if value.isascii() else _SURROGATE_RE.sub(_surrogate_replacement, value)
    if t is int:
        if -_MAX_EXACT_INT <= value <= _MAX_EXACT_INT:
            return value
        return _normalize_float(_int_to_float(value))
    if t is float:
        return _normalize_float(value)
    if t is list:
        return [_normalize(v) for v in value]
    if value is None or t is bool:
        return value
    return _normalize_other(value)


def _normalize_items(items: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    # The common leaves (ASCII str, small int, None, bool) are handled inline: this loop runs
    # for every field of every row.
    out: dict[str, Any] = {}
    for k, v in items:
        if type(k) is not str or not k.isascii():
            k = _fix_key(k)
        t = type(v)
        if t is str:
            out[k] = v if v.isascii() else _SURROGATE_RE.sub(_surrogate_replacement, v)
        elif v is None or t is bool or (t is int and -_MAX_EXACT_INT <= v <= _MAX_EXACT_INT):
            out[k] = v
        else:
            out[k] = _normalize(v)
    return out


def _normalize_other(value: object) -> Any:
    if isinstance(value, str):
        return _fix_str(str(value))
    if isinstance(value, bool):  # pragma: no cover - bool cannot be subclassed
        return bool(value)
    if isinstance(value, int):
        return _normalize(int(value))
    if isinstance(value, float):
        return _normalize_float(float(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise CanonicalJSONError(f"{value!r} is not a valid JSON number")
        # float(Decimal) is correctly rounded, like Go parsing the same decimal text
        return _normalize_float(float(value))
    if isinstance(value, Mapping):
        return _normalize_items(value.items())
    if isinstance(value, Sequence) and not isinstance(value, bytes | bytearray | memoryview):
        return [_normalize(v) for v in value]
    raise CanonicalJSONTypeError(f"type {type(value).__name__} is not JSON serializable")


def normalize_payload(value: Any) -> Any:
    """Return ``value`` as Go sees it after ``json.Unmarshal`` into ``interface{}``.

    The result is "what is hashed": ``canonical_json(normalize_payload(v)) == canonical_json(v)``
    and ``normalize_payload`` is idempotent. It is a fresh tree built only from ``dict`` (str
    keys), ``list``, ``str``, ``int``, ``float``, ``bool`` and ``None``:

    * A number (``int``, ``float``, ``Decimal``; ``bool`` is not a number) is rounded to float64.
      If that float64 is integral and ``|f| < 1e21`` the result is an ``int`` spelled with the
      digits Go prints, so ``float(result)`` is the float64 value and ``str(result)`` is Go's
      text: ints with ``|n| <= 2**53`` are unchanged, ``2**53 + 1`` becomes
      ``9007199254740992``, ``12345678901234567890`` becomes ``12345678901234567000``,
      ``100.0`` becomes ``100``.
    * Every other number stays a ``float``: non-integral values, ``|f| >= 1e21`` (Go prints
      ``1e+21``) and ``-0.0`` (Go prints ``-0``).
    * In strings, a lone surrogate becomes U+FFFD and a high+low surrogate pair becomes the
      astral character it encodes (what Go decodes from ``json.dumps`` output, which escapes
      them as ``\\ud83d\\ude00``). Other mappings become ``dict`` (if two keys collapse to the
      same string, the later one wins), tuples and other sequences (not bytes) become ``list``.

    Raises :class:`CanonicalJSONError` for NaN, infinities and numbers outside the float64 range,
    :class:`CanonicalJSONTypeError` for unsupported types or non-``str`` keys.
    """
    try:
        return _normalize(value)
    except RecursionError:
        raise CanonicalJSONError("value is nested too deeply") from None


# --------------------------------------------------------------------------------------------
# rendering


def _render_slow(value: Any, out: list[str]) -> None:
    # Renders a normalized tree; used only when it contains -0.0 or |f| < 1e-4 floats.
    t = type(value)
    if t is str:
        out.append(_encode_basestring(value))
    elif t is dict:
        out.append("{")
        for i, key in enumerate(sorted(value)):
            if i:
                out.append(",")
            out.append(_encode_basestring(key))
            out.append(":")
            _render_slow(value[key], out)
        out.append("}")
    elif t is list:
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _render_slow(item, out)
        out.append("]")
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif t is int:
        out.append(str(value))
    else:
        out.append(format_float64(value))


def _canonical(build: Callable[[], Any]) -> bytes:
    """Render the normalized tree returned by ``build()`` as canonical UTF-8 bytes."""
    mismatches: list[float] = []
    token = _REPR_MISMATCH_FLOATS.set(mismatches)
    try:
        normalized = build()
    finally:
        _REPR_MISMATCH_FLOATS.reset(token)
    try:
        if mismatches:
            parts: list[str] = []
            _render_slow(normalized, parts)
            text = "".join(parts)
        else:
            text = _encode(normalized)
    except RecursionError:
        raise CanonicalJSONError("value is nested too deeply") from None
    return html_escaped(text).encode("utf-8")


def html_escaped(text: str) -> str:
    """Go's HTML-safe string escapes, applied to compact JSON text. These characters can only
    occur inside strings, so replacing them globally is safe."""
    if "<" in text or ">" in text or "&" in text or "\u2028" in text or "\u2029" in text:
        text = (
            text.replace("<", "\\u003c")
            .replace(">", "\\u003e")
            .replace("&", "\\u0026")
            .replace("\u2028", "\\u2028")
            .replace("\u2029", "\\u2029")
        )
    return text


def canonical_json(value: Any) -> bytes:
    """Serialize ``value`` to Go-canonical JSON bytes (see the module docstring).

    Accepts ``dict``/``Mapping`` (``str`` keys), ``list``/``tuple``, ``str``, ``int``,
    ``float``, ``Decimal``, ``bool`` and ``None``. Raises :class:`CanonicalJSONError` for numbers
    that float64 cannot hold (NaN, infinities, huge integers) and
    :class:`CanonicalJSONTypeError` for anything else.
    """
    return _canonical(lambda: normalize_payload(value))


# --------------------------------------------------------------------------------------------
# parsing


def _parse_int(text: str) -> int | float:
    # Go decodes every number as float64; short literals are exact, so keep them as int,
    # except "-0", which is float64 negative zero (printed "-0").
    if len(text) <= _SHORT_INT_LEN and text != "-0":
        return int(text)
    return float(text)


def _reject_constant(name: str) -> NoReturn:
    raise CanonicalJSONError(f"{name} is not valid JSON")


def _pairs_fixing_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Go replaces lone surrogates while decoding, before duplicate keys are resolved.
    return {_fix_str(k): v for k, v in pairs}


_DECODER: Final = json.JSONDecoder(parse_int=_parse_int, parse_constant=_reject_constant)
_DECODER_FIXING_KEYS: Final = json.JSONDecoder(
    parse_int=_parse_int, parse_constant=_reject_constant, object_pairs_hook=_pairs_fixing_keys
)


def parse_json_text(text: str | bytes | bytearray) -> Any:
    """Parse JSON text like Go's ``json.Unmarshal`` into ``interface{}``, normalized.

    Duplicate keys: the last wins. Numbers become float64 (see :func:`normalize_payload` for the
    result's representation). Bytes that are not valid UTF-8 become U+FFFD, one per byte as in
    Go; lone ``\\uD800``-style escapes become U+FFFD. NaN/Infinity, numbers outside the float64
    range and malformed text raise :class:`CanonicalJSONError`. For any value ``v`` that
    ``canonical_json`` accepts and ``json.dumps`` can write, ``parse_json_text(json.dumps(v))``
    equals ``normalize_payload(v)``.
    """
    if isinstance(text, bytes | bytearray):
        raw = bytes(text)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            # Go's decoder replaces each byte of an invalid sequence with its own U+FFFD; so
            # does this (Python's "replace" handler would merge some sequences into one).
            text = _ESCAPED_BYTE_RE.sub("\ufffd", raw.decode("utf-8", "surrogateescape"))
    elif not isinstance(text, str):
        raise CanonicalJSONTypeError(f"expected str or bytes, got {type(text).__name__}")
    decoder = _DECODER
    if ("\\u" in text or not text.isascii()) and _SURROGATE_SOURCE_RE.search(text):
        decoder = _DECODER_FIXING_KEYS
    try:
        value = decoder.decode(text)
    except json.JSONDecodeError as exc:
        raise CanonicalJSONError(f"invalid JSON: {exc}") from exc
    except RecursionError:
        raise CanonicalJSONError("JSON text is nested too deeply") from None
    return normalize_payload(value)


def canonicalize_json_text(text: str | bytes | bytearray) -> bytes:
    """Parse JSON text the Go way (see :func:`parse_json_text`) and return canonical bytes."""
    return _canonical(lambda: parse_json_text(text))


# --------------------------------------------------------------------------------------------
# bundle hash


def _bundle_items(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    try:
        return _bundle_items_unguarded(rows)
    except RecursionError:
        raise CanonicalJSONError("bundle row value is nested too deeply") from None


def _bundle_items_unguarded(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [_bundle_item(ordinal, row) for ordinal, row in enumerate(rows)]


def _bundle_item(ordinal: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """The normalized hash item of the bundle's row at 0-based position `ordinal`."""
    try:
        op = row["op"]
        schema, table, key, row_version = (
            row["schema"],
            row["table"],
            row["key"],
            row["row_version"],
        )
    except KeyError as exc:
        raise CanonicalJSONError(f"bundle row {ordinal} has no {exc.args[0]!r}") from None
    if op not in BUNDLE_ROW_OPS:
        raise CanonicalJSONError(f"bundle row {ordinal} has invalid op {op!r}")
    given = row.get("row_ordinal")
    if given is not None and (type(given) is not int or given != ordinal):
        raise CanonicalJSONError(
            f"bundle row at position {ordinal} carries row_ordinal {given!r}; "
            "the hash uses 0-based positions, so pass the bundle's rows in order"
        )
    return _normalize_items(
        (
            ("key", key),
            ("op", op),
            ("payload", None if op == "DELETE" else row.get("payload")),
            ("row_ordinal", ordinal),
            ("row_version", row_version),
            ("schema", schema),
            ("table", table),
        )
    )


class BundleHasher:
    """`bundle_hash` one row at a time, in bundle order: memory stays constant whatever the
    bundle's size (the canonical array is hashed as it is written, never held whole).

        hasher = BundleHasher()
        for row in rows:
            hasher.add(row)
        digest, byte_count = hasher.result()
    """

    __slots__ = ("_byte_count", "_rows", "_sha")

    def __init__(self) -> None:
        self._sha = hashlib.sha256(b"[")
        self._byte_count = 1
        self._rows = 0

    def add(self, row: Mapping[str, Any]) -> None:
        """Hash the next row (the mapping `bundle_hash_input` describes)."""
        ordinal = self._rows
        try:
            data = _canonical(lambda: _bundle_item(ordinal, row))
        except RecursionError:
            raise CanonicalJSONError("bundle row value is nested too deeply") from None
        if ordinal:
            self._sha.update(b",")
            self._byte_count += 1
        self._sha.update(data)
        self._byte_count += len(data)
        self._rows += 1

    @property
    def row_count(self) -> int:
        return self._rows

    def result(self) -> tuple[str, int]:
        """`(bundle_hash, byte_count)` of the rows added so far (the hasher stays usable)."""
        final = self._sha.copy()
        final.update(b"]")
        return final.hexdigest(), self._byte_count + 1


def bundle_hash_input(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """Return the canonical bytes hashed for a committed bundle (``computeCommittedBundleHash``).

    ``rows`` are all of the bundle's rows, in bundle order. Each is a mapping with ``schema``,
    ``table``, ``key`` (the wire key object, e.g. ``{"id": "<uuid>"}``), ``op`` (``INSERT``,
    ``UPDATE`` or ``DELETE``), ``row_version`` (the bundle_seq) and, except for deletes,
    ``payload`` (the wire payload as served, parsed; a missing payload counts as ``None``).
    ``row_ordinal`` is optional: the hash uses the 0-based position, and a ``row_ordinal`` that
    is present must equal it (this catches 1-based storage ordinals and partial row lists).
    DELETE rows are always hashed with ``"payload": null``. Other keys are ignored.
    """
    return _canonical(lambda: _bundle_items(rows))


def bundle_hash(rows: Iterable[Mapping[str, Any]]) -> tuple[str, int]:
    """Return ``(bundle_hash, byte_count)``: lowercase hex SHA-256 and length of
    :func:`bundle_hash_input`."""
    hasher = BundleHasher()
    for row in rows:
        hasher.add(row)
    return hasher.result()
