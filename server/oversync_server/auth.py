"""Authentication: JWT bearer tokens (PyJWT), pluggable for host applications.

`JWTAuthenticator` verifies a token with the key its header's `alg` calls for, among the
accepted algorithms: HMAC (`HS256/384/512`) with the shared secret `OVERSYNC_JWT_SECRET`, RSA,
RSA-PSS, EC and EdDSA (`RS256`, `ES256`, ...) with a PEM public key or the keys of a JWKS URL
(`JWKSKeys`: cached, refetched when a token names an unknown `kid`, rate-limited, bounded in
time), so tokens of Auth0, Supabase, Keycloak or Firebase verify as issued. A secret is never
used for an asymmetric algorithm nor a public key for HMAC (no algorithm confusion).

`exp` and `nbf` are enforced when present (with `leeway` seconds of clock skew); the issuer and
the audience when configured. The user id is the trimmed `user_claim` claim (default `sub`) and
must be a usable identifier (`engine.identifiers`: at most 255 characters, no NUL or other
control characters). A refusal is a 401 `authentication_failed` saying why; a JWKS endpoint that
cannot be read while no key is known is a retryable 503. `exp` is kept on the principal, so a
watch stream ends when its token does. A host application passes its own `Authenticator` to map
a bearer token to a user (docs/server/auth.md).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from oversync_server.engine.errors import authentication_failed, service_unavailable
from oversync_server.engine.identifiers import identifier_problem

if TYPE_CHECKING:
    from oversync_server.config import ServiceConfig

log = logging.getLogger("oversync_server")

# A short shared secret is the deployment's choice (`serve` warns about it once), not a
# warning per request.
warnings.filterwarnings("ignore", category=jwt.InsecureKeyLengthWarning)

TOKEN_ISSUER = "oversync-py"
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
PUBLIC_KEY_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
# The JWK key type (and EC curve) each asymmetric algorithm needs.
_KEY_TYPE = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_CURVE = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
# Verified tokens are remembered (bounded) and verified again after this, or once expired.
VERIFIED_TOKENS_CACHED = 4096
VERIFIED_TOKEN_SECONDS = 60.0
MAX_CACHED_TOKEN_CHARS = 4096  # bigger tokens are verified every time (bounded memory)
# A JWKS document beyond this is refused (real ones are a few KiB).
MAX_JWKS_BYTES = 1024 * 1024


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
    """The token is malformed, wrongly signed, expired or has no usable subject."""


def sign_token(
    secret: str,
    user_id: str,
    *,
    lifetime_seconds: int = 3600,
    issuer: str = TOKEN_ISSUER,
    audience: str | None = None,
    user_claim: str = "sub",
) -> str:
    """Issue an HS256 token for `user_id` (the `token` command, dev sign-in and tests use it)."""
    now = int(time.time())
    claims: dict[str, Any] = {"iss": issuer, "sub": user_id.strip(), "iat": now, "nbf": now}
    claims["exp"] = now + lifetime_seconds
    claims[user_claim] = user_id.strip()
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256")


def split_list(value: str | Iterable[str]) -> tuple[str, ...]:
    """A comma-separated setting (or a list from a config file) as a tuple of trimmed items."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item.strip())


def load_public_key(path: Path) -> Any:
    """The public key of a PEM file: a public key or an X.509 certificate (Firebase style)."""
    data = path.read_bytes()
    if b"BEGIN CERTIFICATE" in data:
        return x509.load_pem_x509_certificate(data).public_key()
    return serialization.load_pem_public_key(data)


def _key_fits(jwk: jwt.PyJWK, algorithm: str) -> bool:
    """Whether a JWK may verify `algorithm`: its key type (and curve) match, and its own `alg`,
    when it names one, is that algorithm; keys meant for encryption never verify."""
    data: Mapping[str, Any] = jwk._jwk_data
    if data.get("use") not in (None, "sig"):
        return False
    if data.get("alg") and data["alg"] != algorithm:
        return False
    if jwk.key_type != _KEY_TYPE.get(algorithm[:2]):
        return False
    curve = _CURVE.get(algorithm)
    return curve is None or data.get("crv") == curve


