"""deploy/nginx-oversync.conf for real: Debian's nginx with that file (its ports changed) in
front of two real server processes; push, pull and the /sync/watch event stream pass through,
both processes answer, and the client address nginx forwards is the one the server sees."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx

from oversync_server.localpg import free_port
from protocol_helpers import attach, insert_user, pull_to_stable, push_rows, watch_stream
from serverproc import REPO_ROOT, ServerProcess

NGINX_CONF = REPO_ROOT / "deploy" / "nginx-oversync.conf"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"  # .ci/system-packages.txt installs it


def _site(ports: list[int], listen: int) -> str:
    """The deploy file with its upstream servers and listen port replaced (each must match)."""
    text = NGINX_CONF.read_text(encoding="utf-8")
    upstreams = re.findall(r"^\s*server 127\.0\.0\.1:\d+;$", text, flags=re.M)
    assert len(upstreams) == 2, upstreams
    for line, port in zip(upstreams, ports, strict=True):
        text = text.replace(line, f"    server 127.0.0.1:{port};", 1)
    text, count = re.subn(r"^\s*listen 80;$", f"    listen 127.0.0.1:{listen};", text, flags=re.M)
    assert count == 1
    return text


def _start_nginx(directory: Path, site: str, port: int) -> subprocess.Popen[bytes]:
    (directory / "oversync.conf").write_text(site, encoding="utf-8")
    user = "user root;" if os.geteuid() == 0 else ""  # the test's temp dir is root's
    (directory / "nginx.conf").write_text(
        f"""{user}
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log {directory}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format upstream '$remote_addr "$request" $status $upstream_addr';
    access_log {directory}/access.log upstream;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {directory}/oversync.conf;
}}
""",
        encoding="utf-8",
    )
    command = [NGINX, "-p", str(directory), "-e", str(directory / "error.log")]
    test = subprocess.run(
        [*command, "-t", "-c", str(directory / "nginx.conf")], capture_output=True
    )
    assert test.returncode == 0, test.stderr.decode()
    process = subprocess.Popen([*command, "-c", str(directory / "nginx.conf")])
    deadline = time.monotonic() + 30
    while True:
        assert process.poll() is None, (directory / "error.log").read_text()
        try:
            httpx.get(f"http://127.0.0.1:{port}/syncx/health", timeout=1)
            return process
        except httpx.TransportError:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.1)


async def test_nginx_in_front_of_two_servers(database_url: str, tmp_path: Path) -> None:
    servers = [
        ServerProcess(database_url, extra_args=("--example-schema", "--log-level", "info"))
        for _ in range(2)
    ]
    directory = Path(tempfile.mkdtemp(prefix="oversync-nginx-"))
    nginx: subprocess.Popen[bytes] | None = None
    try:
        for server in servers:
            server.start(tmp_path)
        port = free_port()
        nginx = _start_nginx(directory, _site([s.port for s in servers], port), port)
        front = ServerProcess(database_url, port=port)  # not started: nginx's address

        with front.client("alice") as client:
            attach(client, "dev-a")
        async with watch_stream(front, "alice", "dev-a", after=0) as stream:
            with front.client("alice") as client:
                committed = await asyncio.to_thread(
                    push_rows, client, "dev-b", 1, [insert_user("Bo"), insert_user("Cy")]
                )
            event = await stream.next_event()
        assert event == {
            "bundle_seq": committed.bundle_seq,
            "source_id": "dev-b",
            "source_bundle_id": 1,
        }
        with front.client("alice") as client:
            _, bundles = pull_to_stable(client, "dev-a")
        assert [bundle.bundle_seq for bundle in bundles] == [committed.bundle_seq]
        assert len(bundles[0].rows) == 2

        for _ in range(4):  # round robin: both processes answer
            health = httpx.get(
                f"{front.base_url}/syncx/health", headers={"X-Forwarded-For": "203.0.113.7"}
            )
            assert health.status_code == 200
        access = (directory / "access.log").read_text()
        for server in servers:
            assert f"127.0.0.1:{server.port}" in access, access
        # nginx appends its peer (127.0.0.1, trusted by forwarded_allow_ips) to the header;
        # the server takes the address before it as the client's
        logs = "".join(server.log() for server in servers)
        assert "203.0.113.7" in logs, logs
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=30)
        for server in servers:
            server.stop()
        shutil.rmtree(directory, ignore_errors=True)
