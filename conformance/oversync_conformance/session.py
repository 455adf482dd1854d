"""The session format: ordered HTTP exchanges of named actors, with declared expectations.

A session file (``conformance/sessions/<name>.json``, format ``oversync-conformance/1``) holds::

    {"format": "oversync-conformance/1", "name": "...", "summary": "...", "scenario": "...",
     "tags": [...], "requires": [...],
     "actors": {"phone": {"user": "alice", "source": "phone-1"}},
     "steps": [{"name": "...", "actor": "phone",
                "request": {"method": "POST", "path": "/sync/push-sessions/${push_id}/chunks",
                            "query": {...}, "auth": "user", "headers": {...}, "body": {...}},
                "expect": {"status": 200, "headers": {...}, "body": {...}}}]}

Users are labels: every run maps each label to a fresh user id. Expected bodies may contain
directives (``{"$match": ...}``, ``{"$capture": ...}``, ``{"$ref": ...}``, ``{"$optional": ...}``,
see :mod:`oversync_conformance.matching`); request strings may contain ``${name}`` placeholders and
request bodies ``{"$ref": name}`` values. ``conformance/README.md`` is the full reference.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeAlias

from oversync_conformance.matching import check_template

__all__ = [
    "AUTH_MODES",
    "FORMAT",
    "REQUIREMENTS",
    "SPECIAL_TOKENS",
    "Actor",
    "Auth",
    "Expect",
    "JsonBody",
    "JsonValue",
    "Request",
    "Session",
    "SessionFormatError",
    "Step",
    "TextBody",
    "load_session",
    "load_sessions",
    "parse_session",
]

FORMAT = "oversync-conformance/1"

JsonValue: TypeAlias = Any
"""A parsed JSON value (``None``, ``bool``, ``int``, ``float``, ``str``, ``list``, ``dict``)."""

# How a step authenticates: "user" = a valid token for the actor's user, "none" = no
# Authorization header; the special tokens need the JWT secret (requirement "jwt-secret").
SPECIAL_TOKENS = ("expired", "bad-signature", "no-subject")
AUTH_MODES = ("user", "none", *SPECIAL_TOKENS)
Auth: TypeAlias = str | dict[str, str]
"""An auth mode from ``AUTH_MODES``, or ``{"authorization": "<literal header value>"}``."""

# What a session may need from the run besides a base URL and tokens for fresh users.
REQUIREMENTS = {
    "jwt-secret": "signs special tokens (expired, bad signature, no subject)",
    "dev-endpoints": "the server's /test/* development endpoints",
}


class SessionFormatError(ValueError):
    """A session file that does not follow the format."""


@dataclass(frozen=True, slots=True)
class JsonBody:
    """A JSON body (``value`` may be ``None`` for a literal ``null``)."""

    value: JsonValue


@dataclass(frozen=True, slots=True)
class TextBody:
    """A body that is not JSON, kept as text."""

    text: str


Body: TypeAlias = JsonBody | TextBody | None


@dataclass(frozen=True, slots=True)
class Actor:
    """A device of a user: ``user`` is a label mapped to a fresh user id on every run."""

    user: str
    source: str


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    auth: Auth = "user"
    body: Body = None


@dataclass(frozen=True, slots=True)
class Expect:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: Body = None


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    actor: str
    request: Request
    expect: Expect


@dataclass(frozen=True, slots=True)
class Session:
    name: str
    actors: dict[str, Actor]
    steps: tuple[Step, ...]
    summary: str = ""
    scenario: str = ""
    tags: tuple[str, ...] = ()
    requires: tuple[str, ...] = ()
    path: Path | None = field(default=None, compare=False)

    def to_json(self) -> dict[str, JsonValue]:
        return {
            "format": FORMAT,
            "name": self.name,
            "summary": self.summary,
            "scenario": self.scenario,
            "tags": list(self.tags),
            "requires": list(self.requires),
            "actors": {
                name: {"user": actor.user, "source": actor.source}
                for name, actor in self.actors.items()
            },
            "steps": [_step_json(step) for step in self.steps],
        }

    def dumps(self) -> str:
        """The file text: stable, indented, small values on one line, a trailing newline."""
        return render_json(self.to_json()) + "\n"

    def write(self, directory: Path) -> Path:
        target = directory / f"{self.name}.json"
        target.write_text(self.dumps(), encoding="utf-8")
        return target


_WIDTH = 100


def render_json(value: JsonValue, level: int = 0, used: int = 0) -> str:
    """Indented JSON in which every array or object that fits in the line stays on one line."""
    compact = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    if not isinstance(value, dict | list) or not value or used + len(compact) < _WIDTH:
        return compact
    inner = "  " * (level + 1)
    if isinstance(value, dict):
        heads = [f"{inner}{json.dumps(key, ensure_ascii=False)}: " for key in value]
        items = list(value.values())
    else:
        heads, items = [inner] * len(value), value
    parts = [
        head + render_json(item, level + 1, len(head))
        for head, item in zip(heads, items, strict=True)
    ]
    opening, closing = ("{", "}") if isinstance(value, dict) else ("[", "]")
    return opening + "\n" + ",\n".join(parts) + "\n" + "  " * level + closing


def _body_json(body: Body, into: dict[str, JsonValue]) -> None:
    if isinstance(body, JsonBody):
        into["body"] = body.value
    elif isinstance(body, TextBody):
        into["text"] = body.text


def _step_json(step: Step) -> dict[str, JsonValue]:
    request: dict[str, JsonValue] = {"method": step.request.method, "path": step.request.path}
    if step.request.query:
        request["query"] = dict(step.request.query)
    if step.request.auth != "user":
        request["auth"] = step.request.auth
    if step.request.headers:
        request["headers"] = dict(step.request.headers)
    _body_json(step.request.body, request)
    expect: dict[str, JsonValue] = {"status": step.expect.status}
    if step.expect.headers:
        expect["headers"] = dict(step.expect.headers)
    _body_json(step.expect.body, expect)
    return {"name": step.name, "actor": step.actor, "request": request, "expect": expect}


# ------------------------------------------------------------------------------------ parsing


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in data:
        raise SessionFormatError(f"{where}: missing {key!r}")
    value = data[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
        raise SessionFormatError(f"{where}: {key!r} has the wrong type")
    return value


def _str_map(data: Mapping[str, Any], key: str, where: str) -> dict[str, str]:
    value = data.get(key, {})
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise SessionFormatError(f"{where}: {key!r} must map strings to strings")
    return dict(value)


def _parse_body(data: Mapping[str, Any], where: str) -> Body:
    if "body" in data and "text" in data:
        raise SessionFormatError(f"{where}: give either 'body' or 'text', not both")
    if "body" in data:
        return JsonBody(data["body"])
    if "text" in data:
        return TextBody(_get(data, "text", str, where))
    return None


def _parse_auth(value: Any, where: str) -> Auth:
    if isinstance(value, str) and value in AUTH_MODES:
        return value
    if isinstance(value, dict) and set(value) == {"authorization"}:
        header = value["authorization"]
        if isinstance(header, str):
            return {"authorization": header}
    raise SessionFormatError(
        f"{where}: auth must be one of {AUTH_MODES} or {{'authorization': ...}}"
    )


def _parse_step(data: Any, index: int, actors: Mapping[str, Actor]) -> Step:
    where = f"step {index + 1}"
    if not isinstance(data, dict):
        raise SessionFormatError(f"{where}: must be an object")
    actor = _get(data, "actor", str, where)
    if actor not in actors:
        raise SessionFormatError(f"{where}: unknown actor {actor!r}")
    raw_request = _get(data, "request", dict, where)
    raw_expect = _get(data, "expect", dict, where)
    request = Request(
        method=_get(raw_request, "method", str, where).upper(),
        path=_get(raw_request, "path", str, where),
        query=_str_map(raw_request, "query", where),
        headers=_str_map(raw_request, "headers", where),
        auth=_parse_auth(raw_request.get("auth", "user"), where),
        body=_parse_body(raw_request, where),
    )
    expect = Expect(
        status=_get(raw_expect, "status", int, where),
        headers=_str_map(raw_expect, "headers", where),
        body=_parse_body(raw_expect, where),
    )
    return Step(_get(data, "name", str, where), actor, request, expect)


def parse_session(data: Any, *, path: Path | None = None) -> Session:
    """Build a :class:`Session` from parsed JSON; raise :class:`SessionFormatError` if invalid."""
    where = str(path) if path else "session"
    if not isinstance(data, dict):
        raise SessionFormatError(f"{where}: a session is a JSON object")
    if data.get("format") != FORMAT:
        raise SessionFormatError(f"{where}: format must be {FORMAT!r}")
    actors: dict[str, Actor] = {}
    for name, raw in _get(data, "actors", dict, where).items():
        if not isinstance(raw, dict):
            raise SessionFormatError(f"{where}: actor {name!r} must be an object")
        actors[name] = Actor(_get(raw, "user", str, name), _get(raw, "source", str, name))
    steps = tuple(
        _parse_step(raw, index, actors)
        for index, raw in enumerate(_get(data, "steps", list, where))
    )
    requires = tuple(_get(data, "requires", list, where)) if "requires" in data else ()
    for requirement in requires:
        if requirement not in REQUIREMENTS:
            raise SessionFormatError(f"{where}: unknown requirement {requirement!r}")
    for index, step in enumerate(steps):
        try:
            if isinstance(step.expect.body, JsonBody):
                check_template(step.expect.body.value)
        except ValueError as error:
            raise SessionFormatError(f"{where}: step {index + 1}: {error}") from error
    return Session(
        name=_get(data, "name", str, where),
        summary=str(data.get("summary", "")),
        scenario=str(data.get("scenario", "")),
        tags=tuple(str(tag) for tag in data.get("tags", [])),
        requires=requires,
        actors=actors,
        steps=steps,
        path=path,
    )


def load_session(path: Path) -> Session:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise SessionFormatError(f"{path}: not JSON: {error}") from error
    return parse_session(data, path=path)


def load_sessions(paths: Iterable[Path]) -> list[Session]:
    """Load session files; a directory contributes its ``*.json`` files in name order."""
    sessions: list[Session] = []
    for path in paths:
        files = sorted(path.glob("*.json")) if path.is_dir() else [path]
        sessions.extend(load_session(file) for file in files)
    return sessions
