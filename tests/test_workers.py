"""`serve --workers N` (issue 10, item 1), end to end on a real supervisor and its workers: pushes
and pulls from several clients, watch streams woken by a push another worker served, a killed
worker restarted, a graceful SIGTERM, and a refused start that stays one error line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from oversync_client.models import PullResponse
from protocol_helpers import (
    attach,
    config_file,
    insert_user,
    parsed,
    pull_page,
    push_rows,
    watch_stream,
)
from push_support import user_insert
from serverproc import ServerProcess

WORKERS = 2


# ------------------------------------------------------------------------------------ /proc


def _workers(server: ServerProcess) -> list[int]:
    """The supervisor's child processes (its workers)."""
    assert server.process is not None
    pid = server.process.pid
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    return [int(child) for child in text.split()]


def _wait_for_workers(server: ServerProcess, count: int, timeout: float = 30.0) -> list[int]:
    """The worker pids once `count` of them are serving (each logs it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = _workers(server)
        log = server.log_path.read_text(errors="replace") if server.log_path else ""
        if len(pids) == count and all(f"(pid {pid}) is serving" in log for pid in pids):
            return pids
        time.sleep(0.1)
    raise AssertionError(f"expected {count} workers, found {_workers(server)}\n{server.log()}")


def _socket_inodes(server_port: int, client_port: int) -> set[str]:
    """Inodes of the server side of the TCP connection from `client_port` (/proc/net/tcp*)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, remote, inode = fields[1], fields[2], fields[9]
                if (
                    int(local.rsplit(":", 1)[1], 16) == server_port
                    and int(remote.rsplit(":", 1)[1], 16) == client_port
                ):
                    inodes.add(inode)
    return inodes


def serving_worker(server: ServerProcess, client_port: int) -> int:
    """The pid of the worker that holds the connection from `client_port`."""
    targets = {f"socket:[{inode}]" for inode in _socket_inodes(server.port, client_port)}
    for pid in _workers(server):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                if os.readlink(f"/proc/{pid}/fd/{fd}") in targets:
                    return pid
    raise AssertionError(f"no worker holds the connection from port {client_port}")


def _client_port(response: httpx.Response) -> int:
    return int(response.extensions["network_stream"].get_extra_info("client_addr")[1])


# ------------------------------------------------------------------------------------ fixtures


def _start(database_url: str, directory: Path, **overrides: object) -> ServerProcess:
    return ServerProcess(
        database_url,
        config=config_file(directory, **overrides),
        extra_args=("--example-schema",),
        workers=WORKERS,
    ).start(directory)


def _stop_with_sigterm(server: ServerProcess) -> None:
    assert server.process is not None
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=60)
    assert server.process.returncode == 0, server.log()


# ------------------------------------------------------------------------------------ tests


def test_workers_serve_pushes_and_pulls_of_several_clients(
    database_url: str, tmp_path: Path
) -> None:
    server = _start(database_url, tmp_path)
    users = [f"user{index}" for index in range(6)]
    bundles = 4
    failures: list[BaseException] = []

    def sync(user: str) -> None:
        try:
            with server.client(user) as client:
                attach(client, "dev")
                for number in range(1, bundles + 1):
                    push_rows(client, "dev", number, [insert_user(f"{user}-{number}")])
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    try:
        assert len(_wait_for_workers(server, WORKERS)) == WORKERS
        threads = [threading.Thread(target=sync, args=(user,)) for user in users]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert not failures, failures
        for user in users:
            with server.client(user) as client:
                page = parsed(pull_page(client, "other"), PullResponse)
                assert [bundle.bundle_seq for bundle in page.bundles] == list(range(1, bundles + 1))
                names = {row.payload["name"] for b in page.bundles for row in b.rows}
                assert names == {f"{user}-{number}" for number in range(1, bundles + 1)}
        _stop_with_sigterm(server)
    finally:
        server.stop()
    log = server.log_path.read_text(errors="replace") if server.log_path else ""
    assert "ERROR" not in log and "Traceback" not in log, log[-3000:]
    # the supervisor's PROMETHEUS_MULTIPROC_DIR is removed when it exits
    metrics = re.search(r"multiprocess mode\) in (\S+)", log)
    assert metrics is not None, log[-3000:]
    assert not Path(metrics.group(1)).exists()


async def test_a_push_on_one_worker_wakes_watch_streams_on_every_worker(
    database_url: str, tmp_path: Path
) -> None:
    server = _start(database_url, tmp_path)
    try:
        workers = set(_wait_for_workers(server, WORKERS))
        with server.client("alice") as client:
            attach(client, "dev")
        async with contextlib.AsyncExitStack() as stack:
            # Open streams until every worker serves at least one (the kernel picks).
            streams, seen = [], set()
            while seen != workers:
                assert len(streams) < 40, f"streams only reached workers {seen} of {workers}"
                stream = await stack.enter_async_context(watch_stream(server, "alice", "w"))
                streams.append(stream)
                seen.add(serving_worker(server, _client_port(stream.response)))
            # One push over one connection: served by one worker, seen by all streams.
            headers = {
                "Authorization": f"Bearer {server.token('alice')}",
                "Oversync-Source-ID": "dev",
            }
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=headers, timeout=30
            ) as http:
                created = await http.post(
                    "/sync/push-sessions", json={"source_bundle_id": 1, "planned_row_count": 1}
                )
                assert created.status_code == 200, created.text
                pusher = serving_worker(server, _client_port(created))
                push_id = created.json()["push_id"]
                chunk = {"start_row_ordinal": 0, "rows": [user_insert().to_dict()]}
                uploaded = await http.post(f"/sync/push-sessions/{push_id}/chunks", json=chunk)
                assert uploaded.status_code == 200, uploaded.text
                committed = await http.post(f"/sync/push-sessions/{push_id}/commit")
                assert committed.status_code == 200, committed.text
            events = await asyncio.gather(*(stream.next_event(timeout=15) for stream in streams))
        assert pusher in workers
        assert {event["bundle_seq"] for event in events} == {committed.json()["bundle_seq"]}
        _stop_with_sigterm(server)
    finally:
        server.stop()


def test_a_killed_worker_is_restarted(database_url: str, tmp_path: Path) -> None:
    server = _start(database_url, tmp_path)
    try:
        before = _wait_for_workers(server, WORKERS)
        victim = before[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 30
        after = before
        while victim in after and time.monotonic() < deadline:
            time.sleep(0.1)
            after = _wait_for_workers(server, WORKERS)
        assert victim not in after, (before, after, server.log())
        with server.client("alice") as client:
            attach(client, "dev")
            for number in range(1, 6):  # fresh connections land on either worker
                push_rows(client, "dev", number, [insert_user(f"n{number}")])
            page = parsed(pull_page(client, "other"), PullResponse)
            assert len(page.bundles) == 5
        _stop_with_sigterm(server)
    finally:
        server.stop()
    log = server.log()
    assert f"(pid {victim}) exited unexpectedly with code -9: restarting it" in log, log


def test_a_refused_start_is_one_error_line_with_workers(database_url: str, tmp_path: Path) -> None:
    config = config_file(
        tmp_path, registered_tables=[{"schema": "business", "table": "nope_missing"}]
    )
    server = ServerProcess(
        database_url, config=config, extra_args=("--example-schema",), workers=WORKERS
    )
    with pytest.raises(RuntimeError, match="server exited early") as raised:
        server.start(tmp_path)
    assert server.process is not None
    assert server.process.returncode == 2
    log = str(raised.value)
    assert log.count("oversync-server: error: ") == 1, log
    assert "nope_missing" in log and "Traceback" not in log, log
