"""MkDocs hook: the configuration reference, generated from `ServiceConfig` at every build.

Names, types, defaults and environment variables come from the pydantic-settings model and its
own naming (`oversync_server.config.settings`, `env_name`, `default_text`), the grouping notes from the comments above the fields
in `config.py`; only the one-line descriptions below are written here. A setting without a
description, or a description of a setting that no longer exists, fails the build, so the page
cannot drift from the code.
"""

from __future__ import annotations

import io
import tokenize
from pathlib import Path
from typing import Any

MARKER = "<!-- settings-reference -->"
PAGE = "server/configuration.md"

DESCRIPTIONS: dict[str, str] = {
    "app_name": "The name in the capabilities and status documents.",
    "schema_version": "The business schema version advertised in the capabilities.",
    "max_rows_per_bundle": "Rows one bundle may hold: a push's planned rows, and what a commit"
    " or server write captures (cascades included); 0 = unlimited.",
    "max_bytes_per_bundle": "Advertised bundle byte limit (0 = none advertised).",
    "default_rows_per_push_chunk": "Advertised push chunk size.",
    "max_rows_per_push_chunk": "Rows one uploaded push chunk may hold (checked while the chunk"
    " is read).",
    "push_session_ttl_seconds": "Life of an unfinished push session (each accepted chunk"
    " renews it).",
    "default_rows_per_committed_bundle_chunk": "Default page size of the committed-rows fetch.",
    "max_rows_per_committed_bundle_chunk": "Largest page of the committed-rows fetch (larger"
    " requests are capped).",
    "default_rows_per_snapshot_chunk": "Default snapshot chunk size.",
    "max_rows_per_snapshot_chunk": "Largest snapshot chunk (larger requests are capped).",
    "snapshot_session_ttl_seconds": "Life of a snapshot session.",
    "max_rows_per_snapshot_session": "Rows one snapshot may hold (0 = unlimited).",
    "max_bytes_per_snapshot_session": "Bytes one snapshot may hold (0 = unlimited).",
    "snapshot_storage": "Where new snapshot sessions keep their rows: `pages` (fast) or"
    " `reference` (Go's `snapshot_session_rows`; set it while Go servers share the database).",
    "initialization_lease_ttl_seconds": "The seeding device's lease on an initializing scope.",
    "retained_bundles_per_user": "Bundle history kept per user; older bundles are pruned"
    " (0 = keep everything).",
    "retention_prune_batch_size": "Bundles pruned per commit at most.",
    "bundle_change_watch": "`GET /sync/watch` on or off.",
    "watch_heartbeat_seconds": "Interval of the watch stream's heartbeat comments (0 = none).",
    "max_request_body_bytes": "A push chunk's body (64 MiB); other requests take at most"
    " 64 KiB. Larger bodies answer 413 `request_too_large`.",
    "max_request_header_bytes": "The request line and headers (431 beyond; 0 = a 1 MiB cap).",
    "header_read_timeout_seconds": "Time for a whole request head to arrive (408; 0 = off).",
    "body_read_timeout_seconds": "Time for a whole request body to arrive (408; 0 = off).",
    "keep_alive_timeout_seconds": "An idle kept-alive connection is closed after this.",
    "shutdown_grace_seconds": "In-flight requests' time to finish after SIGTERM or SIGINT.",
    "workers": "Server worker processes behind one supervisor and socket (0 = one per core).",
    "http_parser": "HTTP/1.1 parser: httptools (C, the default) or h11 (pure Python).",
    "pool_min_size": "PostgreSQL connections kept open per server process.",
    "pool_max_size": "PostgreSQL connections per server process at most.",
    "pool_mode": "`session` (a direct connection or a session-mode pooler) or `transaction`"
    " (a PgBouncer in transaction pooling mode; see the deployment guide).",
    "watch_database_url": "A direct or session-mode PostgreSQL URL for the watch listener's"
    " LISTEN; required with `pool_mode: transaction` (empty = the main database URL).",
    "pool_acquire_timeout_seconds": "A request's wait for a pool connection (then 503).",
    "user_lock_timeout_seconds": "A writer's wait for its user's turn (then 503).",
    "lock_timeout_seconds": "PostgreSQL `lock_timeout` of pooled connections (0 = off).",
    "statement_timeout_seconds": "PostgreSQL `statement_timeout` (0 = off).",
    "idle_in_transaction_timeout_seconds": "PostgreSQL"
    " `idle_in_transaction_session_timeout` (0 = off).",
    "max_bytes_per_pull": "Bundle bytes of one pull page (a page always holds at least one"
    " bundle).",
    "janitor_interval_seconds": "How often expired push and snapshot sessions are deleted.",
    "janitor_batch_size": "Sessions deleted per janitor batch.",
    "max_snapshot_sessions_per_user": "Live snapshot sessions per user (429 beyond).",
    "max_watch_streams_per_user": "Open watch streams per user (429 beyond; 0 = unlimited).",
    "max_watch_streams_per_process": "Open watch streams per server process (429 beyond;"
    " 0 = unlimited).",
    "inspector_token": "Admin token of the read-only sync inspector at `/inspector`"
    " (off when unset; see [the inspector](inspector.md)).",
    "min_client_schema_version": "Lowest app schema version a client may declare and still sync.",
    "max_client_schema_version": "Highest app schema version served (0 = no upper bound).",
    "host": "The address `serve` listens on (`--host`); `0.0.0.0` for every interface.",
    "port": "The TCP port `serve` listens on (`--port`).",
    "log_level": "Log level of the server and uvicorn: critical, error, warning, info, debug,"
    " trace (`--log-level`).",
    "cors_allowed_origins": "Browser origins given CORS headers: `*` = any; a list (comma"
    " separated in the environment) echoes a listed `Origin`; empty = no CORS headers.",
    "proxy_headers": "Read the client address and scheme from `X-Forwarded-For` and"
    " `X-Forwarded-Proto` of trusted proxies.",
    "forwarded_allow_ips": "The proxies trusted for those headers: comma-separated addresses"
    " or networks, `*` = any (only when nothing else can reach the server).",
    "root_path": "The path prefix a reverse proxy serves the API under, e.g. `/oversync`"
    " (`--root-path`).",
    "dev_endpoints": "Development endpoints (`/dummy-signin`, `/test/*`) and the built-in JWT"
    " secret with a real database (`--dev`); never in production.",
    "database_url": "The PostgreSQL to serve (`--database-url`; `DATABASE_URL` is read too);"
    " empty = the local development PostgreSQL.",
    "pgdata": "Data directory of the local development PostgreSQL (empty = per-user default,"
    " `/var/lib/oversync/pgdata` as root).",
    "pgport": "Port of the local development PostgreSQL on 127.0.0.1 (0 = a free one at each"
    " start); `oversync-server db-url` prints its URL.",
    "jwt_algorithms": "Accepted JWT algorithms, comma-separated (e.g. `RS256,ES256`); empty ="
    " HS256/384/512 with `OVERSYNC_JWT_SECRET` plus the RSA/EC/EdDSA ones with a public key or"
    " JWKS URL.",
    "jwt_public_key_file": "PEM file of the issuer's public key (or X.509 certificate) for"
    " RS/PS/ES/EdDSA tokens.",
    "jwt_jwks_url": "The issuer's JWKS URL (Auth0, Supabase, Keycloak, Firebase...): keys by"
    " `kid`, cached, refetched on an unknown `kid`.",
    "jwt_jwks_cache_seconds": "How long fetched JWKS keys are used before they are fetched again.",
    "jwt_jwks_refetch_seconds": "Least time between two JWKS fetches caused by unknown `kid`s"
    " (rate limit).",
    "jwt_jwks_timeout_seconds": "Longest time one JWKS fetch may take.",
    "jwt_issuer": "Required `iss` of every token (empty = not checked).",
    "jwt_audience": "Accepted `aud` values, comma-separated; a token must name one (empty = not"
    " checked).",
    "jwt_user_claim": "The claim that holds the user id (e.g. `sub`, `user_id`, `email`).",
    "jwt_leeway_seconds": "Clock skew allowed on `exp` and `nbf`.",
    "log_format": "`text` or `json`: the format of the server's log lines, one per request.",
    "metrics_enabled": "Serve Prometheus metrics at `GET /metrics`.",
}


