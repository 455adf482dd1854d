"""Tokens of identity providers (issue 13, item 3): RS256/ES256 from a JWKS URL served over real
HTTP (with key rotation), a PEM public key, issuer, audience and user-id claim checks, and the
`token` command shaped by the server's settings. Each server is a real `oversync-server serve`.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from oversync_server.auth import JWKSKeys
from oversync_server.engine.errors import SyncError
from protocol_helpers import config_file
from serverproc import JWT_SECRET, ServerProcess

ISSUER = "https://issuer.test/"
AUDIENCE = "sync-api"


class KeyServer:
    """A JWKS endpoint on a local port: `/jwks.json` serves `keys`, `/slow` answers too late."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path == "/slow":
                    time.sleep(3)
                owner.hits += self.path == "/jwks.json"
                body = json.dumps({"keys": owner.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str = "/jwks.json") -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server = KeyServer()
    try:
        yield server
    finally:
        server.close()


class Key:
    """A signing key pair and its public JWK."""

    def __init__(self, algorithm: str, kid: str) -> None:
        self.algorithm, self.kid = algorithm, kid
        if algorithm.startswith("RS"):
            self.private: Any = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        else:
            self.private = ec.generate_private_key(ec.SECP256R1())
            jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**jwk, "kid": kid, "use": "sig", "alg": algorithm}

    def public_pem(self) -> bytes:
        return bytes(
            self.private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )

    def token(self, kid: str | None = "", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + 600, **claims}
        body = {name: value for name, value in body.items() if value is not None}
        headers = {"kid": self.kid if kid == "" else kid} if kid is not None else {}
        return jwt.encode(body, self.private, algorithm=self.algorithm, headers=headers)


def connect(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/sync/connect",
        json={"has_local_pending_rows": False},
        headers={"Authorization": f"Bearer {token}", "Oversync-Source-ID": "dev-a"},
        timeout=15,
    )


def refused(response: httpx.Response) -> str:
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "authentication_failed"
    return str(response.json()["message"])


async def users(database_url: str) -> list[str]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch("SELECT user_id FROM sync.user_state ORDER BY user_id")
    finally:
        await connection.close()
    return [row["user_id"] for row in rows]


async def test_jwks_issuer_tokens_with_rotation(
    database_url: str, tmp_path: Path, key_server: KeyServer
) -> None:
    rsa_key, ec_key = Key("RS256", "rsa-1"), Key("ES256", "ec-1")
    key_server.keys = [rsa_key.jwk, ec_key.jwk]
    config = config_file(
        tmp_path,
        jwt_jwks_url=key_server.url(),
        jwt_issuer=ISSUER,
        jwt_audience=f"other-api,{AUDIENCE}",
        jwt_user_claim="uid",
        jwt_jwks_refetch_seconds=0,
    )
    # no shared secret: a real database served by provider tokens alone
    server = ServerProcess(
        database_url,
        config=config,
        extra_args=("--example-schema",),
        env={"OVERSYNC_JWT_SECRET": ""},
    ).start(tmp_path)
    try:
        assert connect(server, rsa_key.token(uid="alice", sub="auth0|1")).status_code == 200
        assert connect(server, ec_key.token(uid="bob")).status_code == 200
        assert await users(database_url) == ["alice", "bob"]  # the user id is `uid`
        assert key_server.hits == 1  # cached

        # rotation: the issuer publishes a new key and drops the old one
        rotated = Key("RS256", "rsa-2")
        key_server.keys = [rotated.jwk, ec_key.jwk]
        assert connect(server, rotated.token(uid="carol")).status_code == 200
        assert key_server.hits == 2  # the unknown kid made it refetch
        message = refused(connect(server, rsa_key.token(uid="alice")))
        assert message == "Invalid token: no RS256 signing key with kid 'rsa-1' at the issuer"

        def reason(token: str) -> str:
            return refused(connect(server, token))

        assert "issuer is not 'https://issuer.test/'" in reason(
            rotated.token(uid="a", iss="https://evil.test/")
        )
        assert "audience is not 'other-api' or 'sync-api'" in reason(
            rotated.token(uid="a", aud="someone-else")
        )
        assert (
            reason(rotated.token(uid=None, sub="a"))
            == "Invalid token: token has no user id claim 'uid'"
        )
        assert reason(rotated.token(uid="a", exp=int(time.time()) - 60)).endswith("has expired")
        assert "subject must not contain control characters" in reason(rotated.token(uid="a\x00"))
        hs256 = jwt.encode({"uid": "a", "iss": ISSUER, "aud": AUDIENCE}, JWT_SECRET)
        assert "signing algorithm 'HS256' is not accepted" in reason(hs256)
        unsigned = jwt.encode({"uid": "a"}, None, algorithm="none")
        assert "signing algorithm 'none' is not accepted" in reason(unsigned)
        # a token signed by a key the issuer never published, under a published kid
        impostor = Key("RS256", "rsa-2")
        assert reason(impostor.token(uid="a")) == "Invalid token: bad signature"
    finally:
        server.stop()


