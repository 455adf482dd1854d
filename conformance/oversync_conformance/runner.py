"""Replay sessions against a server and report, step by step, what differed.

Each run of a session maps its user labels to fresh user ids, so runs never see each other's
state and the suite can run against a shared server. A session stops at its first failing step
(later steps depend on its state); those steps are reported as skipped.

    target = Target(base_url="http://127.0.0.1:8080", tokens=SecretTokens("secret"))
    result = run_session(load_session(path), target)
    assert result.ok, result.report()
"""

from __future__ import annotations

import difflib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import httpx

from oversync_conformance.matching import Bindings, Mismatch, match
from oversync_conformance.results import Outcome, RunResult, SessionResult, StepResult
from oversync_conformance.session import (
    SPECIAL_TOKENS,
    Body,
    JsonBody,
    Session,
    Step,
    TextBody,
)
from oversync_conformance.templates import UnboundName, interpolate, resolve_body
from oversync_conformance.tokens import TokenError, TokenProvider

# the result types live in :mod:`.results` (shared with the reports); re-exported here
__all__ = [
    "Outcome",
    "RunResult",
    "SessionResult",
    "StepResult",
    "Target",
    "run_session",
    "run_sessions",
]


@dataclass(frozen=True, slots=True)
class Target:
    """The server under test and how to authenticate its fresh users."""

    base_url: str
    tokens: TokenProvider
    dev_endpoints: bool = False
    """The server mounts the /test/* development endpoints (requirement ``dev-endpoints``)."""
    timeout: float = 30.0
    transport: httpx.BaseTransport | None = None
    """A transport to use instead of the network (tests, proxies)."""
    user_prefix: str = "conformance"

    def provides(self) -> set[str]:
        provided = {"dev-endpoints"} if self.dev_endpoints else set()
        return provided | ({"jwt-secret"} if self.tokens.can_sign else set())

    def fresh_user(self, label: str) -> str:
        return f"{self.user_prefix}-{label}-{secrets.token_hex(6)}"


StepCallback = Callable[[Session, StepResult], None]


def run_sessions(
    sessions: Iterable[Session], target: Target, *, on_step: StepCallback | None = None
) -> RunResult:
    return RunResult(tuple(run_session(session, target, on_step=on_step) for session in sessions))


def run_session(
    session: Session, target: Target, *, on_step: StepCallback | None = None
) -> SessionResult:
    """Replay one session on fresh users; never raises for server behaviour."""
    missing = sorted(set(session.requires) - target.provides())
    if missing:
        return SessionResult(session, Outcome.SKIPPED, reason=f"needs {', '.join(missing)}")
    users = {label: target.fresh_user(label) for label in _user_labels(session)}
    bindings: Bindings = {f"user.{label}": user for label, user in users.items()}
    started = time.monotonic()
    results: list[StepResult] = []
    with httpx.Client(timeout=target.timeout, transport=target.transport) as client:
        replay = _Replay(session, target, client, users, bindings)
        for index, step in enumerate(session.steps, start=1):
            if results and results[-1].outcome is not Outcome.PASSED:
                result = _skipped(index, step, "an earlier step failed")
            else:
                result = replay.step(index, step)
            results.append(result)
            if on_step is not None:
                on_step(session, result)
    failed = [result for result in results if result.outcome in (Outcome.FAILED, Outcome.ERROR)]
    outcome = failed[0].outcome if failed else Outcome.PASSED
    return SessionResult(
        session, outcome, tuple(results), users, elapsed=time.monotonic() - started
    )


def _user_labels(session: Session) -> list[str]:
    return sorted({actor.user for actor in session.actors.values()})


def _skipped(index: int, step: Step, reason: str) -> StepResult:
    return StepResult(
        index, step.name, step.actor, step.request.method, step.request.path,
        Outcome.SKIPPED, step.expect.status, detail=reason,
    )  # fmt: skip


@dataclass(slots=True)
class _Actual:
    status: int
    content_type: str
    body: Body


