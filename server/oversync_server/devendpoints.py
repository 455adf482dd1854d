"""Development and test endpoints of the reference example server (protocol.md §15.3, §15.4).

    POST /dummy-signin            {"user": "u", "password": "..."} -> a 5-minute JWT for `u`
    POST /test/reset              empty the registered tables, drop and re-bootstrap `sync`
    POST /test/retention-floor    {"user_id": "u", "retained_bundle_floor": N}: raise the floor
    GET  /test/watch-subscribers  ?user_id=u: this process's SSE subscribers of `u`

None of them authenticates: they exist for local development and tests only, so the app mounts
`router(runtime, authenticator)` only when `runtime.dev_endpoints` is true (`serve --dev`), never
by default. Every error is an ErrorResponse body.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from oversync_server import watch
from oversync_server.auth import TOKEN_ISSUER, Authenticator, JWTAuthenticator, sign_token
from oversync_server.engine import schema
from oversync_server.engine.errors import SyncError
from oversync_server.errors import error_json, error_response
from oversync_server.runtime import SyncRuntime

__all__ = ["DUMMY_TOKEN_LIFETIME_SECONDS", "router"]

log = logging.getLogger("oversync_server")

DUMMY_TOKEN_LIFETIME_SECONDS = 300

_LATEST_FOR_UPDATE = """
SELECT next_bundle_seq - 1 AS latest FROM sync.user_state WHERE user_id = $1 FOR UPDATE
"""
_SET_FLOOR = "UPDATE sync.user_state SET retained_bundle_floor = $2 WHERE user_id = $1"


async def _json_object(request: Request) -> dict[str, Any]:
    """The request body as a JSON object, or 400 `invalid_request` "invalid JSON"."""
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        raise SyncError("invalid_request", "invalid JSON")
    return body


def _problem(error: SyncError) -> JSONResponse:
    return error_json(error)


async def reset(runtime: SyncRuntime) -> None:
    """Empty every registered table and the `sync` schema, then bootstrap again.

    The reference drops and recreates its example business schema; emptying the registered
    tables has the same visible effect for any configuration.
    """
    tables = [table.qualified_name for table in runtime.config.registered_tables]
    async with runtime.pool.acquire() as conn, conn.transaction():
        await conn.execute("DROP SCHEMA IF EXISTS sync CASCADE")
        existing = await conn.fetchval(
            "SELECT array_agg(t) FROM unnest($1::text[]) AS t WHERE to_regclass(t) IS NOT NULL",
            tables,
        )
        if existing:
            # Names come from the validated configuration ([a-z0-9_] only), so quoting is safe.
            names = ", ".join(".".join(f'"{part}"' for part in t.split(".")) for t in existing)
            await conn.execute(f"TRUNCATE {names} CASCADE")
    await schema.bootstrap_runtime(runtime)


async def set_retention_floor(runtime: SyncRuntime, user_id: str, floor: int) -> None:
    """Move the user's retained floor (no rows are deleted), as the reference example does."""
    async with runtime.pool.acquire() as conn, conn.transaction():
        latest = await conn.fetchval(_LATEST_FOR_UPDATE, user_id)
        if latest is None:
            raise SyncError("user_state_not_found", "no sync user_state row exists for user_id")
        if floor > latest:  # the storage CHECK would refuse it; say why instead of a 500
            raise SyncError(
                "invalid_request",
                f"retained_bundle_floor {floor} exceeds the latest bundle_seq {latest}"
                f" of user {user_id}",
            )
        await conn.execute(_SET_FLOOR, user_id, floor)


def router(runtime: SyncRuntime, authenticator: Authenticator) -> APIRouter:
    """The dev/test routes; mount only when `runtime.dev_endpoints` is true."""
    routes = APIRouter(tags=["development"], include_in_schema=False)

    @routes.post("/dummy-signin")
    async def dummy_signin(request: Request) -> JSONResponse:
        try:
            body = await _json_object(request)
            user = body.get("user")
            if not isinstance(user, str) or not user.strip():
                raise SyncError("invalid_request", "user required")
        except SyncError as error:
            return _problem(error)
        if not isinstance(authenticator, JWTAuthenticator) or not authenticator.secret:
            return error_response(
                "token_error", "dummy sign-in needs the built-in JWT authenticator with a secret"
            )
        token = sign_token(
            authenticator.secret,
            user,
            lifetime_seconds=DUMMY_TOKEN_LIFETIME_SECONDS,
            issuer=authenticator.issuer or TOKEN_ISSUER,
            audience=authenticator.audience[0] if authenticator.audience else None,
            user_claim=authenticator.user_claim,
        )
        return JSONResponse(
            {"token": token, "expires_in": DUMMY_TOKEN_LIFETIME_SECONDS, "user": user}
        )

    @routes.post("/test/reset")
    async def test_reset() -> JSONResponse:
        try:
            await reset(runtime)
        except Exception as error:
            log.exception("test reset failed")
            return error_response("reset_failed", str(error))
        schemas = sorted({table.schema for table in runtime.config.registered_tables})
        return JSONResponse({"schema": ",".join(schemas), "status": "ok"})

    @routes.post("/test/retention-floor")
    async def test_retention_floor(request: Request) -> JSONResponse:
        try:
            body = await _json_object(request)
            user_id, floor = body.get("user_id", ""), body.get("retained_bundle_floor", 0)
            if not isinstance(user_id, str) or not isinstance(floor, int) or floor is True:
                raise SyncError("invalid_request", "invalid JSON")
            if not user_id.strip():
                raise SyncError("invalid_request", "user_id required")
            if floor < 0:
                raise SyncError("invalid_request", "retained_bundle_floor must be non-negative")
            await set_retention_floor(runtime, user_id, floor)
        except SyncError as error:
            return _problem(error)
        except Exception as error:
            log.exception("retention floor update failed")
            return error_response("retention_floor_update_failed", str(error))
        return JSONResponse({"retained_bundle_floor": floor, "status": "ok", "user_id": user_id})

    @routes.get("/test/watch-subscribers")
    async def test_watch_subscribers(user_id: str = "") -> JSONResponse:
        if not user_id.strip():
            return error_response("invalid_request", "user_id required")
        try:
            count = watch.bundle_watch(runtime).subscriber_count(user_id)
        except Exception as error:
            log.exception("watch subscriber count failed")
            return error_response("watch_subscribers_failed", str(error))
        return JSONResponse(
            {"process_local_only": True, "subscriber_count": count, "user_id": user_id}
        )

    return routes