class JWKSKeys:
    """The signing keys of an issuer's JWKS URL, cached for `cache_seconds`.

    A token naming a `kid` the cache does not hold triggers a refetch (key rotation), at most
    once per `refetch_seconds`, so tokens with made-up `kid`s cannot hammer the issuer. One
    fetch runs at a time (concurrent requests wait for it) and takes at most `timeout_seconds`
    in all; a failed fetch keeps the keys already known.
    """

    def __init__(
        self,
        url: str,
        *,
        cache_seconds: float = 300.0,
        refetch_seconds: float = 30.0,
        timeout_seconds: float = 5.0,
    ) -> None:
        self.url = url
        self.cache_seconds = cache_seconds
        self.refetch_seconds = refetch_seconds
        self.timeout_seconds = timeout_seconds
        self._keys: list[jwt.PyJWK] = []
        self._fetched_at: float | None = None  # monotonic time of the last good fetch
        self._attempted_at: float | None = None  # of the last attempt, good or not
        self._last_error = ""
        self._lock = asyncio.Lock()
        self.fetch_count = 0

    async def key_for(self, kid: str | None, algorithm: str) -> Any:
        """The key that verifies a token with this header; `InvalidToken` if the issuer has
        none, 503 `service_unavailable` when its keys could never be read."""
        now = time.monotonic()
        if self._fetched_at is None or now - self._fetched_at >= self.cache_seconds:
            await self._refresh(now)
        key = self._lookup(kid, algorithm)
        if key is None and self._fetched_at is not None:
            await self._refresh(time.monotonic())  # rotated keys: refetch (rate-limited)
            key = self._lookup(kid, algorithm)
        if key is not None:
            return key
        if self._fetched_at is None:
            raise service_unavailable(
                f"the token signing keys could not be read from {self.url}"
                f" ({self._last_error}); retry"
            )
        if kid is None:
            raise InvalidToken(f"token has no kid and the issuer has no single {algorithm} key")
        raise InvalidToken(f"no {algorithm} signing key with kid {kid!r} at the issuer")

    def _lookup(self, kid: str | None, algorithm: str) -> Any:
        fitting = [key for key in self._keys if _key_fits(key, algorithm)]
        if kid is not None:
            fitting = [key for key in fitting if key.key_id == kid]
        return fitting[0].key if len(fitting) == 1 or (kid is not None and fitting) else None

    async def _refresh(self, wanted_at: float) -> None:
        async with self._lock:
            attempted = self._attempted_at
            if attempted is not None and (
                attempted >= wanted_at or time.monotonic() - attempted < self.refetch_seconds
            ):
                return  # fetched meanwhile, or too recently to try again
            self._attempted_at = time.monotonic()
            try:
                async with asyncio.timeout(self.timeout_seconds):
                    keys = await self._fetch()
            except Exception as error:  # keep what is known; the caller decides
                self._last_error = (
                    f"no answer within {self.timeout_seconds:g}s"
                    if isinstance(error, TimeoutError)
                    else f"{type(error).__name__}: {error}"
                )
                log.warning("JWKS %s could not be read: %s", self.url, self._last_error)
                return
            self._keys, self._fetched_at = keys, time.monotonic()
            self.fetch_count += 1

    async def _fetch(self) -> list[jwt.PyJWK]:
        async with (
            httpx.AsyncClient(timeout=self.timeout_seconds, follow_redirects=True) as client,
            client.stream("GET", self.url, headers={"Accept": "application/json"}) as response,
        ):
            response.raise_for_status()
            body = bytearray()
            async for part in response.aiter_bytes():
                body += part
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"the key set exceeds {MAX_JWKS_BYTES} bytes")
        document = json.loads(bytes(body))
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise ValueError("not a JWKS document (no keys list)")
        keys = []
        for entry in entries:
            if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
                continue  # symmetric or unknown keys never verify tokens here
            try:
                keys.append(jwt.PyJWK(entry))
            except jwt.PyJWTError:
                continue  # an unusable key (unsupported curve...): skip it, keep the others
        return keys


