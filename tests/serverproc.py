"""A real `oversync-server serve` process for end-to-end tests, on a free port."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from oversync_client import AuthenticatedClient
from oversync_server.auth import sign_token
from oversync_server.localpg import free_port

JWT_SECRET = "oversync-test-secret"
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class ServerProcess:
    database_url: str
    config: Path | None = None
    extra_args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    # `serve --workers`: one process unless a test is about workers (its pid is the server's)
    workers: int = 1
    # seconds to wait for the first answer (a loaded machine once took over 30 s)
    ready_timeout: float = 120.0
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, log_dir: Path) -> ServerProcess:
        self.port = self.port or free_port()
        self.log_path = log_dir / f"server-{self.port}.log"
        command = [
            sys.executable,
            "-m",
            "oversync_server.cli",
            "serve",
            "--database-url",
            self.database_url,
            "--port",
            str(self.port),
            "--log-level",
            "warning",
            *(["--config", str(self.config)] if self.config else ["--example-schema"]),
            "--workers",
            str(self.workers),
            *self.extra_args,
        ]
        environment = {**os.environ, "OVERSYNC_JWT_SECRET": JWT_SECRET, **self.env}
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=environment, cwd=REPO_ROOT
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        timeout = self.ready_timeout
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                # any answer: uvicorn answers once the app's startup finished (an unsigned
                # capabilities request is refused at once; /openapi.json took seconds to build)
                httpx.get(f"{self.base_url}/sync/capabilities", timeout=5.0)
                return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready in {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def token(self, user_id: str) -> str:
        return sign_token(JWT_SECRET, user_id)

    def client(self, user_id: str) -> AuthenticatedClient:
        """The generated typed client, authenticated as `user_id`."""
        return AuthenticatedClient(
            base_url=self.base_url, token=self.token(user_id), timeout=httpx.Timeout(30.0)
        )