def _config_source() -> str:
    import oversync_server.config as module

    return Path(str(module.__file__)).read_text(encoding="utf-8")


def field_comments(source: str) -> dict[str, str]:
    """The comment block right above each field of `ServiceConfig`, by the field's name."""
    comments: dict[str, str] = {}
    pending: list[str] = []
    inside = False
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    previous_line = -1
    for token in tokens:
        if token.type == tokenize.NAME and token.string == "class":
            name = next(tokens).string
            inside = name == "ServiceConfig"
            continue
        if not inside:
            continue
        if token.type == tokenize.COMMENT:
            if token.start[0] != previous_line + 1 and pending and token.start[1] == 4:
                pending = []
            pending.append(token.string.lstrip("#").strip().strip("-").strip())
            previous_line = token.start[0]
        elif token.type == tokenize.NAME and token.start[1] == 4:
            if token.string == "def":
                break
            if pending:
                comments[token.string] = " ".join(part for part in pending if part)
            pending = []
    return comments


def _kind(annotation: Any) -> str:
    """A setting's type for the table: `int`, `str`, `tuple[str, ...]`, a Literal's values."""
    origin = getattr(annotation, "__origin__", None)
    if origin is tuple:
        return f"list of {annotation.__args__[0].__name__}"
    if origin is not None and str(origin).endswith("Literal"):
        return " \\| ".join(str(value) for value in annotation.__args__)
    name = getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
    return name.replace("|", "\\|")


def render() -> str:
    """The table of every setting, then the comments that stand above fields in the code."""
    from oversync_server.config import default_text, env_name, settings

    fields = settings()
    names = set(fields)
    missing = sorted(names - set(DESCRIPTIONS))
    unknown = sorted(set(DESCRIPTIONS) - names)
    if missing or unknown:
        from mkdocs.exceptions import PluginError

        raise PluginError(
            "docs/hooks/settings_reference.py: describe every ServiceConfig setting"
            f" (missing: {', '.join(missing) or '-'}; no longer settings:"
            f" {', '.join(unknown) or '-'})"
        )
    comments = field_comments(_config_source())
    out = [
        "| setting | type | default | environment variable | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, info in fields.items():
        note = " See the [note](#notes-from-the-code)." if name in comments else ""
        out.append(
            f"| `{name}` | {_kind(info.annotation)} | `{default_text(name)}` |"
            f" `{env_name(name)}` | {DESCRIPTIONS[name]}{note} |"
        )
    out += [
        "",
        "## Notes from the code",
        "",
        "The comments above these settings in `server/oversync_server/config.py` (each one"
        " is about the setting it stands above, and often the ones after it):",
        "",
    ]
    for name, comment in comments.items():
        out += [f"`{name}`", f":   {comment}", ""]
    return "\n".join(out)


def on_page_markdown(markdown: str, page: Any, **_: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{PAGE} must contain {MARKER}")
    return markdown.replace(MARKER, render())
