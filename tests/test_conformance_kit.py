"""The conformance kit on its own: session format, matchers, runner, reports, recorder, CLI.

No server here: the runner and the recorder talk to `httpx.MockTransport` handlers (a fake
server of a few lines); `tests/test_conformance.py` runs the corpus against the real server.
"""

from __future__ import annotations

import json
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import httpx
import pytest

from oversync_client.api.push import create_push_session, get_committed_bundle_rows
from oversync_client.models import PushSessionCreateRequest
from oversync_conformance import (
    Actor,
    CommandTokens,
    JsonBody,
    Outcome,
    SecretTokens,
    SessionFormatError,
    Target,
    TokenError,
    junit_xml,
    load_session,
    match,
    parse_session,
    run_session,
    run_sessions,
)
from oversync_conformance.cli import main
from oversync_conformance.generalize import (
    Exchange,
    RecordedStep,
    Recording,
    RecordingError,
    generalize,
)
from oversync_conformance.recorder import (
    CapturedStr,
    RecordResult,
    ScenarioContext,
    ScenarioFailure,
    record_scenario,
)
from oversync_conformance.scenarios import Scenario, all_scenarios
from oversync_conformance.session import render_json
from oversync_conformance.tokens import sign_hs256
from oversync_wire import bundle_hash

SECRET = "kit-secret"
HASH_ROWS = [
    {
        "schema": "business",
        "table": "categories",
        "key": {"id": "00000000-0000-4000-8000-000000000001"},
        "op": "INSERT",
        "row_version": 1,
        "payload": {"id": "00000000-0000-4000-8000-000000000001", "name": "a", "parent_id": None},
    }
]


def session_data(steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "format": "oversync-conformance/1",
        "name": "example",
        "actors": {"phone": {"user": "alice", "source": "phone-1"}},
        "steps": steps,
        **extra,
    }


def step(path: str, status: int, expected: Any = None, **request: Any) -> dict[str, Any]:
    expect: dict[str, Any] = {"status": status}
    if expected is not None:
        expect["body"] = expected
    return {
        "name": f"GET {path}",
        "actor": "phone",
        "request": {"method": request.pop("method", "GET"), "path": path, **request},
        "expect": expect,
    }


# ------------------------------------------------------------------------------ matching


@pytest.mark.parametrize(
    ("template", "actual", "ok"),
    [
        ({"a": 1, "b": [True, None]}, {"a": 1.0, "b": [True, None]}, True),
        ({"a": 1}, {"a": True}, False),
        ({"a": 1}, {"a": 1, "b": 2}, False),
        ({"a": 1, "b": 2}, {"a": 1}, False),
        ([1, 2], [1, 2, 3], False),
        ({"$match": "uuid"}, str(uuid.uuid4()), True),
        ({"$match": "uuid"}, str(uuid.uuid4()).upper(), False),
        ({"$match": "timestamp"}, "2026-03-22T12:15:03.123456789Z", True),
        ({"$match": "timestamp"}, "2026-03-22 12:15:03", False),
        ({"$match": "int", "min": 1}, 0, False),
        ({"$match": "int", "min": 1}, 3, True),
        ({"$match": "int"}, False, False),
        ({"$match": "sha256"}, "ab" * 32, True),
        ({"$match": "string"}, 3, False),
        ({"x": {"$optional": 0}}, {}, True),
        ({"x": {"$optional": 0}}, {"x": 0}, True),
        ({"x": {"$optional": 0}}, {"x": 1}, False),
    ],
)
def test_match_literals_and_kinds(template: Any, actual: Any, ok: bool) -> None:
    assert match(template, actual, {}).ok is ok


def test_capture_then_ref_with_offset() -> None:
    bindings: dict[str, Any] = {}
    assert match({"seq": {"$capture": "seq", "$match": "int"}}, {"seq": 7}, bindings).ok
    assert bindings == {"seq": 7}
    assert match({"next": {"$ref": "seq", "plus": 1}}, {"next": 8}, bindings).ok
    failed = match({"next": {"$ref": "seq"}}, {"next": 8}, bindings)
    assert [str(m) for m in failed.mismatches] == ["$.next: expected 7 (ref seq), got 8"]


