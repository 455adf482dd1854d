"""The push fast path (server/oversync_server/push_fastpath.py) answers exactly as the FastAPI
routes do: the same requests of two users, one through the fast path and one through FastAPI
(a percent-encoded path is always left to FastAPI), get the same statuses, headers and bodies;
requests the fast path does not take for certain get FastAPI's refusals."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx

from serverproc import ServerProcess


def _call(
    server: ServerProcess, user: str, path: str, body: Any = None, **headers: str
) -> httpx.Response:
    sent = {
        "Authorization": f"Bearer {server.token(user)}",
        "Oversync-Source-ID": "dev-1",
        **headers,
    }
    return httpx.post(server.base_url + path, json=body, headers=sent, timeout=30)


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _shape(response: httpx.Response) -> tuple[int, str | None, dict[str, Any]]:
    document = dict(response.json())
    for volatile in ("push_id", "bundle_hash"):
        if volatile in document:
            document[volatile] = "*"
    if "message" in document:
        document["message"] = _UUID.sub("*", document["message"])
    return response.status_code, response.headers.get("content-type"), document


def _encoded(path: str) -> str:
    """The same path with its `p` percent-encoded: FastAPI serves it, not the fast path."""
    return path.replace("/sync/push-s", "/sync/%70ush-s", 1)


def _row(key: str, name: str) -> dict[str, Any]:
    return {
        "schema": "business",
        "table": "users",
        "key": {"id": key},
        "op": "INSERT",
        "base_row_version": 0,
        "payload": {"id": key, "name": name, "email": f"{name}@example.com"},
    }


def test_fast_and_fastapi_paths_answer_alike(server: ServerProcess) -> None:
    answers: dict[str, list[tuple[int, str | None, dict[str, Any]]]] = {}
    for user, route in (("alice", lambda p: p), ("bob", _encoded)):
        assert _call(server, user, "/sync/connect", {"has_local_pending_rows": False}).is_success
        steps = []
        created = _call(
            server,
            user,
            route("/sync/push-sessions"),
            {"source_bundle_id": 1, "planned_row_count": 2},
        )
        steps.append(_shape(created))
        push_id = created.json()["push_id"]
        chunk = {"start_row_ordinal": 0, "rows": [_row(str(uuid.uuid4()), "n1")]}
        steps.append(
            _shape(_call(server, user, route(f"/sync/push-sessions/{push_id}/chunks"), chunk))
        )
        # errors from the service: a chunk out of order, a commit of an incomplete session
        steps.append(
            _shape(_call(server, user, route(f"/sync/push-sessions/{push_id}/chunks"), chunk))
        )
        steps.append(_shape(_call(server, user, route(f"/sync/push-sessions/{push_id}/commit"))))
        chunk = {"start_row_ordinal": 1, "rows": [_row(str(uuid.uuid4()), "n2")]}
        steps.append(
            _shape(_call(server, user, route(f"/sync/push-sessions/{push_id}/chunks"), chunk))
        )
        steps.append(_shape(_call(server, user, route(f"/sync/push-sessions/{push_id}/commit"))))
        # a replay of the committed tuple
        steps.append(
            _shape(
                _call(
                    server,
                    user,
                    route("/sync/push-sessions"),
                    {"source_bundle_id": 1, "planned_row_count": 2},
                )
            )
        )
        answers[user] = steps
    assert answers["alice"] == answers["bob"]
    assert [status for status, _, _ in answers["alice"]] == [200, 200, 409, 400, 200, 200, 200]


def test_requests_the_fast_path_leaves_get_fastapis_answers(server: ServerProcess) -> None:
    body = {"source_bundle_id": 1, "planned_row_count": 1}
    refused = [
        _call(server, "alice", "/sync/push-sessions", body, **{"Oversync-Source-ID": ""}),
        _call(server, "alice", "/sync/push-sessions", {"source_bundle_id": "x"}),
        _call(server, "alice", "/sync/push-sessions", body, Authorization="Bearer nonsense"),
        _call(server, "alice", "/sync/push-sessions", body, Authorization="Basic abc"),
        _call(server, "alice", "/sync/push-sessions/not-a-uuid/commit"),
    ]
    assert [(r.status_code, r.json()["error"]) for r in refused] == [
        (400, "invalid_request"),
        (400, "invalid_request"),
        (401, "authentication_failed"),
        (401, "authentication_failed"),
        (404, "push_session_not_found"),
    ]