class _Replay:
    def __init__(
        self,
        session: Session,
        target: Target,
        client: httpx.Client,
        users: dict[str, str],
        bindings: Bindings,
    ) -> None:
        self.session = session
        self.target = target
        self.client = client
        self.users = users
        self.bindings = bindings

    def step(self, index: int, step: Step) -> StepResult:
        started = time.monotonic()
        path = step.request.path
        try:
            path = interpolate(step.request.path, self.bindings)
            request = self.build(step, path)
            response = self.client.send(request)
        except (UnboundName, TokenError, httpx.HTTPError) as error:
            return StepResult(
                index, step.name, step.actor, step.request.method, path, Outcome.ERROR,
                step.expect.status, detail=f"{type(error).__name__}: {error}",
                elapsed=time.monotonic() - started,
            )  # fmt: skip
        actual = _read(response)
        mismatches, diff = _compare(step, actual, self.bindings)
        return StepResult(
            index, step.name, step.actor, step.request.method, path,
            Outcome.FAILED if mismatches else Outcome.PASSED, step.expect.status,
            actual.status, mismatches, diff, elapsed=time.monotonic() - started,
        )  # fmt: skip

    def build(self, step: Step, path: str) -> httpx.Request:
        actor = self.session.actors[step.actor]
        user = self.users[actor.user]
        headers = {
            name: interpolate(value, self.bindings) for name, value in step.request.headers.items()
        }
        auth = step.request.auth
        if isinstance(auth, dict):
            headers["Authorization"] = interpolate(auth["authorization"], self.bindings)
        elif auth == "user":
            headers["Authorization"] = f"Bearer {self.target.tokens.token(user)}"
        elif auth in SPECIAL_TOKENS:
            headers["Authorization"] = f"Bearer {self.target.tokens.special(auth, user)}"
        content: bytes | None = None
        body = step.request.body
        if isinstance(body, JsonBody):
            value = resolve_body(body.value, self.bindings)
            content = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()
        elif isinstance(body, TextBody):
            content = interpolate(body.text, self.bindings).encode()
        query = {
            name: interpolate(value, self.bindings) for name, value in step.request.query.items()
        }
        return self.client.build_request(
            step.request.method,
            self.target.base_url.rstrip("/") + path,
            params=query or None,
            headers=headers,
            content=content,
        )


def _read(response: httpx.Response) -> _Actual:
    content_type = response.headers.get("content-type", "")
    body: Body = None
    if response.content:
        try:
            body = JsonBody(json.loads(response.content))
        except ValueError:
            body = TextBody(response.text)
    return _Actual(response.status_code, content_type, body)


def media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _compare(step: Step, actual: _Actual, bindings: Bindings) -> tuple[tuple[Mismatch, ...], str]:
    mismatches: list[Mismatch] = []
    if actual.status != step.expect.status:
        mismatches.append(Mismatch("status", f"expected {step.expect.status}, got {actual.status}"))
    for name, value in step.expect.headers.items():
        if name.lower() == "content-type" and media_type(value) != media_type(actual.content_type):
            mismatches.append(
                Mismatch(f"header {name}", f"expected {value!r}, got {actual.content_type!r}")
            )
    expected = step.expect.body
    rendered: object = None
    if isinstance(expected, JsonBody):
        if isinstance(actual.body, JsonBody):
            result = match(expected.value, actual.body.value, bindings)
            mismatches.extend(result.mismatches)
            rendered = result.rendered
        else:
            mismatches.append(Mismatch("body", f"expected JSON, got {_describe_body(actual.body)}"))
            rendered = expected.value
    elif isinstance(expected, TextBody):
        if not (isinstance(actual.body, TextBody) and actual.body.text == expected.text):
            mismatches.append(
                Mismatch(
                    "body", f"expected text {expected.text!r}, got {_describe_body(actual.body)}"
                )
            )
    elif actual.body is not None:
        mismatches.append(Mismatch("body", f"expected no body, got {_describe_body(actual.body)}"))
    if not mismatches:
        return (), ""
    return tuple(mismatches), _diff(rendered, actual.body)


def _describe_body(body: Body) -> str:
    if body is None:
        return "an empty body"
    if isinstance(body, TextBody):
        return f"text {body.text[:200]!r}"
    return "JSON " + json.dumps(body.value, ensure_ascii=False)[:200]


def _pretty(value: object) -> list[str]:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False).splitlines()


def _diff(rendered: object, actual: Body) -> str:
    """A unified diff of the expected body (matched directives shown as their values) and the
    actual one; empty when a side is not JSON."""
    if rendered is None or not isinstance(actual, JsonBody):
        return ""
    lines = difflib.unified_diff(
        _pretty(rendered), _pretty(actual.value), "expected", "actual", n=2, lineterm=""
    )
    return "\n".join(lines)