def test_bundle_hash_is_recomputed_from_complete_rows() -> None:
    good, _ = bundle_hash(HASH_ROWS)
    template = {"bundle_hash": {"$match": "bundle_hash"}, "row_count": 1, "rows": HASH_ROWS}
    assert match(template, {"bundle_hash": good, "row_count": 1, "rows": HASH_ROWS}, {}).ok
    wrong = match(template, {"bundle_hash": "0" * 64, "row_count": 1, "rows": HASH_ROWS}, {})
    assert "is not the hash of the bundle's rows" in str(wrong.mismatches[0])
    partial = {"bundle_hash": {"$match": "bundle_hash"}, "row_count": 2, "rows": HASH_ROWS}
    assert match(partial, {"bundle_hash": "0" * 64, "row_count": 2, "rows": HASH_ROWS}, {}).ok


def test_rendering_shows_matched_values_and_only_real_differences() -> None:
    actual = {"push_id": str(uuid.uuid4()), "status": "staged"}
    result = match({"push_id": {"$match": "uuid"}, "status": "staging"}, actual, {})
    assert result.rendered == {"push_id": actual["push_id"], "status": "staging"}
    assert [m.path for m in result.mismatches] == ["$.status"]


@pytest.mark.parametrize(
    "body",
    [
        {"$match": "colour"},
        {"$ref": "x", "min": 1},
        {"$match": "uuid", "min": 1},
        {"$optional": 1, "$match": "int"},
        {"$capture": 3},
        {"$bogus": 1},
    ],
)
def test_malformed_directives_are_format_errors(body: Any) -> None:
    with pytest.raises(SessionFormatError):
        parse_session(session_data([step("/x", 200, body)]))


def test_session_round_trips_through_json(tmp_path: Path) -> None:
    data = session_data(
        [step("/sync/x/${id}", 200, {"id": {"$capture": "id"}}, query={"a": "1"}, auth="expired")],
        tags=["t"],
        requires=["jwt-secret"],
    )
    session = parse_session(data)
    again = load_session(session.write(tmp_path))
    assert again == session
    assert json.loads(session.dumps())["steps"][0]["request"]["auth"] == "expired"


def test_unknown_actor_and_requirement_are_format_errors() -> None:
    bad = session_data([step("/x", 200)])
    bad["steps"][0]["actor"] = "tablet"
    with pytest.raises(SessionFormatError, match="unknown actor"):
        parse_session(bad)
    with pytest.raises(SessionFormatError, match="unknown requirement"):
        parse_session(session_data([step("/x", 200)], requires=["root"]))


# -------------------------------------------------------------------------------- runner


class FakeServer:
    """A few protocol-like routes: issues push ids, echoes the source, checks tokens."""

    def __init__(self, tamper: bool = False) -> None:
        self.tamper = tamper
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer ey"):
            return httpx.Response(401, json={"error": "authentication_failed", "message": "no"})
        if request.url.path == "/sync/push-sessions":
            push_id = str(uuid.uuid4())
            return httpx.Response(200, json={"push_id": push_id, "status": "staging"})
        if request.url.path.startswith("/sync/push-sessions/"):
            code = "wrong_code" if self.tamper else "push_session_not_found"
            return httpx.Response(404, json={"error": code, "message": request.url.path})
        if request.url.path == "/echo":
            return httpx.Response(200, json=json.loads(request.content or b"null"))
        return httpx.Response(204)


def target_for(handler: Any, tokens: Any = None) -> Target:
    return Target(
        base_url="http://server.test",
        tokens=tokens or SecretTokens(SECRET),
        transport=httpx.MockTransport(handler),
    )


PUSH_STEPS = [
    step(
        "/sync/push-sessions",
        200,
        {"push_id": {"$capture": "push_id", "$match": "uuid"}, "status": "staging"},
        method="POST",
    ),
    step(
        "/sync/push-sessions/${push_id}/commit",
        404,
        {"error": "push_session_not_found", "message": {"$match": "string"}},
        method="POST",
    ),
]


def test_runner_replays_captures_into_later_requests() -> None:
    server = FakeServer()
    session = parse_session(session_data(PUSH_STEPS))
    result = run_session(session, target_for(server))
    assert result.outcome is Outcome.PASSED, result.report()
    issued = server.requests[0]
    commit = server.requests[1]
    assert commit.url.path.endswith("/commit") and "${" not in commit.url.path
    assert result.users["alice"].startswith("conformance-alice-")
    assert issued.headers["authorization"].startswith("Bearer ey")


