"""Bearer tokens for the fresh users of a run: signed with a shared secret, or from a command.

The example servers (this one and the Go reference) accept HS256 JWTs whose ``sub`` is the user
id. Servers with other auth are driven with ``--token-cmd``: a command that prints a token for
the user id it is given.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
import subprocess
import time
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["CommandTokens", "SecretTokens", "TokenError", "TokenProvider", "sign_hs256"]


class TokenError(RuntimeError):
    """A token could not be obtained (the token command failed, or the kind needs a secret)."""


class TokenProvider(Protocol):
    """Gives a bearer token for a user id, and optionally special (invalid) tokens."""

    @property
    def can_sign(self) -> bool:
        """Whether :meth:`special` works (it needs the signing secret)."""
        ...

    def token(self, user_id: str) -> str: ...

    def special(self, kind: str, user_id: str) -> str:
        """A token of ``kind`` (``expired``, ``bad-signature``, ``no-subject``) for ``user_id``."""
        ...


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign_hs256(secret: str, claims: dict[str, object]) -> str:
    """An HS256 JWT over ``claims`` (compact JSON), signed with the raw bytes of ``secret``."""
    header = _b64url(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64url(signature)}"


@dataclass(frozen=True, slots=True)
class SecretTokens:
    """HS256 tokens signed with the server's JWT secret; ``sub`` is the user id."""

    secret: str
    lifetime_seconds: int = 3600
    issuer: str = "oversync-conformance"

    @property
    def can_sign(self) -> bool:
        return True

    def _claims(self, user_id: str, *, now: int, lifetime: int) -> dict[str, object]:
        return {"iss": self.issuer, "sub": user_id, "iat": now, "nbf": now, "exp": now + lifetime}

    def token(self, user_id: str) -> str:
        now = int(time.time())
        return sign_hs256(
            self.secret, self._claims(user_id, now=now, lifetime=self.lifetime_seconds)
        )

    def special(self, kind: str, user_id: str) -> str:
        now = int(time.time())
        if kind == "expired":
            return sign_hs256(self.secret, self._claims(user_id, now=now - 7200, lifetime=3600))
        if kind == "bad-signature":
            return sign_hs256(self.secret + "-wrong", self._claims(user_id, now=now, lifetime=3600))
        if kind == "no-subject":
            return sign_hs256(self.secret, self._claims("", now=now, lifetime=3600))
        raise TokenError(f"unknown special token {kind!r}")


@dataclass(slots=True)
class CommandTokens:
    """Runs ``command`` to get a token: ``{user}`` in it is replaced by the user id, otherwise
    the user id is appended as the last argument. The token is the trimmed standard output."""

    command: str
    timeout: float = 30.0
    _cache: dict[str, str] = field(default_factory=dict)

    @property
    def can_sign(self) -> bool:
        return False

    def token(self, user_id: str) -> str:
        if user_id not in self._cache:
            self._cache[user_id] = self._run(user_id)
        return self._cache[user_id]

    def special(self, kind: str, user_id: str) -> str:
        raise TokenError(f"a {kind} token needs --jwt-secret")

    def _run(self, user_id: str) -> str:
        if "{user}" in self.command:
            argv = shlex.split(self.command.replace("{user}", shlex.quote(user_id)))
        else:
            argv = [*shlex.split(self.command), user_id]
        try:
            done = subprocess.run(
                argv, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise TokenError(f"token command failed: {error}") from error
        if done.returncode != 0:
            raise TokenError(
                f"token command exited with {done.returncode}: {done.stderr.strip()[:500]}"
            )
        token = done.stdout.strip()
        if not token:
            raise TokenError("token command printed no token")
        return token
