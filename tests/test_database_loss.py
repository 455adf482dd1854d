"""A lost PostgreSQL backend answers a retryable 503, never a 500 (issue 9, item 7).

The server's backends are terminated (`pg_terminate_backend`, what a failover or an
administrator does) while requests are in flight: each such request answers 503
`service_unavailable` with `Retry-After`, and the next request works on a fresh connection.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import asyncpg
import httpx

from protocol_helpers import attach, insert_user, push_rows, start_server
from serverproc import ServerProcess

# The server's pooled backends: every session on the database but ours and the watch listener's
# (which reconnects on its own and is covered by tests/test_watch.py).
_TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = current_database() AND pid <> pg_backend_pid()
  AND application_name <> 'oversync-watch-listener' AND backend_type = 'client backend'
"""


def _headers(server: ServerProcess, user: str, source: str = "dev") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user)}", "Oversync-Source-ID": source}


def _pull(server: ServerProcess, user: str) -> httpx.Response:
    return httpx.get(
        f"{server.base_url}/sync/pull",
        params={"after_bundle_seq": 0},
        headers=_headers(server, user),
        timeout=30.0,
    )


async def test_a_request_whose_backend_is_terminated_answers_503(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    try:
        with server.client("alice") as client:
            attach(client, "dev")
        admin = await asyncpg.connect(database_url)
        holder = await asyncpg.connect(database_url)
        try:
            # The pull blocks on the table lock, inside its statement, on its own backend.
            await holder.execute("BEGIN; LOCK TABLE sync.user_state IN ACCESS EXCLUSIVE MODE")
            pending = asyncio.create_task(asyncio.to_thread(_pull, server, "alice"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                waiting = await admin.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
            holder_pid = holder.get_server_pid()
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'"
                " AND pid <> $1",
                holder_pid,
            )
            answer = await pending
        finally:
            await holder.close()
            await admin.close()
        assert answer.status_code == 503, answer.text
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"] == "service_unavailable"
        assert _pull(server, "alice").status_code == 200  # a fresh connection
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.stop()


def test_terminating_every_backend_under_load_answers_only_200_or_503(
    database_url: str, tmp_path: Path
) -> None:
    server = start_server(database_url, tmp_path)
    try:
        users = [f"user-{n}" for n in range(4)]
        for user in users:
            with server.client(user) as client:
                attach(client, "dev")
        statuses: list[int] = []
        errors: list[str] = []
        stop = threading.Event()

        def work(user: str) -> None:
            attempt = 0
            with server.client(user) as client:
                while not stop.is_set():
                    attempt += 1
                    try:  # a new source each time: its first bundle is always bundle 1
                        push_rows(client, f"dev-{attempt}", 1, [insert_user()])
                        statuses.append(200)
                    except AssertionError as failed:  # push_rows asserts every 200
                        unavailable = "SERVICE_UNAVAILABLE: 503" in str(failed)
                        statuses.append(503 if unavailable else 0)
                        if not unavailable:
                            errors.append(str(failed))
                    answer = _pull(server, user)
                    statuses.append(answer.status_code)
                    if answer.status_code not in (200, 503):
                        errors.append(answer.text)

        workers = [threading.Thread(target=work, args=(user,)) for user in users]
        for worker in workers:
            worker.start()

        async def terminate_repeatedly() -> int:
            admin = await asyncpg.connect(database_url)
            try:
                killed = 0
                for _ in range(6):
                    await asyncio.sleep(0.4)
                    killed += await admin.fetchval(_TERMINATE)
                return int(killed)
            finally:
                await admin.close()

        try:
            killed = asyncio.run(terminate_repeatedly())
            time.sleep(0.5)  # let the workers run on fresh connections
        finally:
            stop.set()
            for worker in workers:
                worker.join(timeout=60)
        assert killed > 0
        assert not errors, errors[:3]
        assert statuses.count(200) > 0
        # After the storm the service works normally again, and nothing was logged as a bug.
        assert _pull(server, users[0]).status_code == 200
        assert server.log_path is not None
        assert "Traceback" not in server.log_path.read_text(errors="replace")
        print(
            f"\nterminated {killed} backends; answers: {statuses.count(200)} x 200,"
            f" {statuses.count(503)} x 503"
        )
    finally:
        server.stop()