def test_a_failing_step_has_a_readable_diff_and_stops_the_session() -> None:
    session = parse_session(
        session_data(
            [
                step("/sync/push-sessions", 200, {"push_id": {"$match": "uuid"}, "status": "x"},
                     method="POST"),
                step("/other", 204),
            ]
        )
    )  # fmt: skip
    result = run_session(session, target_for(FakeServer()))
    assert result.outcome is Outcome.FAILED
    first, second = result.steps
    assert [str(m) for m in first.mismatches] == ['$.status: expected "x", got "staging"']
    assert '-  "status": "x"' in first.diff and '+  "status": "staging"' in first.diff
    changed = [line for line in first.diff.splitlines() if line[:1] in "+-"]
    assert not [line for line in changed if "push_id" in line]  # matched: not a difference
    assert second.outcome is Outcome.SKIPPED
    assert "FAIL" in result.report() and "$.status" in result.report()


def test_status_and_body_kinds_are_compared() -> None:
    session = parse_session(session_data([step("/other", 200, {"a": 1})]))
    result = run_session(session, target_for(FakeServer()))
    messages = [str(m) for m in result.steps[0].mismatches]
    assert messages == ["status: expected 200, got 204", "body: expected JSON, got an empty body"]


def test_request_bodies_resolve_refs_and_user_ids() -> None:
    session = parse_session(
        session_data(
            [
                step("/echo", 200, {"user": {"$ref": "user.alice"}, "n": 2},
                     method="POST", body={"user": {"$ref": "user.alice"}, "n": 2}),
            ]
        )
    )  # fmt: skip
    result = run_session(session, target_for(FakeServer()))
    assert result.ok, result.report()


def test_auth_modes_and_requirements() -> None:
    server = FakeServer()
    steps = [
        step("/other", 401, auth="none"),
        step("/other", 401, auth={"authorization": "Basic abc"}),
        step("/other", 204, auth="expired"),
    ]
    for index in (0, 1):
        steps[index]["expect"]["body"] = {"error": "authentication_failed", "message": "no"}
    data = session_data(steps, requires=["jwt-secret"])
    assert run_session(parse_session(data), target_for(server)).ok
    assert "authorization" not in server.requests[0].headers
    assert server.requests[1].headers["authorization"] == "Basic abc"
    command = CommandTokens("printf eyToken")
    skipped = run_session(parse_session(data), target_for(server, command))
    assert skipped.outcome is Outcome.SKIPPED and skipped.reason == "needs jwt-secret"


def test_an_unreachable_server_is_an_error_not_a_crash() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    result = run_session(parse_session(session_data([step("/x", 200)])), target_for(refuse))
    assert result.outcome is Outcome.ERROR
    assert "ConnectError" in result.steps[0].detail


def test_junit_report_has_a_case_per_step_with_failures() -> None:
    sessions = [
        parse_session(session_data(PUSH_STEPS)),
        parse_session(session_data([step("/x", 200)], requires=["dev-endpoints"])),
    ]
    run = run_sessions(sessions, target_for(FakeServer(tamper=True)))
    assert not run.ok
    root = junit_xml(run).getroot()
    suites = root.findall("testsuite")
    assert [suite.get("failures") for suite in suites] == ["1", "0"]
    failure = suites[0].findall("testcase")[1].find("failure")
    assert failure is not None and "wrong_code" in (failure.text or "")
    assert suites[1].find("testcase/skipped") is not None


# ---------------------------------------------------------------------------------- tokens


def test_secret_tokens_are_hs256_jwts_with_the_user_as_subject() -> None:
    import base64
    import hashlib
    import hmac

    token = SecretTokens(SECRET).token("alice")
    header, claims, signature = token.split(".")
    expected = hmac.new(SECRET.encode(), f"{header}.{claims}".encode(), hashlib.sha256).digest()
    assert base64.urlsafe_b64decode(signature + "==") == expected
    assert json.loads(base64.urlsafe_b64decode(claims + "=="))["sub"] == "alice"
    assert sign_hs256("k", {"sub": "x"}) != sign_hs256("other", {"sub": "x"})


