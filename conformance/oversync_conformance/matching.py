"""The matcher engine: compare an expected JSON template with an actual response body.

A template is plain JSON (compared by value; numbers numerically, ``true`` never equals ``1``;
objects must have exactly the expected members) in which an object with ``$`` keys is a
*directive*:

``{"$match": KIND}``
    the value must be of a kind: ``any``, ``string``, ``nonempty_string``, ``int`` (options
    ``min``/``max``), ``number``, ``bool``, ``uuid`` (lowercase dashed), ``timestamp``
    (RFC 3339 with an offset), ``sha256`` (64 lowercase hex digits) or ``bundle_hash`` (a sha256
    that, when the object also holds all of its bundle's ``rows`` — ``row_count == len(rows)`` —
    must equal the Go-canonical hash of those rows).
``{"$capture": NAME}``
    store the actual value under NAME for later steps (may be combined with ``$match``).
``{"$ref": NAME, "plus": N}``
    the value must equal a captured value (plus N, for integers; ``plus`` is optional).
``{"$optional": TEMPLATE}``
    as an object member only: the member may be absent; when present it must match TEMPLATE.

Matching records every :class:`Mismatch` with its JSON path and renders the template against
the actual value (directives that hold are replaced by what they matched), so a textual diff of
the rendering and the actual body shows only real differences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from oversync_wire import CanonicalJSONError, bundle_hash

__all__ = [
    "KINDS",
    "Bindings",
    "MatchResult",
    "Mismatch",
    "check_template",
    "is_directive",
    "match",
]

JsonValue = Any
Bindings = dict[str, JsonValue]

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str(pattern: re.Pattern[str]) -> Callable[[object], bool]:
    return lambda value: isinstance(value, str) and pattern.match(value) is not None


KINDS: dict[str, Callable[[object], bool]] = {
    "any": lambda value: True,
    "string": lambda value: isinstance(value, str),
    "nonempty_string": lambda value: isinstance(value, str) and value != "",
    "int": _is_int,
    "number": _is_number,
    "bool": lambda value: isinstance(value, bool),
    "uuid": _is_str(_UUID),
    "timestamp": _is_str(_TIMESTAMP),
    "sha256": _is_str(_SHA256),
    "bundle_hash": _is_str(_SHA256),
}

_DIRECTIVE_KEYS = {"$match", "$capture", "$ref", "$optional"}
_OPTION_KEYS = {"min": "$match", "max": "$match", "plus": "$ref"}


def is_directive(value: object) -> bool:
    return isinstance(value, dict) and any(str(key).startswith("$") for key in value)


def check_template(template: JsonValue, path: str = "$") -> None:
    """Raise ``ValueError`` naming the path of the first malformed directive."""
    if isinstance(template, list):
        for index, item in enumerate(template):
            check_template(item, f"{path}[{index}]")
        return
    if not isinstance(template, dict):
        return
    if not is_directive(template):
        for key, member in template.items():
            check_template(member, f"{path}.{key}")
        return
    unknown = set(template) - _DIRECTIVE_KEYS - set(_OPTION_KEYS)
    if unknown:
        raise ValueError(f"{path}: unknown directive keys {sorted(unknown)}")
    if "$optional" in template:
        if len(template) != 1:
            raise ValueError(f"{path}: $optional stands alone")
        check_template(template["$optional"], path)
        return
    for option, owner in _OPTION_KEYS.items():
        if option in template and owner not in template:
            raise ValueError(f"{path}: {option!r} needs {owner}")
        if option in template and not _is_int(template[option]):
            raise ValueError(f"{path}: {option!r} must be an integer")
    if "$match" in template and template["$match"] not in KINDS:
        raise ValueError(f"{path}: unknown $match kind {template['$match']!r}")
    if ("min" in template or "max" in template) and template["$match"] not in ("int", "number"):
        raise ValueError(f"{path}: min/max apply to int and number only")
    for key in ("$capture", "$ref"):
        if key in template and not isinstance(template[key], str):
            raise ValueError(f"{path}: {key} takes a name")


@dataclass(frozen=True, slots=True)
class Mismatch:
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True, slots=True)
class MatchResult:
    mismatches: tuple[Mismatch, ...]
    rendered: JsonValue
    """The template with every directive that held replaced by the value it matched."""

    @property
    def ok(self) -> bool:
        return not self.mismatches


def short(value: JsonValue, limit: int = 80) -> str:
    """A compact one-line rendering of a JSON value for messages."""
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(template: JsonValue) -> str:
    """How a directive reads in a diff: ``<uuid>``, ``<ref push_id>``, ``<int >= 1>``."""
    parts: list[str] = []
    if "$match" in template:
        kind = str(template["$match"])
        bounds = [f">= {template['min']}" if "min" in template else ""]
        bounds.append(f"<= {template['max']}" if "max" in template else "")
        parts.append(" ".join([kind, *filter(None, bounds)]))
    if "$ref" in template:
        plus = template.get("plus", 0)
        parts.append(f"ref {template['$ref']}" + (f" + {plus}" if plus else ""))
    if "$capture" in template and not parts:
        parts.append("any")
    return "<" + ", ".join(parts) + ">"


class _Matcher:
    def __init__(self, bindings: Bindings) -> None:
        self.bindings = bindings
        self.mismatches: list[Mismatch] = []

    def fail(self, path: str, message: str) -> None:
        self.mismatches.append(Mismatch(path, message))

    def value(
        self, template: JsonValue, actual: JsonValue, path: str, parent: Mapping[str, Any]
    ) -> JsonValue:
        if is_directive(template):
            return self.directive(template, actual, path, parent)
        if isinstance(template, dict):
            if not isinstance(actual, dict):
                self.fail(path, f"expected an object, got {short(actual)}")
                return template
            return self.object(template, actual, path)
        if isinstance(template, list):
            if not isinstance(actual, list):
                self.fail(path, f"expected an array, got {short(actual)}")
                return template
            return self.array(template, actual, path)
        if not _same_scalar(template, actual):
            self.fail(path, f"expected {short(template)}, got {short(actual)}")
        return template

    def object(self, template: dict[str, Any], actual: dict[str, Any], path: str) -> JsonValue:
        rendered: dict[str, JsonValue] = {}
        for key, member in template.items():
            where = f"{path}.{key}"
            optional = isinstance(member, dict) and set(member) == {"$optional"}
            if key not in actual:
                if not optional:
                    self.fail(where, "missing")
                    rendered[key] = describe(member) if is_directive(member) else member
                continue
            inner = member["$optional"] if optional else member
            rendered[key] = self.value(inner, actual[key], where, actual)
        for key in actual:
            if key not in template:
                self.fail(f"{path}.{key}", f"unexpected member {short(actual[key])}")
        return rendered

    def array(self, template: list[Any], actual: list[Any], path: str) -> JsonValue:
        if len(template) != len(actual):
            self.fail(path, f"expected {len(template)} items, got {len(actual)}")
        rendered = [
            self.value(item, got, f"{path}[{index}]", {})
            for index, (item, got) in enumerate(zip(template, actual, strict=False))
        ]
        return rendered + template[len(actual) :]

    def directive(
        self, template: dict[str, Any], actual: JsonValue, path: str, parent: Mapping[str, Any]
    ) -> JsonValue:
        before = len(self.mismatches)
        if "$ref" in template:
            self.ref(template, actual, path)
        if "$match" in template:
            self.kind(template, actual, path, parent)
        if len(self.mismatches) > before:
            return describe(template)
        if "$capture" in template:
            self.bindings[template["$capture"]] = actual
        return actual

    def ref(self, template: dict[str, Any], actual: JsonValue, path: str) -> None:
        name = template["$ref"]
        if name not in self.bindings:
            self.fail(path, f"nothing was captured as {name!r}")
            return
        wanted = self.bindings[name]
        plus = template.get("plus", 0)
        if plus:
            if not _is_int(wanted):
                self.fail(path, f"capture {name!r} is not an integer: {short(wanted)}")
                return
            wanted = wanted + plus
        if not _same_json(wanted, actual):
            self.fail(path, f"expected {short(wanted)} (ref {name}), got {short(actual)}")

    def kind(
        self, template: dict[str, Any], actual: JsonValue, path: str, parent: Mapping[str, Any]
    ) -> None:
        kind = template["$match"]
        if not KINDS[kind](actual):
            self.fail(path, f"expected {describe(template)}, got {short(actual)}")
            return
        if "min" in template and actual < template["min"]:
            self.fail(path, f"expected {describe(template)}, got {short(actual)}")
        if "max" in template and actual > template["max"]:
            self.fail(path, f"expected {describe(template)}, got {short(actual)}")
        if kind == "bundle_hash":
            self.bundle_hash(actual, path, parent)

    def bundle_hash(self, actual: str, path: str, parent: Mapping[str, Any]) -> None:
        rows, count = parent.get("rows"), parent.get("row_count")
        if not isinstance(rows, list) or not _is_int(count) or count != len(rows):
            return  # the rows are not all here: only the format can be checked
        try:
            computed, _ = bundle_hash(rows)
        except (CanonicalJSONError, TypeError, KeyError) as error:
            self.fail(path, f"the bundle's rows cannot be hashed: {error}")
            return
        if computed != actual:
            self.fail(path, f"{actual} is not the hash of the bundle's rows ({computed})")


def _same_scalar(expected: JsonValue, actual: JsonValue) -> bool:
    if isinstance(expected, bool) or isinstance(actual, bool):
        return expected is actual
    if _is_number(expected) and _is_number(actual):
        # JSON numbers are float64 on this protocol (Go parses them so): an implementation may
        # serve 2**53+1 exactly or rounded, and both are the same wire value.
        try:
            return float(expected) == float(actual)
        except OverflowError:
            return bool(expected == actual)
    return type(expected) is type(actual) and expected == actual


def _same_json(expected: JsonValue, actual: JsonValue) -> bool:
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _same_json(expected[key], actual[key]) for key in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _same_json(a, b) for a, b in zip(expected, actual, strict=True)
        )
    return _same_scalar(expected, actual)


def match(template: JsonValue, actual: JsonValue, bindings: Bindings) -> MatchResult:
    """Match ``actual`` against ``template``; captures are stored into ``bindings``."""
    matcher = _Matcher(bindings)
    rendered = matcher.value(template, actual, "$", {})
    return MatchResult(tuple(matcher.mismatches), rendered)
