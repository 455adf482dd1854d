"""The sync inspector: a read-only HTML view of the sync state for operators.

    GET  /inspector          users and scopes, sources, recent bundles with their rows, open
                             push and snapshot sessions, retention floors, this process's watch
                             subscribers and key figures; ?user=ID focuses on one user,
                             &bundle=SEQ pages through one bundle's rows (&rows_after=N),
                             ?users_after=PK is the next page of users
    GET  /inspector/login    the sign-in form; POST it the token to get a session cookie
    POST /inspector/logout   forget the session

Off unless `inspector_token` is set (the app mounts `router(runtime)` only then); it is the
inspector's own admin credential, separate from the sync users' JWTs (`access`). Pages are
rendered on the server from plain templates with every value escaped (`page`), with no script;
every statement is bounded (`data`). Nothing here writes to the database.
"""

from __future__ import annotations

import html
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from oversync_server.inspector import access
from oversync_server.inspector.data import Query, read_inspection
from oversync_server.inspector.page import inspector_page, login_page
from oversync_server.runtime import SyncRuntime

__all__ = ["BASE_PATH", "router"]

BASE_PATH = "/inspector"
MAX_USER_ID_CHARS = 512
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
    " form-action 'self'; frame-ancestors 'none'",
}


class _BadParameter(ValueError):
    pass


def _html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers=_HEADERS)


def _int_param(request: Request, name: str, minimum: int) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    if not text.isdigit() or len(text) > 19 or int(text) < minimum:
        raise _BadParameter(f"{name} must be an integer >= {minimum}")
    return int(text)


def _query(request: Request) -> Query:
    user = request.query_params.get("user") or None
    if user is not None and len(user) > MAX_USER_ID_CHARS:
        raise _BadParameter("user is too long")
    bundle = _int_param(request, "bundle", 1)
    if bundle is not None and user is None:
        raise _BadParameter("bundle needs user")
    return Query(
        user_id=user,
        users_after=_int_param(request, "users_after", 0) or 0,
        bundle_seq=bundle,
        rows_after=_int_param(request, "rows_after", 0) or 0,
    )


def router(runtime: SyncRuntime) -> APIRouter:
    """The inspector's routes; mount only when `runtime.config.inspector_token` is set."""
    routes = APIRouter(include_in_schema=False)
    app_name = runtime.config.app_name

    def base(request: Request) -> str:
        return str(request.scope.get("root_path", "")) + BASE_PATH

    def token() -> str:
        return runtime.config.inspector_token or ""

    @routes.get(BASE_PATH)
    async def inspector(request: Request) -> Response:
        if not access.authorized(request, token()):
            return _html(login_page(base(request), app_name), 401)
        try:
            query = _query(request)
        except _BadParameter as error:
            return _html(f"<p>Bad parameter: {html.escape(str(error))}</p>", 400)
        inspection = await read_inspection(runtime, query)
        return _html(inspector_page(base(request), app_name, inspection, query))

    @routes.get(BASE_PATH + "/login")
    async def login_form(request: Request) -> Response:
        return _html(login_page(base(request), app_name))

    @routes.post(BASE_PATH + "/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        candidate = (form.get("token") or [""])[0]
        if not access.token_matches(token(), candidate):
            return _html(login_page(base(request), app_name, failed=True), 401)
        answer = RedirectResponse(base(request), status_code=303, headers=_HEADERS)
        answer.set_cookie(
            access.COOKIE,
            access.new_session(token()),
            max_age=access.SESSION_SECONDS,
            path=base(request),
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
        return answer

    @routes.post(BASE_PATH + "/logout")
    async def logout(request: Request) -> Response:
        answer = RedirectResponse(base(request) + "/login", status_code=303, headers=_HEADERS)
        answer.delete_cookie(access.COOKIE, path=base(request), httponly=True, samesite="strict")
        return answer

    return routes