def test_a_pem_public_key_and_a_fixed_algorithm(database_url: str, tmp_path: Path) -> None:
    signer = Key("RS256", "any")
    pem = tmp_path / "issuer.pem"
    pem.write_bytes(signer.public_pem())
    config = config_file(
        tmp_path, jwt_public_key_file=str(pem), jwt_algorithms="RS256", jwt_audience=AUDIENCE
    )
    server = ServerProcess(
        database_url,
        config=config,
        extra_args=("--example-schema",),
        env={"OVERSYNC_JWT_SECRET": ""},
    ).start(tmp_path)
    try:
        assert connect(server, signer.token(kid=None, sub="dora")).status_code == 200
        other = Key("ES256", "ec")
        assert "'ES256' is not accepted (RS256)" in refused(connect(server, other.token(sub="d")))
    finally:
        server.stop()
    unreadable = config_file(tmp_path, jwt_public_key_file=str(tmp_path / "missing.pem"))
    broken = ServerProcess(database_url, config=unreadable, env={"OVERSYNC_JWT_SECRET": ""})
    with pytest.raises(RuntimeError, match=r"jwt_public_key_file .*missing\.pem"):
        broken.start(tmp_path)


async def test_jwks_refetches_are_rate_limited_and_shared(key_server: KeyServer) -> None:
    key = Key("ES256", "ec-1")
    key_server.keys = [key.jwk]
    keys = JWKSKeys(key_server.url(), refetch_seconds=60)
    found = await asyncio.gather(*(keys.key_for("ec-1", "ES256") for _ in range(20)))
    assert all(item is found[0] for item in found) and key_server.hits == 1  # one fetch
    for _ in range(10):  # made-up kids do not hammer the issuer
        with pytest.raises(ValueError, match="no ES256 signing key with kid"):
            await keys.key_for(uuid.uuid4().hex, "ES256")
    assert key_server.hits == 1
    with pytest.raises(ValueError, match="no RS256 signing key"):
        await keys.key_for("ec-1", "RS256")  # a key is never used for another algorithm


async def test_a_slow_jwks_endpoint_is_a_bounded_503(key_server: KeyServer) -> None:
    keys = JWKSKeys(key_server.url("/slow"), timeout_seconds=0.5)
    with pytest.raises(SyncError) as refusal:
        await keys.key_for("any", "RS256")
    assert refusal.value.code == "service_unavailable"
    assert "no answer within 0.5s" in refusal.value.message


def _token_command(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oversync_server.cli", "token", "--user", "erin", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_the_token_command_issues_what_the_server_accepts(
    database_url: str, tmp_path: Path
) -> None:
    settings = {
        "OVERSYNC_JWT_ISSUER": "https://id.example/",
        "OVERSYNC_JWT_AUDIENCE": "notes",
        "OVERSYNC_JWT_USER_CLAIM": "user_id",
    }
    server = ServerProcess(database_url, env=settings).start(tmp_path)
    try:
        issued = _token_command(env={**settings, "OVERSYNC_JWT_SECRET": JWT_SECRET})
        assert issued.returncode == 0 and issued.stderr == ""
        assert connect(server, issued.stdout.strip()).status_code == 200
        # a token without the server's secret: a clear warning, and the server refuses it
        unsigned = _token_command(env={**settings, "OVERSYNC_JWT_SECRET": ""})
        assert unsigned.returncode == 0
        assert "OVERSYNC_JWT_SECRET is not set" in unsigned.stderr
        assert "development secret" in unsigned.stderr
        assert refused(connect(server, unsigned.stdout.strip())) == "Invalid token: bad signature"
    finally:
        server.stop()
    provider_only = _token_command(
        env={"OVERSYNC_JWT_ALGORITHMS": "RS256", "OVERSYNC_JWT_SECRET": JWT_SECRET}
    )
    assert provider_only.returncode == 2 and provider_only.stdout == ""
    assert "get a token from your identity provider" in provider_only.stderr
