"""Turn two recordings of one scenario into a session with declared matchers and captures.

The recorder runs every scenario twice, each time on fresh users. Comparing the two runs
exchange by exchange shows which values legitimately differ between runs:

* a user id becomes ``${user.<label>}`` (request strings) or ``{"$ref": "user.<label>"}``;
* a value the server issued (it first appears in a response) becomes ``{"$match": KIND}``
  (uuid, timestamp, sha256, string, int, ...); ``bundle_hash`` becomes ``{"$match":
  "bundle_hash"}`` (re-computed from the rows when they are all present); when the same value
  appears in a later step it is also captured, and those later places refer to the capture;
* a value the scenario chose (e.g. a random id) is kept as recorded in run A.

Some values differ between *implementations* rather than runs, so they are declared by key
whatever the runs say: error ``message`` texts, ``app_name``, lease/expiry timestamps,
``retry_after_seconds``, the status document's counters; and fields Go omits when zero
(``next_expected_row_ordinal`` of a staging push session, ``byte_count`` of an empty snapshot,
the configured ``bundle_limits`` of the capabilities) may be absent, as may oversync-py's
capability extensions (``features.client_schema_version_gate``, ``client_schema_versions``, any
configured range; ``features.authenticated_user`` with ``user_id``;
``features.registered_table_columns`` with each table spec's ``columns``), and a snapshot's
``byte_count`` (payload text as stored) is any positive count. Scenario overrides
(``ScenarioContext.capture`` / ``loosen``) win over all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from oversync_conformance.matching import KINDS, check_template
from oversync_conformance.session import (
    SPECIAL_TOKENS,
    Actor,
    Auth,
    Body,
    Expect,
    JsonBody,
    Request,
    Session,
    Step,
    TextBody,
)
from oversync_conformance.templates import placeholder

__all__ = ["Exchange", "RecordedStep", "Recording", "RecordingError", "generalize"]

JsonValue = Any


class RecordingError(RuntimeError):
    """The two runs of a scenario cannot be turned into one session (it is not deterministic)."""


@dataclass(slots=True)
class Exchange:
    """One HTTP request and its response, as sent and received."""

    actor: str
    auth: Auth
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Body
    status: int
    content_type: str
    response: Body


@dataclass(slots=True)
class RecordedStep:
    name: str
    exchange: Exchange
    overrides: dict[str, JsonValue] = field(default_factory=dict)
    """Dotted path in the response body (``bundles.0.bundle_seq``) → template to use there."""
    request_refs: dict[tuple[str, str], str] = field(default_factory=dict)
    """(``path``, segment index) or (``query``, name) → the capture passed there."""


@dataclass(slots=True)
class Recording:
    """One run of a scenario."""

    actors: dict[str, Actor]
    users: dict[str, str]
    """User label → the user id used in this run."""
    steps: list[RecordedStep] = field(default_factory=list)


# Values that differ between implementations, whatever two runs of one server show.
_VOLATILE_KEYS: dict[str, JsonValue] = {
    "lease_expires_at": {"$match": "timestamp"},
    "expires_at": {"$match": "timestamp"},
    "retry_after_seconds": {"$match": "int", "min": 1},
    "app_name": {"$match": "string"},
}
_STATUS_PATHS = ("/syncx/status", "/syncx/health")
_STATUS_COUNTERS = frozenset(
    {
        "inflight_operations",
        "user_state_retention_floor_ahead_count",
        "latest_bundle_seq_max",
        "retained_bundle_floor_min",
        "retained_bundle_floor_max",
        "retained_bundle_window_min",
        "retained_bundle_window_max",
        "history_pruned_error_count",
        "accepted_push_replay_count",
        "rejected_registered_write_count",
        "committed_bundle_count",
        "committed_bundle_bytes",
    }
)
# Members Go omits when zero (protocol.md §17): (method, path, when body[field] == value, member).
_OMITTED_WHEN_ZERO = [
    ("POST", "/sync/push-sessions", "status", "staging", "next_expected_row_ordinal"),
    ("POST", "/sync/snapshot-sessions", "row_count", 0, "byte_count"),
]
# Capability limits that are configuration, omitted when zero (unlimited) by Go (protocol.md
# §8.1): absent, or a positive count, whatever this server is configured with.
_CONFIGURED_LIMITS = (
    "max_rows_per_bundle",
    "max_bytes_per_bundle",
    "max_rows_per_snapshot_session",
    "max_bytes_per_snapshot_session",
)


def _strings(value: JsonValue) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for member in value.values():
            yield from _strings(member)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _body_value(body: Body) -> JsonValue:
    if isinstance(body, JsonBody):
        return body.value
    return body.text if isinstance(body, TextBody) else None


def _exchange_strings(exchange: Exchange) -> set[str]:
    found = set(exchange.path.split("/")) | set(exchange.query.values())
    found |= set(exchange.headers.values())
    found |= set(_strings(_body_value(exchange.body))) | set(
        _strings(_body_value(exchange.response))
    )
    return found


def _kind(a: str, b: str) -> str:
    for kind in ("uuid", "timestamp", "sha256"):
        if KINDS[kind](a) and KINDS[kind](b):
            return kind
    return "string"


class _Generalizer:
    def __init__(self, a: Recording, b: Recording) -> None:
        self.a, self.b = a, b
        self.labels_a = {user: label for label, user in a.users.items()}
        self.labels_b = {user: label for label, user in b.users.items()}
        self.captures: dict[str, tuple[str, JsonValue]] = {}  # run A value → (name, run B value)
        self.names: set[str] = set()
        self.chosen: dict[str, str] = {}  # strings the scenario chose: run A → run B
        strings = [_exchange_strings(step.exchange) for step in a.steps]
        self.later: list[set[str]] = [set().union(*strings[i + 1 :]) for i in range(len(strings))]
        self.index = 0

    def fail(self, message: str) -> RecordingError:
        step = self.a.steps[self.index]
        return RecordingError(f"step {self.index + 1} ({step.name}): {message}")

    def new_name(self, base: str) -> str:
        name, number = base or "value", 2
        while name in self.names:
            name, number = f"{base}_{number}", number + 1
        self.names.add(name)
        return name

    # ------------------------------------------------------------------------- requests

    def request_text(self, a: str, b: str, ref: str | None) -> str:
        if ref is not None:
            return placeholder(ref)
        if a == b:
            return a
        label = self.labels_a.get(a)
        if label is not None and self.labels_b.get(b) == label:
            return placeholder(f"user.{label}")
        if a in self.captures and self.captures[a][1] == b:
            return placeholder(self.captures[a][0])
        self.chosen[a] = b
        return a

    def request_value(self, a: JsonValue, b: JsonValue, where: str) -> JsonValue:
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                raise self.fail(f"request body {where} has different members in the two runs")
            return {key: self.request_value(a[key], b[key], f"{where}.{key}") for key in a}
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                raise self.fail(f"request body {where} has different lengths in the two runs")
            return [
                self.request_value(x, y, f"{where}[{i}]")
                for i, (x, y) in enumerate(zip(a, b, strict=True))
            ]
        if isinstance(a, str) and isinstance(b, str) and a != b:
            text = self.request_text(a, b, None)
            if text.startswith("${") and text.endswith("}") and text != a:
                return {"$ref": text[2:-1]}
            return text
        return a

    def request(self, step: RecordedStep, other: RecordedStep) -> Request:
        ea, eb = step.exchange, other.exchange
        segments_a, segments_b = ea.path.split("/"), eb.path.split("/")
        if len(segments_a) != len(segments_b) or ea.query.keys() != eb.query.keys():
            raise self.fail("the request path or query differs in shape between the two runs")
        path = "/".join(
            self.request_text(x, y, step.request_refs.get(("path", str(i))))
            for i, (x, y) in enumerate(zip(segments_a, segments_b, strict=True))
        )
        query = {
            name: self.request_text(value, eb.query[name], step.request_refs.get(("query", name)))
            for name, value in ea.query.items()
        }
        headers = {
            name: self.request_text(value, eb.headers.get(name, ""), None)
            for name, value in ea.headers.items()
        }
        body: Body = ea.body
        if isinstance(ea.body, JsonBody) and isinstance(eb.body, JsonBody):
            body = JsonBody(self.request_value(ea.body.value, eb.body.value, "$"))
        return Request(ea.method, path, query, headers, ea.auth, body)

    # ------------------------------------------------------------------------ responses

    def response_value(
        self, a: JsonValue, b: JsonValue, path: tuple[str, ...], parent: JsonValue
    ) -> JsonValue:
        step = self.a.steps[self.index]
        dotted = ".".join(path)
        if dotted in step.overrides:
            template = step.overrides[dotted]
            if isinstance(template, dict) and "$capture" in template:
                self.names.add(template["$capture"])
                if isinstance(a, str):
                    self.captures[a] = (template["$capture"], b)
            return template
        key = path[-1] if path else ""
        if key == "message" and isinstance(parent, dict) and "error" in parent:
            return {"$match": "string"}
        if key in _VOLATILE_KEYS:
            return dict(_VOLATILE_KEYS[key])
        if key in _STATUS_COUNTERS and step.exchange.path in _STATUS_PATHS:
            return {"$match": "int", "min": 0}
        if isinstance(a, dict) and isinstance(b, dict):
            if a.keys() != b.keys():
                raise self.fail(f"response {dotted or '$'} has different members in the two runs")
            return {k: self.response_value(a[k], b[k], (*path, k), a) for k in a}
        if isinstance(a, list) and isinstance(b, list):
            if len(a) != len(b):
                raise self.fail(f"response {dotted or '$'} has different lengths in the two runs")
            return [
                self.response_value(x, y, (*path, str(i)), a)
                for i, (x, y) in enumerate(zip(a, b, strict=True))
            ]
        if a == b and type(a) is type(b):
            return a
        if isinstance(a, str) and isinstance(b, str):
            return self.response_string(a, b, key)
        if isinstance(a, bool) or isinstance(b, bool):
            raise self.fail(f"response {dotted} is {a!r} in one run and {b!r} in the other")
        if isinstance(a, int) and isinstance(b, int):
            return {"$match": "int"}
        if isinstance(a, int | float) and isinstance(b, int | float):
            return {"$match": "number"}
        raise self.fail(f"response {dotted} is {a!r} in one run and {b!r} in the other")

    def response_string(self, a: str, b: str, key: str) -> JsonValue:
        label = self.labels_a.get(a)
        if label is not None and self.labels_b.get(b) == label:
            return {"$ref": f"user.{label}"}
        if a in self.captures and self.captures[a][1] == b:
            reference: dict[str, JsonValue] = {"$ref": self.captures[a][0]}
            if key == "bundle_hash":
                reference["$match"] = "bundle_hash"
            return reference
        if self.chosen.get(a) == b:
            return a
        directive: dict[str, JsonValue] = {
            "$match": "bundle_hash" if key == "bundle_hash" else _kind(a, b)
        }
        if a in self.later[self.index]:
            name = self.new_name(key)
            directive["$capture"] = name
            self.captures[a] = (name, b)
        return directive

    def expect(self, step: RecordedStep, other: RecordedStep) -> Expect:
        ea, eb = step.exchange, other.exchange
        headers = {"content-type": ea.content_type.split(";")[0]} if ea.response else {}
        if isinstance(ea.response, JsonBody) and isinstance(eb.response, JsonBody):
            value = self.response_value(ea.response.value, eb.response.value, (), None)
            _apply_operation_rules(ea, value)
            return Expect(ea.status, headers, JsonBody(value))
        if ea.response != eb.response:
            raise self.fail("the non-JSON response differs between the two runs")
        return Expect(ea.status, headers, ea.response)

    def steps(self) -> list[Step]:
        steps: list[Step] = []
        for index, (step, other) in enumerate(zip(self.a.steps, self.b.steps, strict=True)):
            self.index = index
            ea, eb = step.exchange, other.exchange
            if (step.name, ea.actor, ea.method, ea.status, ea.auth) != (
                other.name, eb.actor, eb.method, eb.status, eb.auth,
            ):  # fmt: skip
                raise self.fail(
                    f"the runs differ: {other.name!r} {eb.method} -> {eb.status} in the second"
                )
            request = self.request(step, other)
            steps.append(Step(step.name, ea.actor, request, self.expect(step, other)))
        return steps


def _apply_operation_rules(exchange: Exchange, body: JsonValue) -> None:
    if exchange.status != 200 or not isinstance(body, dict):
        return
    snapshot = exchange.method == "POST" and exchange.path == "/sync/snapshot-sessions"
    if snapshot and body.get("row_count") != 0 and "byte_count" in body:
        # the sum of payload lengths *as stored*: its value depends on the implementation
        body["byte_count"] = {"$match": "int", "min": 1}
    limits = body.get("bundle_limits")
    if (exchange.method, exchange.path) == ("GET", "/sync/capabilities") and isinstance(
        limits, dict
    ):
        for member in _CONFIGURED_LIMITS:
            limits[member] = {"$optional": {"$match": "int", "min": 1}}
    _loosen_extensions(body)  # capabilities, and the status documents' features
    for method, path, field_name, value, member in _OMITTED_WHEN_ZERO:
        applies = (exchange.method, exchange.path) == (method, path)
        if applies and body.get(field_name) == value and body.get(member, 0) == 0:
            body[member] = {"$optional": 0}


def _loosen_extensions(body: dict[str, Any]) -> None:
    """oversync-py's capability extensions (in any document with `features`): absent on the
    reference, configuration otherwise."""
    features = body.get("features")
    for flag in ("client_schema_version_gate", "authenticated_user", "registered_table_columns"):
        if isinstance(features, dict) and flag in features:
            features[flag] = {"$optional": True}
    if "user_id" in body and "protocol_version" in body:  # the capabilities' caller
        body["user_id"] = {"$optional": {"$match": "string"}}
    specs = body.get("registered_table_specs")
    for spec in specs if isinstance(specs, list) else ():
        if isinstance(spec, dict) and "columns" in spec:
            spec["columns"] = {"$optional": {"$match": "any"}}
    if "client_schema_versions" in body:
        body["client_schema_versions"] = {
            "$optional": {
                "min_supported": {"$match": "int", "min": 0},
                "max_supported": {"$match": "int", "min": 0},
            }
        }


def generalize(
    a: Recording,
    b: Recording,
    *,
    name: str,
    summary: str = "",
    scenario: str = "",
    tags: tuple[str, ...] = (),
    requires: tuple[str, ...] = (),
) -> Session:
    """Build the session of a scenario from two runs of it (see the module docstring)."""
    if len(a.steps) != len(b.steps):
        raise RecordingError(f"the runs made {len(a.steps)} and {len(b.steps)} requests")
    if a.actors != b.actors:
        raise RecordingError("the runs declared different actors")
    steps = _Generalizer(a, b).steps()
    for step in steps:
        if isinstance(step.expect.body, JsonBody):
            check_template(step.expect.body.value)
    needs = set(requires)
    if any(step.request.auth in SPECIAL_TOKENS for step in steps):
        needs.add("jwt-secret")
    return Session(
        name=name,
        summary=summary,
        scenario=scenario,
        tags=tags,
        requires=tuple(sorted(needs)),
        actors=dict(a.actors),
        steps=tuple(steps),
    )
