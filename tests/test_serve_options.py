"""`oversync-server serve` settings (issue 9 item 10, issue 13 item 2): every `ServiceConfig`
field from the config file, an `OVERSYNC_<SETTING>` variable over it and a flag over that, each
bad value named by where it came from, listed in `serve --help`, and no real database served
with the built-in development secret."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from oversync_server.cli import DEV_SECRET
from oversync_server.config import (
    ConfigError,
    ServiceConfig,
    default_text,
    env_name,
    load_settings,
    settings,
)
from protocol_helpers import config_file
from serverproc import REPO_ROOT, ServerProcess


def _serve(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "oversync_server.cli", "serve", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=60,
    )


def _without_secret() -> dict[str, str]:
    environment = dict(os.environ)
    environment.pop("OVERSYNC_JWT_SECRET", None)
    return environment


def test_every_setting_but_the_tables_has_a_typed_environment_variable() -> None:
    environ = {
        "OVERSYNC_MAX_ROWS_PER_PUSH_CHUNK": "7",
        "OVERSYNC_SHUTDOWN_GRACE_SECONDS": "2.5",
        "OVERSYNC_BUNDLE_CHANGE_WATCH": "off",
        "OVERSYNC_APP_NAME": "mine",
        "OVERSYNC_CORS_ALLOWED_ORIGINS": "https://a.example, https://b.example",
        "OVERSYNC_LOG_LEVEL": "WARNING",
        "OVERSYNC_POOL_MAX_SIZE": "",  # empty: not set
        "OVERSYNC_REGISTERED_TABLES": "ignored",  # a file-only setting
        "DATABASE_URL": "postgresql://db.example/app",
    }
    changed = load_settings(environ=environ)
    assert changed.max_rows_per_push_chunk == 7
    assert changed.shutdown_grace_seconds == 2.5
    assert changed.bundle_change_watch is False
    assert changed.app_name == "mine"
    assert changed.cors_allowed_origins == ("https://a.example", "https://b.example")
    assert changed.log_level == "warning"
    assert changed.pool_max_size == ServiceConfig().pool_max_size
    assert changed.registered_tables == ()
    assert changed.database_url == "postgresql://db.example/app"
    ours = {**environ, "OVERSYNC_DATABASE_URL": "postgresql://ours/app"}
    assert load_settings(environ=ours).database_url == "postgresql://ours/app"
    assert "OVERSYNC_MAX_REQUEST_BODY_BYTES" in {env_name(name) for name in settings()}


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"OVERSYNC_MAX_REQUEST_BODY_BYTES": "64MB"}, "OVERSYNC_MAX_REQUEST_BODY_BYTES: Input"),
        ({"OVERSYNC_BUNDLE_CHANGE_WATCH": "maybe"}, "OVERSYNC_BUNDLE_CHANGE_WATCH: Input should"),
        ({"OVERSYNC_POOL_MIN_SIZE": "-1"}, "pool_min_size must be >= 0, got -1 (from OVERSYNC_"),
        ({"OVERSYNC_LOG_LEVEL": "loud"}, "OVERSYNC_LOG_LEVEL: Input should be 'critical'"),
        (
            {"OVERSYNC_SNAPSHOT_STORAGE": "rows"},
            "OVERSYNC_SNAPSHOT_STORAGE: Input should be 'pages' or 'reference'",
        ),
        ({"OVERSYNC_ROOT_PATH": "api/"}, "OVERSYNC_ROOT_PATH: must be empty or a path"),
        ({"OVERSYNC_PORT": "70000"}, "OVERSYNC_PORT: must be a TCP port"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL: must be a postgresql:// URL"),
    ],
)
def test_a_bad_environment_value_names_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_settings(environ=environ)
    assert message in str(raised.value)


def test_flags_override_the_environment_which_overrides_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps({"registered_tables": ["app.t"], "port": 1, "host": "file", "app_name": "f"})
    )
    environ = {"OVERSYNC_PORT": "2", "OVERSYNC_HOST": "env"}
    config = load_settings(path, environ=environ, overrides={"port": 3, "host": None})
    assert (config.port, config.host, config.app_name) == (3, "env", "f")
    assert [table.qualified_name for table in config.registered_tables] == ["app.t"]
    path.write_text(json.dumps({"registered_tables": ["app.t"], "pool_size": 3, "port": "x"}))
    with pytest.raises(ConfigError) as raised:
        load_settings(path, environ={})
    assert f"{path}: pool_size: unknown setting" in str(raised.value)
    assert f"{path}: port: Input should be a valid integer" in str(raised.value)
    with pytest.raises(ConfigError, match="--port: Input should be a valid integer"):
        load_settings(overrides={"port": "x"}, override_names={"port": "--port"})


def test_serve_help_lists_every_setting_with_its_default_and_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oversync_server.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    for name in settings():
        line = next((line for line in lines if line.split()[:1] == [name]), None)
        assert line is not None, name
        assert line.split()[1:] == [default_text(name), env_name(name)], line
    assert "  pool_max_size  " in result.stdout and " 10 " in result.stdout


def test_environment_settings_reach_the_running_server(database_url: str, tmp_path: Path) -> None:
    server = ServerProcess(
        database_url,
        config=config_file(tmp_path),
        extra_args=("--example-schema",),
        env={"OVERSYNC_MAX_ROWS_PER_PUSH_CHUNK": "7"},
    ).start(tmp_path)
    try:
        response = httpx.get(
            f"{server.base_url}/sync/capabilities",
            headers={"Authorization": f"Bearer {server.token('a')}", "Oversync-Source-ID": "d"},
        )
        assert response.json()["bundle_limits"]["max_rows_per_push_chunk"] == 7
    finally:
        server.stop()


def test_a_bad_environment_setting_stops_serve_with_its_name(database_url: str) -> None:
    environment = {
        **os.environ,
        "OVERSYNC_JWT_SECRET": "s",
        "OVERSYNC_KEEP_ALIVE_TIMEOUT_SECONDS": "x",
    }
    result = _serve("--database-url", database_url, env=environment)
    assert result.returncode == 2
    assert "OVERSYNC_KEEP_ALIVE_TIMEOUT_SECONDS: Input should be a valid number" in result.stderr
    assert "got 'x'" in result.stderr


def test_a_real_database_is_never_served_with_the_development_secret(database_url: str) -> None:
    result = _serve("--database-url", database_url, env=_without_secret())
    assert result.returncode == 2
    assert "OVERSYNC_JWT_SECRET is not set" in result.stderr
    assert "--dev" in result.stderr
    with_url = {**_without_secret(), "DATABASE_URL": database_url}
    assert _serve(env=with_url).returncode == 2


def test_dev_allows_the_development_secret(database_url: str, tmp_path: Path) -> None:
    server = ServerProcess(database_url, extra_args=("--example-schema", "--dev"))
    server.env = {"OVERSYNC_JWT_SECRET": ""}  # unset: the development secret signs
    server.start(tmp_path)
    try:
        from oversync_server.auth import sign_token

        headers = {"Authorization": f"Bearer {sign_token(DEV_SECRET, 'a')}"}
        response = httpx.get(
            f"{server.base_url}/sync/capabilities", headers={**headers, "Oversync-Source-ID": "d"}
        )
        assert response.status_code == 200
    finally:
        server.stop()


def test_cors_allowed_origins_and_root_path_reach_the_running_server(
    database_url: str, tmp_path: Path
) -> None:
    server = ServerProcess(
        database_url,
        extra_args=("--example-schema", "--root-path", "/oversync"),
        env={"OVERSYNC_CORS_ALLOWED_ORIGINS": "https://app.example, https://admin.example"},
    ).start(tmp_path)
    try:
        listed = httpx.get(
            f"{server.base_url}/syncx/health", headers={"Origin": "https://app.example"}
        )
        assert listed.headers["access-control-allow-origin"] == "https://app.example"
        assert listed.headers["vary"] == "Origin"
        other = httpx.get(
            f"{server.base_url}/syncx/health", headers={"Origin": "https://evil.example"}
        )
        assert "access-control-allow-origin" not in other.headers
        preflight = httpx.options(
            f"{server.base_url}/sync/pull", headers={"Origin": "https://admin.example"}
        )
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://admin.example"
        assert "Oversync-Source-ID" in preflight.headers["access-control-allow-headers"]
        document = httpx.get(f"{server.base_url}/openapi.json").json()
        assert {"url": "/oversync"} in document.get("servers", []), document.get("servers")
    finally:
        server.stop()


def test_cors_defaults_to_any_origin(server: ServerProcess) -> None:
    response = httpx.get(f"{server.base_url}/syncx/health", headers={"Origin": "https://x"})
    assert response.headers["access-control-allow-origin"] == "*"


def test_the_config_file_can_be_named_by_oversync_config(tmp_path: Path) -> None:
    path = tmp_path / "from-env.yaml"
    path.write_text("registered_tables: [app.t]\nretained_bundles: 10\n")
    result = _serve(env={**os.environ, "OVERSYNC_CONFIG": str(path)})
    assert result.returncode == 2
    assert f"{path}: retained_bundles: unknown setting" in result.stderr
