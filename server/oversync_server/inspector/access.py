"""The inspector's own admin credential: `inspector_token`, never a sync user's JWT.

A browser signs in once with the token (a form POST); the answer sets an HttpOnly,
SameSite=Strict session cookie scoped to the inspector's path: `<expires>.<mac>`, where `mac` is
an HMAC-SHA256 of the expiry keyed with the token. It needs no server-side state (any worker
accepts it) and changing the token signs every browser out. Scripts may send the token itself as
`Authorization: Bearer <inspector_token>`. Every comparison is constant-time.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from starlette.requests import Request

__all__ = ["COOKIE", "SESSION_SECONDS", "authorized", "new_session", "token_matches"]

COOKIE = "oversync_inspector"
SESSION_SECONDS = 8 * 3600


def token_matches(token: str, candidate: str) -> bool:
    return bool(token) and hmac.compare_digest(token.encode(), candidate.encode())


def _mac(token: str, expires: int) -> str:
    message = f"oversync-inspector-session:{expires}".encode()
    return hmac.new(token.encode(), message, hashlib.sha256).hexdigest()


def new_session(token: str, now: float | None = None) -> str:
    """A cookie value valid for `SESSION_SECONDS`."""
    expires = int((time.time() if now is None else now) + SESSION_SECONDS)
    return f"{expires}.{_mac(token, expires)}"


def _session_valid(token: str, value: str, now: float | None = None) -> bool:
    expires_text, _, mac = value.partition(".")
    if not expires_text.isdigit() or len(expires_text) > 12:
        return False
    expires = int(expires_text)
    fresh = expires > (time.time() if now is None else now)
    return hmac.compare_digest(_mac(token, expires), mac) and fresh


def authorized(request: Request, token: str) -> bool:
    """Whether the request carries the inspector credential (session cookie or bearer token)."""
    if not token:
        return False
    scheme, _, credential = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and credential:
        return token_matches(token, credential.strip())
    cookie = request.cookies.get(COOKIE)
    return cookie is not None and _session_valid(token, cookie)
