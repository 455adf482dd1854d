"""Client-chosen identifiers that PostgreSQL cannot store answer 4xx, never 500 (issue 9, item 7).

The JWT `sub` (401 `authentication_failed`), the `Oversync-Source-ID` header (400
`invalid_request`) and a snapshot rotation's `new_source_id` (400 `snapshot_session_invalid`)
must be at most 255 characters, without NUL or other control characters, and valid Unicode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import time
from typing import Any

import httpx
import pytest

from oversync_server.engine.identifiers import MAX_IDENTIFIER_LENGTH, identifier_problem
from protocol_helpers import attach
from serverproc import JWT_SECRET, ServerProcess


def _token(claims: dict[str, Any]) -> str:
    """An HS256 token with exactly these claims (json.dumps keeps "\\u0000" escapes valid)."""

    def part(data: dict[str, Any]) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    signing_input = f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}"
    signature = hmac.new(JWT_SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{base64.urlsafe_b64encode(signature).rstrip(b'=').decode()}"


def _connect(server: ServerProcess, token: str, source: str = "dev-a") -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/sync/connect",
        json={"has_local_pending_rows": False},
        headers={"Authorization": f"Bearer {token}", "Oversync-Source-ID": source},
        timeout=10.0,
    )


def _error(response: httpx.Response, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code, body
    assert isinstance(body["message"], str) and body["message"]
    return str(body["message"])


@pytest.mark.parametrize(
    ("subject", "words"),
    [
        ("al\x00ice", "control characters (U+0000"),
        ("bob\x1b[31m", "control characters (U+001B"),
        ("x" * 5000, "at most 255 characters"),
        ("\ud800", "valid Unicode"),
    ],
    ids=["nul", "escape", "5k", "lone-surrogate"],
)
def test_an_unusable_subject_is_a_401(server: ServerProcess, subject: str, words: str) -> None:
    now = int(time.time())
    token = _token({"sub": subject, "iat": now, "exp": now + 600})
    message = _error(_connect(server, token), 401, "authentication_failed")
    assert "subject" in message and words in message


def test_a_subject_of_255_characters_is_fine(server: ServerProcess) -> None:
    now = int(time.time())
    token = _token({"sub": "u" * MAX_IDENTIFIER_LENGTH, "exp": now + 600})
    assert _connect(server, token).status_code == 200


@pytest.mark.parametrize(
    ("source", "words"),
    [("x" * 5000, "at most 255 characters"), ("dev\tb", "control characters")],
    ids=["5k", "tab"],
)
def test_an_unusable_source_id_is_a_400(server: ServerProcess, source: str, words: str) -> None:
    message = _error(_connect(server, server.token("alice"), source), 400, "invalid_request")
    assert "Oversync-Source-ID" in message and words in message


def test_a_nul_in_the_source_header_is_refused_with_a_4xx(server: ServerProcess) -> None:
    """HTTP itself forbids NUL in a header; whichever layer refuses it, it is a 4xx."""
    request = (
        b"POST /sync/connect HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + server.token("alice").encode() + b"\r\n"
        b"Oversync-Source-ID: dev\x00a\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as connection:
        connection.sendall(request)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    status = int(answer.split(b" ", 2)[1])
    assert 400 <= status < 500, answer[:300]


@pytest.mark.parametrize(
    ("new_source", "words"),
    [("dev\x00b", "control characters (U+0000"), ("n" * 5000, "at most 255 characters")],
    ids=["nul", "5k"],
)
def test_an_unusable_new_source_id_is_a_400(
    server: ServerProcess, new_source: str, words: str
) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
    body = {
        "source_replacement": {
            "previous_source_id": "dev-a",
            "new_source_id": new_source,
            "reason": "history_pruned",
        }
    }
    response = httpx.post(
        f"{server.base_url}/sync/snapshot-sessions",
        content=json.dumps(body),
        headers={
            "Authorization": f"Bearer {server.token('alice')}",
            "Oversync-Source-ID": "dev-a",
            "Content-Type": "application/json",
        },
        timeout=10.0,
    )
    message = _error(response, 400, "snapshot_session_invalid")
    assert "new_source_id" in message and words in message
    assert "Traceback" not in server.log()


def test_identifier_rules() -> None:
    assert identifier_problem("device-7f3a") is None
    assert identifier_problem("用户@example.com") is None
    assert identifier_problem("a" * 255) is None
    assert identifier_problem("") == "must not be empty"
    for bad in ("a\x00", "a\x7f", "a\x85", "a\n", "\udfff"):
        assert identifier_problem(bad) is not None, repr(bad)