def test_command_tokens_pass_the_user_id(tmp_path: Path) -> None:
    assert CommandTokens("echo token-for-{user}").token("bob") == "token-for-bob"
    assert CommandTokens("echo token-for").token("bob") == "token-for bob"


# -------------------------------------------------------------------------------- recorder


class FakeProtocol:
    """Push create issues a random id and a timestamp; committed rows are deterministic."""

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/info":
            return httpx.Response(200, json={"protocol_version": "v1", "app_name": "fake"})
        if request.url.path == "/sync/push-sessions":
            body = {"push_id": str(uuid.uuid4()), "status": "staging", "planned_row_count": 1}
            return httpx.Response(200, json=body)
        if request.url.path.startswith("/sync/committed-bundles/"):
            good, _ = bundle_hash(HASH_ROWS)
            return httpx.Response(200, json={
                "bundle_seq": 1, "source_id": "phone-1", "source_bundle_id": 1, "row_count": 1,
                "bundle_hash": good, "rows": HASH_ROWS, "next_row_ordinal": 0, "has_more": False,
            })  # fmt: skip
        return httpx.Response(404, json={"error": "push_session_not_found", "message": "x"})


def fake_scenario(ctx: ScenarioContext) -> None:
    phone = ctx.actor("phone", user="alice", source="phone-1")
    phone.raw("GET", "/info", expect=200)
    phone.call(
        create_push_session.sync_detailed,
        body=PushSessionCreateRequest(source_bundle_id=1, planned_row_count=1),
        expect=200,
    )
    push_id = ctx.capture("push_id", "push_id")
    seq = 1
    phone.call(get_committed_bundle_rows.sync_detailed, seq, expect=200)
    phone.raw(
        "POST", f"/sync/push-sessions/{push_id}/commit", expect=(404, "push_session_not_found")
    )
    phone.raw(
        "POST", "/test/retention-floor", json_body={"user_id": phone.user_id}, headers={},
        expect=(404, "push_session_not_found"),
    )  # fmt: skip


def test_recorder_generalizes_two_runs_into_a_replayable_session() -> None:
    entry = Scenario("fake", fake_scenario, "a fake scenario")
    transport = httpx.MockTransport(FakeProtocol())
    session = record_scenario(
        entry, base_url="http://server.test", tokens=SecretTokens(SECRET), transport=transport
    )
    steps = session.steps
    assert steps[0].expect.body is not None
    capabilities = steps[0].expect.body.value  # type: ignore[union-attr]
    assert capabilities == {"protocol_version": "v1", "app_name": {"$match": "string"}}
    created = steps[1].expect.body.value  # type: ignore[union-attr]
    assert created["push_id"] == {"$capture": "push_id", "$match": "uuid"}
    assert created["next_expected_row_ordinal"] == {"$optional": 0}
    assert steps[2].expect.body.value["bundle_hash"] == bundle_hash(HASH_ROWS)[0]  # type: ignore[union-attr]
    assert steps[3].request.path == "/sync/push-sessions/${push_id}/commit"
    assert steps[4].request.body.value == {"user_id": {"$ref": "user.alice"}}  # type: ignore[union-attr]
    assert run_session(session, target_for(FakeProtocol())).ok


def test_recorder_refuses_an_unexpected_answer() -> None:
    def scenario(ctx: ScenarioContext) -> None:
        ctx.actor("phone", user="alice", source="p").raw("GET", "/nowhere", expect=200)

    with pytest.raises(ScenarioFailure, match="expected 200, got 404"):
        record_scenario(
            Scenario("bad", scenario, ""),
            base_url="http://server.test",
            tokens=SecretTokens(SECRET),
            transport=httpx.MockTransport(FakeProtocol()),
        )


def test_recorder_rejects_scenarios_that_differ_between_runs() -> None:
    runs: list[int] = []

    def scenario(ctx: ScenarioContext) -> None:
        runs.append(1)
        phone = ctx.actor("phone", user="alice", source="p")
        for _ in range(len(runs)):
            phone.raw("GET", "/info", expect=200)

    with pytest.raises(RecordingError, match="the runs made 1 and 2 requests"):
        record_scenario(
            Scenario("flaky", scenario, ""),
            base_url="http://server.test",
            tokens=SecretTokens(SECRET),
            transport=httpx.MockTransport(FakeProtocol()),
        )


