"""What a scenario function works with: actors that call the typed client, captures, checks.

Scenarios (:mod:`oversync_conformance.scenarios`) and the recorder both import this module and
nothing imports back, so the scenario registry and the recorder stay free of import cycles.
Every HTTP exchange goes through a recording transport into :attr:`ScenarioContext.recording`;
:mod:`oversync_conformance.recorder` runs a scenario twice and turns the recordings into a session.
"""

from __future__ import annotations

import inspect
import json
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import httpx

from oversync_client import AuthenticatedClient, Client
from oversync_client.types import Response
from oversync_conformance.generalize import Exchange, RecordedStep, Recording
from oversync_conformance.matching import KINDS, short
from oversync_conformance.session import Actor, Auth, Body, JsonBody, TextBody
from oversync_conformance.tokens import SecretTokens

__all__ = [
    "CapturedInt",
    "CapturedStr",
    "Expectation",
    "ScenarioActor",
    "ScenarioContext",
    "ScenarioFailure",
    "parsed",
]

Expectation = int | tuple[int, str]
"""The status a call must get, or (status, error code)."""

_RECORDED_HEADERS = ("Oversync-Source-ID", "Content-Type")


class ScenarioFailure(AssertionError):
    """The server did not answer as the scenario requires; nothing is recorded."""


T = TypeVar("T")


def parsed(response: Response[Any], kind: type[T]) -> T:
    """The typed body of a response, which must be a ``kind``."""
    if not isinstance(response.parsed, kind):
        raise ScenarioFailure(f"expected a {kind.__name__}, got {response.parsed!r}")
    return response.parsed


class CapturedInt(int):
    """An integer captured from a response; passing it to a later call records a reference."""

    capture_name: str

    def __new__(cls, value: int, name: str) -> CapturedInt:
        obj = super().__new__(cls, value)
        obj.capture_name = name
        return obj


class CapturedStr(str):
    """A string captured from a response; passing it to a later call records a reference."""

    capture_name: str

    def __new__(cls, value: str, name: str) -> CapturedStr:
        obj = super().__new__(cls, value)
        obj.capture_name = name
        return obj


def _parse_body(content: bytes) -> Body:
    if not content:
        return None
    try:
        return JsonBody(json.loads(content))
    except ValueError:
        return TextBody(content.decode("utf-8", errors="replace"))


class _RecordingTransport(httpx.BaseTransport):
    """Forwards to the real transport and hands every exchange to ``sink``."""

    def __init__(
        self, inner: httpx.BaseTransport, sink: Callable[[Exchange], None], actor: str, auth: Auth
    ) -> None:
        self.inner, self.sink, self.actor, self.auth = inner, sink, actor, auth

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        content = request.read()
        response = self.inner.handle_request(request)
        response.read()
        headers = {
            name: request.headers[name] for name in _RECORDED_HEADERS if name in request.headers
        }
        self.sink(
            Exchange(
                actor=self.actor,
                auth=self.auth,
                method=request.method,
                path=request.url.path,
                query=dict(request.url.params),
                headers=headers,
                body=_parse_body(content),
                status=response.status_code,
                content_type=response.headers.get("content-type", ""),
                response=_parse_body(response.content),
            )
        )
        return response

    def close(self) -> None:
        self.inner.close()


def _lookup(body: Body, field: str) -> Any:
    value = body.value if isinstance(body, JsonBody) else None
    for part in field.split("."):
        if isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise ScenarioFailure(f"the last response has no {field!r}")
    return value