def _expiry(claims: dict[str, Any]) -> float | None:
    """`exp` as a float; None when absent (an integer beyond float range is "never" too)."""
    expires = claims.get("exp")
    if isinstance(expires, int | float) and not isinstance(expires, bool) and expires < 1e300:
        return float(expires)
    return None


def _reason(error: jwt.PyJWTError, issuer: str | None, audience: tuple[str, ...]) -> str:
    if isinstance(error, jwt.InvalidSignatureError):
        return "bad signature"
    if isinstance(error, jwt.ExpiredSignatureError):
        return "token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "token is not valid yet"
    if isinstance(error, jwt.InvalidIssuerError):
        return f"token issuer is not {issuer!r}"
    if isinstance(error, jwt.InvalidAudienceError):
        return f"token audience is not {' or '.join(map(repr, audience))}"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"token has no {error.claim} claim"
    if isinstance(error, jwt.InvalidKeyError):
        return "the signing key does not fit the token's algorithm"
    if isinstance(error, jwt.DecodeError):  # PyJWT names a bad claim ("exp must be...")
        return str(error).rstrip(".") if "claim" in str(error) else "malformed token"
    return str(error) or type(error).__name__


@dataclass(frozen=True, slots=True)
class JWTAuthenticator:
    """The default authenticator: JWTs verified by PyJWT (see the module docstring).

    `JWTAuthenticator(secret)` accepts HS256/384/512 tokens signed with `secret`, user id =
    `sub`, as before; `public_key` (a key object, `load_public_key`) or `jwks` add the
    asymmetric algorithms.
    """

    secret: str | None = None
    algorithms: tuple[str, ...] = ()  # () = every algorithm the configured keys can verify
    public_key: Any = None
    jwks: JWKSKeys | None = None
    issuer: str | None = None
    audience: tuple[str, ...] = ()
    user_claim: str = "sub"
    leeway_seconds: float = 0.0
    _decoder: jwt.PyJWT = field(default_factory=jwt.PyJWT, repr=False, compare=False)
    # Tokens verified lately -> (principal, when to verify again): a client sends the same
    # token with every request, and PyJWT's checks cost far more than the lookup.
    _verified: dict[str, tuple[Principal, float]] = field(
        default_factory=dict, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        asymmetric = self.public_key is not None or self.jwks is not None
        if not self.algorithms:
            chosen = (HMAC_ALGORITHMS if self.secret else ()) + (
                PUBLIC_KEY_ALGORITHMS if asymmetric else ()
            )
            object.__setattr__(self, "algorithms", chosen)
        if not self.algorithms:
            raise ValueError("no verification key: set a JWT secret, public key or JWKS URL")
        for algorithm in self.algorithms:
            if algorithm in HMAC_ALGORITHMS:
                if not self.secret:
                    raise ValueError(f"{algorithm} needs the shared secret (OVERSYNC_JWT_SECRET)")
            elif algorithm in PUBLIC_KEY_ALGORITHMS:
                if not asymmetric:
                    raise ValueError(f"{algorithm} needs jwt_public_key_file or jwt_jwks_url")
            else:
                supported = ", ".join(HMAC_ALGORITHMS + PUBLIC_KEY_ALGORITHMS)
                raise ValueError(
                    f"unsupported JWT algorithm {algorithm!r} (supported: {supported})"
                )
        if not self.user_claim.strip():
            raise ValueError("the user id claim must not be empty")

    async def authenticate(self, token: str) -> Principal:
        now = time.time()
        cached = self._verified.get(token)
        if cached is not None and now < cached[1]:
            return cached[0]
        try:
            claims = await self.verify(token)
        except InvalidToken as error:
            raise authentication_failed(f"Invalid token: {error}") from error
        expires = _expiry(claims)
        principal = Principal(user_id=str(claims[self.user_claim]).strip(), expires_at=expires)
        recheck = now + VERIFIED_TOKEN_SECONDS
        if expires is not None:
            recheck = min(recheck, expires + self.leeway_seconds)
        if len(token) > MAX_CACHED_TOKEN_CHARS:
            return principal
        if len(self._verified) >= VERIFIED_TOKENS_CACHED:
            del self._verified[next(iter(self._verified))]  # the oldest entry
        self._verified[token] = (principal, recheck)
        return principal

    async def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid token; raises `InvalidToken` saying why it is not."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise InvalidToken("malformed token") from error
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            accepted = ", ".join(self.algorithms)
            raise InvalidToken(f"signing algorithm {algorithm!r} is not accepted ({accepted})")
        if algorithm in HMAC_ALGORITHMS:
            key: Any = self.secret
        elif self.jwks is not None and (self.public_key is None or header.get("kid")):
            kid = header.get("kid")
            key = await self.jwks.key_for(kid if isinstance(kid, str) else None, algorithm)
        else:
            key = self.public_key
        return self._decode(token, key, algorithm)

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        try:
            verified: dict[str, Any] = self._decoder.decode(
                token,
                key,
                algorithms=[algorithm],
                issuer=self.issuer,
                audience=list(self.audience) or None,
                leeway=self.leeway_seconds,
                # `iat` is informational (RFC 7519), as before; the user claim is checked below
                options={
                    "verify_aud": bool(self.audience),
                    "verify_iat": False,
                    "verify_sub": False,
                },
            )
        except jwt.PyJWTError as error:
            raise InvalidToken(_reason(error, self.issuer, self.audience)) from error
        except (ValueError, TypeError, OverflowError) as error:  # e.g. an infinite `exp`
            raise InvalidToken("malformed token") from error
        subject = verified.get(self.user_claim)
        if not isinstance(subject, str) or not subject.strip():
            what = "subject" if self.user_claim == "sub" else f"user id claim {self.user_claim!r}"
            raise InvalidToken(f"token has no {what}")
        if problem := identifier_problem(subject.strip()):
            raise InvalidToken(f"token subject {problem}")
        return verified


def verify_token(secret: str, token: str) -> dict[str, Any]:
    """The claims of a valid HMAC-signed token; raises `InvalidToken` (tests and tools)."""
    try:
        algorithm = str(jwt.get_unverified_header(token).get("alg"))
    except jwt.PyJWTError as error:
        raise InvalidToken("malformed token") from error
    if algorithm not in HMAC_ALGORITHMS:
        raise InvalidToken(f"signing algorithm {algorithm!r} is not accepted")
    return JWTAuthenticator(secret)._decode(token, secret, algorithm)


def authenticator_from_config(config: ServiceConfig, secret: str | None) -> JWTAuthenticator:
    """The authenticator `serve` uses: the `jwt_*` settings and the shared secret (if any).

    Raises `ValueError` saying which setting is unusable."""
    public_key = None
    if config.jwt_public_key_file:
        path = Path(config.jwt_public_key_file)
        try:
            public_key = load_public_key(path)
        except (OSError, ValueError) as error:
            raise ValueError(f"jwt_public_key_file {path}: {error}") from None
    jwks = None
    if config.jwt_jwks_url:
        jwks = JWKSKeys(
            config.jwt_jwks_url,
            cache_seconds=config.jwt_jwks_cache_seconds,
            refetch_seconds=config.jwt_jwks_refetch_seconds,
            timeout_seconds=config.jwt_jwks_timeout_seconds,
        )
    return JWTAuthenticator(
        secret=secret or None,
        algorithms=split_list(config.jwt_algorithms),
        public_key=public_key,
        jwks=jwks,
        issuer=config.jwt_issuer or None,
        audience=split_list(config.jwt_audience),
        user_claim=config.jwt_user_claim.strip() or "sub",
        leeway_seconds=config.jwt_leeway_seconds,
    )


def uses_public_keys(config: ServiceConfig) -> bool:
    """Whether the configuration verifies tokens without the shared secret."""
    return bool(config.jwt_public_key_file or config.jwt_jwks_url)