# ------------------------------------------------------------------------------- registry


def test_scenarios_have_summaries_and_unique_names() -> None:
    scenarios = all_scenarios()
    assert len({entry.name for entry in scenarios}) == len(scenarios)
    for entry in scenarios:
        assert entry.summary, f"{entry.name} needs a docstring"


# ------------------------------------------------------------------------------------- CLI


def test_cli_commands_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("run", "record", "list"):
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        assert "usage: oversync-conformance " + command in capsys.readouterr().out


def test_cli_usage_errors_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OVERSYNC_CONFORMANCE_JWT_SECRET", raising=False)
    assert main(["run", "--base-url", "http://x", "--sessions-dir", str(tmp_path)]) == 2
    assert "no sessions selected" in capsys.readouterr().err
    parse_session(session_data([step("/x", 200)])).write(tmp_path)
    assert main(["run", "--base-url", "http://x", "--sessions-dir", str(tmp_path)]) == 2
    assert "--jwt-secret" in capsys.readouterr().err
    assert main(["run", "--base-url", "http://x", "--jwt-secret", "s", "nope"]) == 2
    assert "no session 'nope'" in capsys.readouterr().err


def test_cli_run_writes_junit_and_exits_1_on_failure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = tmp_path / "sessions"
    directory.mkdir()
    parse_session(session_data(PUSH_STEPS)).write(directory)
    server = FakeServer(tamper=True)
    real_client = httpx.Client

    def client_with_fake(*args: Any, **kwargs: Any) -> httpx.Client:
        kwargs["transport"] = httpx.MockTransport(server)
        return real_client(*args, **kwargs)

    monkeypatch.setattr("oversync_conformance.runner.httpx.Client", client_with_fake)
    report = tmp_path / "junit.xml"
    code = main([
        "run", "--base-url", "http://server.test", "--jwt-secret", SECRET,
        "--sessions-dir", str(directory), "--junit", str(report),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 1
    assert "PASS  example 1/2" in out and "FAIL  example 2/2" in out
    assert '$.error: expected "push_session_not_found", got "wrong_code"' in out
    assert "1 sessions: 0 passed, 1 failed" in out
    assert ET.parse(report).getroot().find("testsuite/testcase/failure") is not None
    server.tamper = False
    assert main(["run", "--base-url", "http://server.test", "--jwt-secret", SECRET,
                 "--sessions-dir", str(directory), "-q"]) == 0  # fmt: skip


# ---------------------------------------------------------------------------- generalizer


def recording(users: dict[str, str], steps: list[RecordedStep]) -> Recording:
    return Recording(actors={"phone": Actor("alice", "p")}, users=users, steps=steps)


def exchange(
    path: str, response: Any, *, status: int = 200, body: Any = None, query: Any = None
) -> Exchange:
    return Exchange(
        actor="phone", auth="user", method="POST", path=path, query=query or {},
        headers={"Oversync-Source-ID": "p"}, body=None if body is None else JsonBody(body),
        status=status, content_type="application/json", response=JsonBody(response),
    )  # fmt: skip


def test_generalize_declares_what_differs_and_links_reused_values() -> None:
    def run(user: str, push_id: str, stamp: str, seq: int) -> Recording:
        return recording(
            {"alice": user},
            [
                RecordedStep("connect", exchange("/sync/connect", {
                    "resolution": "initialize_local", "initialization_id": push_id,
                    "lease_expires_at": "2026-01-01T00:00:00Z",
                })),
                RecordedStep("floor", exchange(
                    "/test/retention-floor", {"user_id": user, "status": "ok"},
                    body={"user_id": user, "initialization_id": push_id},
                )),
                RecordedStep("fail", exchange(
                    f"/sync/x/{push_id}", {"error": "e", "message": f"user {user} said no"},
                    status=409, query={"after": str(seq)},
                )),
                RecordedStep("stamp", exchange("/sync/y", {"at": stamp, "n": seq})),
            ],
        )  # fmt: skip

    a = run("u-1", str(uuid.uuid4()), "2026-01-01T00:00:01Z", 1)
    b = run("u-2", str(uuid.uuid4()), "2026-01-01T00:00:02Z", 2)
    a.steps[2].request_refs[("query", "after")] = "seq"
    session = generalize(a, b, name="g")
    connect, floor, fail, stamp = session.steps
    assert connect.expect.body == JsonBody({
        "resolution": "initialize_local",
        "initialization_id": {"$match": "uuid", "$capture": "initialization_id"},
        "lease_expires_at": {"$match": "timestamp"},
    })  # fmt: skip
    assert floor.request.body == JsonBody(
        {"user_id": {"$ref": "user.alice"}, "initialization_id": {"$ref": "initialization_id"}}
    )
    assert floor.expect.body == JsonBody({"user_id": {"$ref": "user.alice"}, "status": "ok"})
    assert fail.request.path == "/sync/x/${initialization_id}"
    assert fail.request.query == {"after": "${seq}"}
    assert fail.expect.body == JsonBody({"error": "e", "message": {"$match": "string"}})
    assert stamp.expect.body == JsonBody({"at": {"$match": "timestamp"}, "n": {"$match": "int"}})


def test_generalize_refuses_runs_of_different_shapes() -> None:
    a = recording({"alice": "u-1"}, [RecordedStep("s", exchange("/x", {"a": [1]}))])
    b = recording({"alice": "u-2"}, [RecordedStep("s", exchange("/x", {"a": [1, 2]}))])
    with pytest.raises(RecordingError, match="different lengths"):
        generalize(a, b, name="g")
    c = recording({"alice": "u-2"}, [RecordedStep("s", exchange("/x", {"a": [1]}, status=500))])
    with pytest.raises(RecordingError, match="the runs differ"):
        generalize(a, c, name="g")


def test_capture_and_loosen_override_the_last_response() -> None:
    seen: dict[str, Any] = {}

    def scenario(ctx: ScenarioContext) -> None:
        phone = ctx.actor("phone", user="alice", source="phone-1")
        phone.raw("GET", "/info", expect=200)
        seen["value"] = ctx.capture("version", "protocol_version")
        ctx.loosen("app_name", "nonempty_string")
        with pytest.raises(ScenarioFailure, match=r"has no 'nothing\.here'"):
            ctx.capture("x", "nothing.here")

    session = record_scenario(
        Scenario("c", scenario, ""),
        base_url="http://server.test",
        tokens=SecretTokens(SECRET),
        transport=httpx.MockTransport(FakeProtocol()),
    )
    assert isinstance(seen["value"], CapturedStr) and seen["value"].capture_name == "version"
    assert session.steps[0].expect.body == JsonBody({
        "protocol_version": {"$capture": "version", "$match": "string"},
        "app_name": {"$match": "nonempty_string"},
    })  # fmt: skip


def test_render_json_keeps_small_values_on_one_line() -> None:
    text = render_json({"a": [1, 2], "b": {"c": "x" * 120}})
    assert text.splitlines()[1] == '  "a": [1, 2],'
    assert json.loads(text) == {"a": [1, 2], "b": {"c": "x" * 120}}


def test_command_tokens_report_a_failing_command() -> None:
    with pytest.raises(TokenError, match="exited with 3"):
        CommandTokens("sh -c 'exit 3'").token("bob")


def test_cli_list_shows_every_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for entry in all_scenarios():
        assert entry.name in out


def test_record_leaves_pending_scenarios_out_unless_asked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ready = Scenario("ready", fake_scenario, "ready")
    waiting = Scenario("waiting", fake_scenario, "waiting", pending="push is not implemented")
    attempted: list[str] = []

    def fake_record(entry: Scenario, target: Target, *, out_dir: Path) -> Any:
        attempted.append(entry.name)
        return RecordResult(entry, None, error="server said 501") if entry.pending else (
            RecordResult(entry, None, path=out_dir / f"{entry.name}.json")
        )  # fmt: skip

    monkeypatch.setattr("oversync_conformance.scenarios.all_scenarios", lambda: [ready, waiting])
    monkeypatch.setattr("oversync_conformance.recorder.record", fake_record)
    base = ["record", "--base-url", "http://x", "--jwt-secret", "s", "--out", str(tmp_path)]
    assert main(base) == 0 and attempted == ["ready"]
    assert main([*base, "--include-pending"]) == 1 and attempted[1:] == ["ready", "waiting"]
    assert "FAIL  waiting [pending: push is not implemented]" in capsys.readouterr().out