class ScenarioContext:
    """What a scenario function works with: actors, captures and expectation overrides."""

    def __init__(
        self, base_url: str, tokens: SecretTokens, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.tokens = tokens
        self.transport = transport
        self.recording = Recording(actors={}, users={})
        self._exchanges: list[Exchange] = []
        self._clients: list[httpx.Client] = []

    def user_id(self, label: str) -> str:
        """The fresh user id of a user label in this run."""
        if label not in self.recording.users:
            self.recording.users[label] = f"rec-{label}-{secrets.token_hex(6)}"
        return self.recording.users[label]

    def actor(self, name: str, *, user: str, source: str) -> ScenarioActor:
        """Declare a device ``name`` of user label ``user`` writing as source ``source``."""
        if name in self.recording.actors:
            raise ValueError(f"actor {name!r} is declared twice")
        self.recording.actors[name] = Actor(user, source)
        self.user_id(user)
        return ScenarioActor(self, name, user, source)

    def capture(self, name: str, field: str) -> Any:
        """Capture ``field`` (dotted path) of the last response as ``name``; returns the value
        as a :class:`CapturedInt` / :class:`CapturedStr` to pass to later calls."""
        step = self._last_step()
        value = _lookup(step.exchange.response, field)
        if isinstance(value, int) and not isinstance(value, bool):
            step.overrides[field] = {"$capture": name, "$match": "int"}
            return CapturedInt(value, name)
        if isinstance(value, str):
            kind = next((k for k in ("uuid", "timestamp", "sha256") if KINDS[k](value)), "string")
            step.overrides[field] = {"$capture": name, "$match": kind}
            return CapturedStr(value, name)
        raise ScenarioFailure(f"{field!r} is not an integer or a string: {short(value)}")

    def loosen(self, field: str, kind: str, **options: int) -> None:
        """Accept any value of ``kind`` at ``field`` (dotted path) of the last response."""
        if kind not in KINDS:
            raise ValueError(f"unknown kind {kind!r}")
        self._last_step().overrides[field] = {"$match": kind, **options}

    def _last_step(self) -> RecordedStep:
        if not self.recording.steps:
            raise ScenarioFailure("no step has been recorded yet")
        return self.recording.steps[-1]

    def _client(self, actor: str, auth: Auth, token: str | None) -> httpx.Client:
        transport = _RecordingTransport(
            self.transport or httpx.HTTPTransport(), self._exchanges.append, actor, auth
        )
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        if isinstance(auth, dict):
            headers = {"Authorization": auth["authorization"]}
        client = httpx.Client(
            base_url=self.base_url, headers=headers, transport=transport, timeout=30.0
        )
        self._clients.append(client)
        return client

    def _finish(
        self, name: str, expect: Expectation, refs: Mapping[str, CapturedInt | CapturedStr]
    ) -> Exchange:
        if len(self._exchanges) != 1:
            raise ScenarioFailure(f"{name}: expected one HTTP exchange, saw {len(self._exchanges)}")
        exchange = self._exchanges.pop()
        step = RecordedStep(name, exchange)
        segments = exchange.path.split("/")
        for argument, value in refs.items():
            if exchange.query.get(argument) == str(value):
                step.request_refs[("query", argument)] = value.capture_name
            elif str(value) in segments:
                index = len(segments) - 1 - segments[::-1].index(str(value))
                step.request_refs[("path", str(index))] = value.capture_name
        self.recording.steps.append(step)
        _check(name, exchange, expect)
        return exchange

    def close(self) -> None:
        for client in self._clients:
            client.close()


def _check(name: str, exchange: Exchange, expect: Expectation) -> None:
    status, code = (expect, None) if isinstance(expect, int) else expect
    body = exchange.response.value if isinstance(exchange.response, JsonBody) else None
    got_code = body.get("error") if isinstance(body, dict) else None
    if exchange.status != status or (code is not None and got_code != code):
        wanted = f"{status} {code}" if code else str(status)
        shown = short(body, 300) if body is not None else repr(exchange.response)
        raise ScenarioFailure(
            f"{name}: expected {wanted}, got {exchange.status}: {exchange.method} "
            f"{exchange.path} answered {shown}"
        )


_NO_JSON = object()
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class ScenarioActor:
    """A device of a user; calls go through the typed client with this actor's credentials."""

    def __init__(
        self, ctx: ScenarioContext, name: str, user: str, source: str, auth: Auth = "user"
    ) -> None:
        self.ctx, self.name, self.user, self.source, self.auth = ctx, name, user, source, auth
        self._typed: AuthenticatedClient | Client | None = None
        self._http: httpx.Client | None = None

    @property
    def user_id(self) -> str:
        return self.ctx.user_id(self.user)

    def with_auth(self, auth: Auth) -> ScenarioActor:
        """The same actor presenting other credentials: ``"none"``, ``"expired"``,
        ``"bad-signature"``, ``"no-subject"`` or ``{"authorization": "<header value>"}``."""
        return ScenarioActor(self.ctx, self.name, self.user, self.source, auth)

    def _token(self) -> str | None:
        if self.auth == "user":
            return self.ctx.tokens.token(self.user_id)
        if isinstance(self.auth, str) and self.auth != "none":
            return self.ctx.tokens.special(self.auth, self.user_id)
        return None

    @property
    def http(self) -> httpx.Client:
        if self._http is None:
            self._http = self.ctx._client(self.name, self.auth, self._token())
        return self._http

    @property
    def client(self) -> AuthenticatedClient | Client:
        """The generated client of this actor (its requests are recorded)."""
        if self._typed is None:
            token = self._token()
            typed: AuthenticatedClient | Client
            if token is None:
                typed = Client(base_url=self.ctx.base_url)
            else:
                typed = AuthenticatedClient(base_url=self.ctx.base_url, token=token)
            self._typed = typed.set_httpx_client(self.http)
        return self._typed

    def call(
        self,
        operation: Callable[..., Response[Any]],
        /,
        *path: Any,
        expect: Expectation,
        step: str | None = None,
        **arguments: Any,
    ) -> Response[Any]:
        """Call a generated ``sync_detailed`` function as this actor (``oversync_source_id``
        defaults to the actor's source) and check the answer against ``expect``.

        ``path`` are the operation's path parameters; a :class:`CapturedInt` or
        :class:`CapturedStr` passed as a path or query parameter is recorded as a reference."""
        if "oversync_source_id" in inspect.signature(operation).parameters:
            arguments.setdefault("oversync_source_id", self.source)
        name = step or operation.__module__.rsplit(".", 1)[-1].replace("_", " ")
        given = {**{f"#{i}": v for i, v in enumerate(path)}, **arguments}
        refs = {k: v for k, v in given.items() if isinstance(v, CapturedInt | CapturedStr)}
        try:
            response = operation(*path, client=self.client, **arguments)
        except Exception as error:
            # an answer arrived but the typed client could not parse it: that is a finding
            if not isinstance(error, httpx.HTTPError) and len(self.ctx._exchanges) == 1:
                exchange = self.ctx._finish(name, expect, refs)
                raise ScenarioFailure(
                    f"{name}: the typed client rejected the answer {exchange.status} "
                    f"{short(getattr(exchange.response, 'value', None), 300)}: {error!r}"
                ) from error
            raise
        self.ctx._finish(name, expect, refs)
        return response

    def raw(
        self,
        method: str,
        path: str,
        *,
        expect: Expectation,
        step: str | None = None,
        json_body: Any = _NO_JSON,
        content: str | None = None,
        headers: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """A request the typed client cannot make (malformed bodies, missing headers, dev
        endpoints). ``headers`` defaults to the actor's ``Oversync-Source-ID``."""
        sent = {"Oversync-Source-ID": self.source} if headers is None else dict(headers)
        if json_body is not _NO_JSON:
            content = json.dumps(json_body, separators=(",", ":"))
            sent.setdefault("Content-Type", "application/json")
        response = self.http.request(
            method, path, content=content, headers=sent, params=dict(query or {})
        )
        self.ctx._finish(step or f"{method} {_UUID.sub('{id}', path)}", expect, {})
        return response
