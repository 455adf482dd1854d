"""`python -m bench` end to end at tiny sizes: it measures this tree's server and, with
`--compare HEAD`, the committed revision's server beside it, and writes well-formed results.

Only the shape and sanity of the figures are asserted (positive rates, no failed pushes, the raw
baselines present), never their size: the machine is shared. Also the load generator's HTTP/1.1
client on what the server may answer (chunked bodies, 204s, closed idle connections).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))  # `bench` is a folder of the repository, not a package

from bench.http1 import AsyncConnection, Connection  # noqa: E402

TINY = [
    "--quick",
    "--sizes", "1,5",
    "--devices", "1,2",
    "--concurrency-seconds", "0.5",
    "--seconds", "0.1",
    "--min-runs", "1",
    "--small-bundles", "3",
    "--large-rows", "40",
    "--large-bundles", "2",
]  # fmt: skip


def _git_head_available() -> bool:
    if shutil.which("git") is None:
        return False
    done = subprocess.run(
        ["git", "rev-parse", "--verify", "HEAD^{commit}"], cwd=REPO_ROOT, capture_output=True
    )
    return done.returncode == 0


def test_bench_measures_both_servers_and_writes_results(pg_cluster: str, tmp_path: Path) -> None:
    compare = _git_head_available()
    command = [sys.executable, "-m", "bench", *TINY, "--admin-dsn", pg_cluster]
    command += ["--output-dir", str(tmp_path), "--name", "smoke"]
    command += ["--compare", "HEAD"] if compare else []
    done = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    targets = ["A", "B"] if compare else ["A"]

    result = json.loads((tmp_path / "smoke.json").read_text())
    assert sorted(result["meta"]["targets"]) == targets
    assert result["meta"]["bench_cpu_seconds"] > 0
    items = {item["id"]: item for item in result["items"]}
    assert set(items) == {
        "push.commit.users.1",
        "push.commit.users.5",
        "push.commit.posts.1",
        "push.commit.posts.5",
        "concurrency.1",
        "concurrency.2",
        "pull.small",
        "pull.large",
        "snapshot",
        "sdk.hydrate",
        "sdk.capture",
    }
    for item_id, item in items.items():
        for target in targets:
            (figures,) = item["samples"][target]  # one round
            rate = figures.get("rows_per_s", figures.get("bundles_per_s"))
            assert rate is not None and rate > 0, (item_id, target, figures)
            assert item_id.startswith("sdk.") or (
                figures[
                    "server_cpu_"
                    + ("ms_per_bundle" if "bundles_per_s" in figures else "us_per_row")
                ]
                > 0
            )
        if item_id.startswith("concurrency."):
            for target in targets:
                figures = item["samples"][target][0]
                assert figures["failures"] == 0
                assert figures["bundles"] >= int(item_id.split(".")[1])
                assert 0 < figures["p50_ms"] <= figures["p99_ms"]
        else:
            assert item["baseline"] > 0, item_id  # COPY or the raw read, same run
            rows = next(m for m in item["metrics"] if m["key"] == "rows_per_s")
            assert all(rows["vs_baseline"][t] > 0 for t in targets)
            if compare:
                assert rows["A/B"] > 0
    for item_id in ("pull.large", "snapshot"):
        assert items[item_id]["samples"]["A"][0]["peak_rss_mib"] > 10
    goals = {goal["goal"] for goal in result["goals"]}
    assert "server CPU ms per 1-row bundle (all concurrency runs)" in goals

    assert "push users, 5-row bundles" in done.stdout
    assert ("A/B" in done.stdout) == compare
    png = tmp_path / "smoke.png"
    if importlib.util.find_spec("matplotlib") is not None:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------------------------------------ the HTTP client

CHUNKED = (
    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    b'4\r\n{"a"\r\n3;ext=1\r\n:1}\r\n0\r\n\r\n'
)
NO_CONTENT = b"HTTP/1.1 204 No Content\r\ndate: now\r\n\r\n"


@pytest.fixture
def scripted_server() -> Iterator[str]:
    """Answers each connection's requests with CHUNKED, NO_CONTENT, then closes it (as a server
    closes an idle keep-alive connection)."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def serve(conn: socket.socket) -> None:
        with conn:
            for answer in (CHUNKED, NO_CONTENT):
                buffer = b""
                while b"\r\n\r\n" not in buffer:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffer += data
                head, _, body = buffer.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                while len(body) < length:
                    body += conn.recv(65536)
                conn.sendall(answer)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        listener.close()


def test_http_client_reads_chunked_and_204_and_reopens_closed_connections(
    scripted_server: str,
) -> None:
    connection = Connection(scripted_server, {"X-Test": "1"})
    for _ in range(2):  # the second round reopens the connection the server closed
        assert connection.request("POST", "/p", b"{}") == (200, b'{"a":1}')
        assert connection.request("DELETE", "/p", params={"x": 1}) == (204, b"")
    connection.close()

    async def run() -> None:
        connection = AsyncConnection(scripted_server, {"X-Test": "1"})
        for _ in range(2):
            assert await connection.request("POST", "/p", b"{}") == (200, b'{"a":1}')
            assert await connection.request("GET", "/p", params={"x": 1}) == (204, b"")
        await connection.close()

    asyncio.run(run())
