"""The conformance corpus against this server, a real `oversync-server serve` process.

One server (with the development endpoints) serves every session: each run of a session uses
fresh user ids, which is also what makes the corpus safe to run against a shared server. Then
the same runner, pointed at a proxy that tampers with the answers, must fail with a clear diff.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from oversync_conformance import (
    JsonBody,
    Outcome,
    SecretTokens,
    Session,
    Target,
    load_sessions,
    run_session,
)
from oversync_conformance.cli import DEFAULT_SESSIONS_DIR
from oversync_conformance.recorder import record_scenario
from oversync_conformance.scenarios import all_scenarios, get_scenario
from oversync_server.localpg import create_database_async, drop_database_async
from serverproc import JWT_SECRET, REPO_ROOT, ServerProcess

CORPUS = load_sessions([DEFAULT_SESSIONS_DIR])


@pytest.fixture(scope="module")
def shared_server(pg_cluster: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One server for the whole corpus, with /test/* mounted; yields its base URL."""
    name = f"t_{uuid.uuid4().hex}"
    dsn = asyncio.run(create_database_async(pg_cluster, name))
    process = ServerProcess(dsn, extra_args=("--dev",))
    process.start(tmp_path_factory.mktemp("conformance"))
    try:
        yield process.base_url
    finally:
        process.stop()
        asyncio.run(drop_database_async(pg_cluster, name, force=True))


def target(base_url: str) -> Target:
    return Target(base_url=base_url, tokens=SecretTokens(JWT_SECRET), dev_endpoints=True)


@pytest.mark.parametrize("session", CORPUS, ids=[session.name for session in CORPUS])
def test_session(shared_server: str, session: Session) -> None:
    result = run_session(session, target(shared_server))
    assert result.outcome is Outcome.PASSED, result.report()  # nothing skipped here


def test_corpus_is_the_recorded_non_pending_scenarios() -> None:
    recorded = {session.name: session for session in CORPUS}
    expected = {entry.name for entry in all_scenarios() if entry.pending is None}
    assert sorted(recorded) == sorted(expected), "run `oversync-conformance record` (README)"
    for session in CORPUS:
        assert session.scenario == get_scenario(session.name).qualified_name


# What no session can provoke from a server in its default configuration, and why. Codes of
# 500/503 answers (unexpected failures, shutdown, watch disabled) are left out as a class.
NOT_PROVOKED: dict[tuple[str, str], str] = {
    ("uploadPushChunk", "push_session_expired"): "needs the 15-minute session TTL to pass",
    ("commitPushSession", "push_session_expired"): "needs the 15-minute session TTL to pass",
    ("deletePushSession", "push_session_expired"): "needs the 15-minute session TTL to pass",
    ("getSnapshotChunk", "snapshot_session_expired"): "needs the 15-minute snapshot TTL to pass",
    ("uploadPushChunk", "initialization_expired"): "an expired lease shows as initialization_stale",
    (
        "commitPushSession",
        "initialization_expired",
    ): "an expired lease shows as initialization_stale",
    ("commitPushSession", "source_sequence_changed"): "needs two commits racing for one tuple",
    ("watchBundles", "bundle_change_watch_forbidden"): "needs a per-actor watch policy",
    ("watchBundles", "200"): "an event stream, not a request/response exchange",
    ("createSnapshotSession", "snapshot_session_too_large"): "needs a snapshot size limit",
    ("createSnapshotSession", "too_many_snapshot_sessions"): "a cap of this server's own config",
    ("watchBundles", "too_many_watch_streams"): "a cap of this server's own config",
}


def _spec_operations() -> list[tuple[str, re.Pattern[str], str, dict[str, Any]]]:
    spec = yaml.safe_load((REPO_ROOT / "openapi" / "oversync.yaml").read_text())
    operations = []
    for path, methods in spec["paths"].items():
        pattern = re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", path) + "$")
        for method, operation in methods.items():
            if isinstance(operation, dict) and "operationId" in operation:
                operations.append((method.upper(), pattern, operation["operationId"], operation))
    return operations


