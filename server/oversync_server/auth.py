"""Authentication: HS256 JWT bearer tokens by default, pluggable for host applications.

The user id is the trimmed `sub` claim. Like the reference's example server, any HMAC algorithm
(HS256/384/512) is accepted, `exp` and `nbf` are enforced when present, and nothing else of the
token is used. The subject must be a usable identifier (`engine.identifiers`: at most 255
characters, no NUL or other control characters), else 401 `authentication_failed`. `exp` is
kept on the principal, so a watch stream can end when its token does. A host application passes
its own `Authenticator` to map a bearer token to a user.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from oversync_server.engine.errors import authentication_failed
from oversync_server.engine.identifiers import identifier_problem

_HMAC_DIGESTS = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}
TOKEN_ISSUER = "oversync-py"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the authenticated user (the sync scope).

    `expires_at` is when the credential stops being valid (Unix seconds, e.g. the JWT `exp`),
    None when it does not expire; long-lived requests (watch streams) end then.
    """

    user_id: str
    expires_at: float | None = None


class Authenticator(Protocol):
    """Maps a bearer token to a principal, or raises `SyncError` (401) to refuse it."""

    async def authenticate(self, token: str) -> Principal: ...


class InvalidToken(ValueError):
    """The token is malformed, wrongly signed, expired or has no subject."""


def _b64url_decode(segment: str) -> bytes:
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def _b64url_encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def sign_token(secret: str, user_id: str, *, lifetime_seconds: int = 3600) -> str:
    """Issue an HS256 token for `user_id` (the dev `token` command and tests use it)."""
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {
        "iss": TOKEN_ISSUER,
        "sub": user_id.strip(),
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
    }
    signing_input = ".".join(
        _b64url_encode(json.dumps(part, separators=(",", ":")).encode())
        for part in (header, claims)
    )
    signature = hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64url_encode(signature)}"


def verify_token(secret: str, token: str, *, now: float | None = None) -> dict[str, Any]:
    """Return the claims of a valid HMAC-signed token; raise `InvalidToken` otherwise."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        claims = json.loads(_b64url_decode(claims_b64))
        signature = _b64url_decode(signature_b64)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidToken("malformed token") from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidToken("malformed token")
    digest = _HMAC_DIGESTS.get(str(header.get("alg")))
    if digest is None:
        raise InvalidToken("unsupported signing algorithm")
    expected = hmac.new(secret.encode(), f"{header_b64}.{claims_b64}".encode(), digest).digest()
    if not hmac.compare_digest(expected, signature):
        raise InvalidToken("bad signature")
    current = time.time() if now is None else now
    for claim, too_early in (("exp", False), ("nbf", True)):
        if claim in claims:
            value = claims[claim]
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidToken(f"{claim} must be a number")
            if isinstance(value, float) and not math.isfinite(value):
                raise InvalidToken(f"{claim} must be a finite number")
            if (current < value) if too_early else (current >= value):
                raise InvalidToken("token is not valid now")
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject.strip():
        raise InvalidToken("token has no subject")
    if problem := identifier_problem(subject.strip()):
        raise InvalidToken(f"token subject {problem}")
    return claims


def _expiry(claims: dict[str, Any]) -> float | None:
    """`exp` as a float; None when absent (an integer beyond float range is "never" too)."""
    expires = claims.get("exp")
    if isinstance(expires, int | float) and not isinstance(expires, bool) and expires < 1e300:
        return float(expires)
    return None


@dataclass(frozen=True, slots=True)
class JWTAuthenticator:
    """The default authenticator: HS256 JWTs signed with a shared secret; user id = `sub`."""

    secret: str

    async def authenticate(self, token: str) -> Principal:
        try:
            claims = verify_token(self.secret, token)
        except InvalidToken as error:
            raise authentication_failed(f"Invalid token: {error}") from error
        return Principal(user_id=str(claims["sub"]).strip(), expires_at=_expiry(claims))
