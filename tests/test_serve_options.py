"""`oversync-server serve` settings (issue 9, item 10 and the settings list): every
`ServiceConfig` field from an `OVERSYNC_<SETTING>` variable over the config file, listed in
`serve --help`, and no real database served with the built-in development secret."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import httpx
import pytest

from oversync_server.cli import DEV_SECRET, apply_env, env_name, env_overrides
from oversync_server.config import ConfigError, ServiceConfig
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
    config = ServiceConfig(registered_tables=())
    environ = {
        "OVERSYNC_MAX_ROWS_PER_PUSH_CHUNK": "7",
        "OVERSYNC_SHUTDOWN_GRACE_SECONDS": "2.5",
        "OVERSYNC_BUNDLE_CHANGE_WATCH": "off",
        "OVERSYNC_APP_NAME": "mine",
        "OVERSYNC_POOL_MAX_SIZE": "",  # empty: not set
        "OVERSYNC_REGISTERED_TABLES": "ignored",
    }
    changed = apply_env(config, environ)
    assert changed.max_rows_per_push_chunk == 7
    assert changed.shutdown_grace_seconds == 2.5
    assert changed.bundle_change_watch is False
    assert changed.app_name == "mine"
    assert changed.pool_max_size == config.pool_max_size
    names = {env_name(item.name) for item in fields(ServiceConfig)}
    assert "OVERSYNC_MAX_REQUEST_BODY_BYTES" in names
    with pytest.raises(ConfigError, match="OVERSYNC_MAX_REQUEST_BODY_BYTES: expected an integer"):
        env_overrides({"OVERSYNC_MAX_REQUEST_BODY_BYTES": "64MB"})
    with pytest.raises(ConfigError, match="OVERSYNC_BUNDLE_CHANGE_WATCH: expected true or false"):
        env_overrides({"OVERSYNC_BUNDLE_CHANGE_WATCH": "maybe"})
    with pytest.raises(ConfigError, match="OVERSYNC_POOL_MIN_SIZE"):
        apply_env(config, {"OVERSYNC_POOL_MIN_SIZE": "-1"})


def test_serve_help_lists_every_setting_with_its_default_and_variable() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "oversync_server.cli", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.splitlines()
    for item in fields(ServiceConfig):
        if item.name == "registered_tables":
            continue
        line = next((line for line in lines if line.split()[:1] == [item.name]), None)
        assert line is not None, item.name
        default = str(item.default).lower() if isinstance(item.default, bool) else item.default
        default = default if default != "" else '""'  # an empty text setting
        assert line.split()[1:] == [str(default), env_name(item.name)], line


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
    assert "OVERSYNC_KEEP_ALIVE_TIMEOUT_SECONDS: expected a number, got 'x'" in result.stderr


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