def test_corpus_covers_every_operation_and_error_code() -> None:
    """At least one step per operation's success and per error code it can answer."""
    operations = _spec_operations()
    seen: set[tuple[str, str]] = set()
    for session in CORPUS:
        for step in session.steps:
            body = step.expect.body.value if isinstance(step.expect.body, JsonBody) else None
            code = body.get("error") if isinstance(body, dict) else None
            for method, pattern, operation_id, _ in operations:
                if method == step.request.method and pattern.match(step.request.path):
                    seen.add(
                        (operation_id, code if isinstance(code, str) else str(step.expect.status))
                    )
    wanted = set()
    for _, _, operation_id, operation in operations:
        success = next(status for status in operation["responses"] if status.startswith("2"))
        wanted.add((operation_id, success))
        for status, codes in operation.get("x-error-codes", {}).items():
            if status not in ("500", "503"):
                wanted.update((operation_id, code) for code in codes)
    missing = sorted(wanted - seen - set(NOT_PROVOKED))
    assert not missing, f"no session provokes: {missing}"
    assert not set(NOT_PROVOKED) & seen, "a pair listed as not provoked is in the corpus"


def test_sessions_are_what_their_scenarios_record(shared_server: str) -> None:
    """Sessions come from real exchanges: re-recording gives the committed files back."""
    stale = []
    for session in CORPUS:
        again = record_scenario(
            get_scenario(session.name),
            base_url=shared_server,
            tokens=SecretTokens(JWT_SECRET),
        )
        if again.dumps() != session.dumps():
            stale.append(session.name)
    assert not stale, f"re-record these sessions: {stale}"


# ------------------------------------------------------------------ a deliberately broken server

Tamper = Callable[[str, str, int, Any], tuple[int, Any]]


class TamperingProxy:
    """A tiny HTTP proxy in front of the real server that rewrites JSON answers."""

    def __init__(self, upstream: str, tamper: Tamper) -> None:
        self.upstream = upstream
        self.tamper = tamper
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> TamperingProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length")
                }
                upstream = httpx.request(
                    self.command,
                    proxy.upstream + self.path,
                    headers=headers,
                    content=self.rfile.read(length) if length else None,
                )
                status, content = upstream.status_code, upstream.content
                if upstream.headers.get("content-type", "").startswith("application/json"):
                    path = self.path.split("?")[0]
                    status, body = proxy.tamper(self.command, path, status, upstream.json())
                    content = json.dumps(body).encode()
                self.send_response(status)
                if content:
                    self.send_header("Content-Type", upstream.headers["content-type"])
                self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            do_GET = do_POST = do_DELETE = do_PUT = forward

        return Handler


def run_cli(
    base_url: str, sessions: list[Session], junit: Path
) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable, "-m", "oversync_conformance.cli", "run", "--base-url", base_url,
        "--jwt-secret", JWT_SECRET, "--dev-endpoints", "--junit", str(junit),
        *[str(session.path) for session in sessions],
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)


def wrong_error_code(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    if isinstance(body, dict) and body.get("error") == "authentication_failed":
        body = {**body, "error": "unauthorized"}
    return status, body


def wrong_bundle_hash(method: str, path: str, status: int, body: Any) -> tuple[int, Any]:
    def flip(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                k: ("f" if v[0] != "f" else "0") + v[1:] if k == "bundle_hash" else flip(v)
                for k, v in value.items()
            }
        return [flip(item) for item in value] if isinstance(value, list) else value

    return status, flip(body)


def test_the_real_server_passes_through_an_honest_proxy(shared_server: str, tmp_path: Path) -> None:
    chosen = [s for s in CORPUS if "dev-endpoints" not in s.requires][:3]
    with TamperingProxy(shared_server, lambda m, p, s, b: (s, b)) as proxy:
        done = run_cli(proxy.base_url, chosen, tmp_path / "junit.xml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_wrong_error_code_fails_with_a_diff(shared_server: str, tmp_path: Path) -> None:
    chosen = [s for s in CORPUS if "auth" in s.tags]
    assert chosen, "the corpus has auth sessions"
    with TamperingProxy(shared_server, wrong_error_code) as proxy:
        done = run_cli(proxy.base_url, chosen, tmp_path / "junit.xml")
    assert done.returncode == 1
    assert '$.error: expected "authentication_failed", got "unauthorized"' in done.stdout
    assert '-  "error": "authentication_failed",' in done.stdout
    assert '+  "error": "unauthorized",' in done.stdout
    assert 'failures="1"' in (tmp_path / "junit.xml").read_text()


def test_a_wrong_bundle_hash_fails_with_a_diff(shared_server: str, tmp_path: Path) -> None:
    chosen = [s for s in CORPUS if "bundle_hash" in s.dumps()]
    if not chosen:
        pytest.skip("no session in the corpus carries a bundle_hash yet (push is pending)")
    with TamperingProxy(shared_server, wrong_bundle_hash) as proxy:
        done = run_cli(proxy.base_url, chosen[:2], tmp_path / "junit.xml")
    assert done.returncode == 1
    assert "bundle_hash" in done.stdout and "FAIL" in done.stdout
