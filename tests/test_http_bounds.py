"""The HTTP front refuses what it cannot afford, cheaply (issue 9, items 2 and 4), end to end on
a real server process: oversized and malformed push chunks, body and head limits, and read
deadlines that close stalled connections. Bounds are generous (a shared machine)."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from protocol_helpers import attach, config_file, insert_user, push_rows
from push_support import staging
from serverproc import ServerProcess

MB = 1024 * 1024


# ------------------------------------------------------------------------------------ helpers


def _status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def _cpu_seconds(pid: int) -> float:
    """The process's CPU time: what a refusal cost the server, steady on a loaded machine."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _pid(server: ServerProcess) -> int:
    assert server.process is not None
    return server.process.pid


def _headers(server: ServerProcess, user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {server.token(user)}", "Oversync-Source-ID": "dev-a"}


def _open(server: ServerProcess, timeout: float = 10.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=timeout)


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    data = b""
    while True:
        try:
            part = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not part:
            return data
        data += part


def _parse(response: bytes) -> tuple[int, dict[str, str], dict[str, object]]:
    head, _, body = response.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return status, headers, json.loads(body) if body else {}


def _chunk_path(push_id: str) -> str:
    return f"/sync/push-sessions/{push_id}/chunks"


class HealthProbe:
    """Polls /syncx/health in a thread and keeps the slowest answer."""

    def __init__(self, server: ServerProcess) -> None:
        self.url = f"{server.base_url}/syncx/health"
        self.slowest = 0.0
        self.answers = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30.0) as client:
            while not self._stop.is_set():
                started = time.monotonic()
                assert client.get(self.url).status_code == 200
                self.slowest = max(self.slowest, time.monotonic() - started)
                self.answers += 1
                time.sleep(0.02)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


@pytest.fixture
def bounded_server(database_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A server with small limits and short timeouts, to provoke each of them quickly."""
    config = config_file(
        tmp_path,
        max_request_body_bytes=200_000,
        max_request_header_bytes=24 * 1024,
        header_read_timeout_seconds=1.0,
        body_read_timeout_seconds=2.0,
        keep_alive_timeout_seconds=1.0,
    )
    process = ServerProcess(database_url, config=config, extra_args=("--example-schema",))
    process.start(tmp_path)
    try:
        yield process
    finally:
        process.stop()


# ------------------------------------------------------------------------------------ chunks


def _million_rows(count: int) -> bytes:
    return b'{"start_row_ordinal":0,"rows":[' + b",".join([b'{"a":1}'] * count) + b"]}"


@pytest.mark.parametrize("rows", [1_000_000, 3_000_000])
def test_a_huge_malformed_chunk_is_refused_at_once(server: ServerProcess, rows: int) -> None:
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 10)
    body = _million_rows(rows)  # 8 MB / 24 MB
    pid = _pid(server)
    before = _status_kb(pid, "VmRSS")
    with HealthProbe(server) as probe:
        time.sleep(0.2)
        started, cpu_before = time.monotonic(), _cpu_seconds(pid)
        response = httpx.post(
            f"{server.base_url}{_chunk_path(push_id)}",
            content=body,
            headers={**_headers(server), "Content-Type": "application/json"},
            timeout=60.0,
        )
        elapsed, cpu = time.monotonic() - started, _cpu_seconds(pid) - cpu_before
        time.sleep(0.2)
    growth_mb = (_status_kb(pid, "VmHWM") - before) / 1024  # peak RSS since start, over before
    print(
        f"\n{rows} rows ({len(body) / MB:.0f} MB): refused in {elapsed:.3f}s ({cpu:.3f}s server"
        f" CPU with the health probe's), RSS growth <= {growth_mb:.1f} MB, slowest health"
        f" {probe.slowest:.3f}s ({probe.answers} answers)"
    )
    assert response.status_code == 400, response.text
    assert response.json() == {
        "error": "push_chunk_invalid",
        "message": "rows length more than 10000 exceeds max_rows_per_push_chunk 5000",
    }
    assert cpu < 2.0, cpu  # bounded work, not a parse of every row
    assert growth_mb < 256, growth_mb
    assert probe.answers > 0  # other clients were answered meanwhile


def test_one_row_with_a_million_key_entries_costs_one_error(server: ServerProcess) -> None:
    entries = b",".join(b'"k%d":1' % index for index in range(1_000_000))
    body = b'{"start_row_ordinal":0,"rows":[{"table":"users","op":"INSERT","key":{' + entries
    body += b"}}]}"
    cpu_before = _cpu_seconds(_pid(server))
    response = httpx.post(
        f"{server.base_url}{_chunk_path(str(uuid.uuid4()))}",
        content=body,
        headers=_headers(server),
        timeout=60.0,
    )
    cpu = _cpu_seconds(_pid(server)) - cpu_before
    print(f"\n1M key entries: {cpu:.3f}s server CPU")
    # one error, not a million; decoding the 12 MB row itself is ~2 s (linear in the capped body)
    assert cpu < 5.0, cpu
    assert response.status_code == 400
    assert response.json() == {
        "error": "push_chunk_invalid",
        "message": "rows.0.key.k0: input should be a valid string",
    }


def test_row_count_and_validation_answers_stay_the_service_s(server: ServerProcess) -> None:
    """Just over the limit the count is exact; within it, valid chunks pass unchanged."""
    with server.client("alice") as client:
        attach(client, "dev-a")
        push_id = staging(client, "dev-a", 1, 3)
        url = f"{server.base_url}{_chunk_path(push_id)}"
        rows = [insert_user().to_dict() for _ in range(5001)]
        over = httpx.post(
            url, json={"start_row_ordinal": 0, "rows": rows}, headers=_headers(server)
        )
        assert over.json() == {
            "error": "push_chunk_invalid",
            "message": "rows length 5001 exceeds max_rows_per_push_chunk 5000",
        }
        bad = {"start_row_ordinal": 0, "rows": [rows[0], {"table": 1}]}
        refused = httpx.post(url, json=bad, headers=_headers(server))
        assert (refused.status_code, refused.json()["error"]) == (400, "invalid_request")
        assert refused.json()["message"].startswith("Failed to parse push chunk request: rows.1.")
        fine = httpx.post(
            url, json={"start_row_ordinal": 0, "rows": rows[:3]}, headers=_headers(server)
        )
        assert fine.status_code == 200, fine.text
        assert fine.json()["next_expected_row_ordinal"] == 3


# ------------------------------------------------------------------------------------ bodies


def test_a_declared_body_over_the_limit_is_refused_before_it_is_sent(
    bounded_server: ServerProcess,
) -> None:
    path = _chunk_path(str(uuid.uuid4()))
    with _open(bounded_server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {100 * MB}\r\n\r\n".encode()
        )
        status, headers, body = _parse(_read_all(sock))
    assert status == 413
    assert body == {"error": "request_too_large", "message": "request body exceeds 200000 bytes"}
    assert headers["content-type"] == "application/json"


def test_a_chunked_body_is_cut_off_at_the_limit(bounded_server: ServerProcess) -> None:
    path = _chunk_path(str(uuid.uuid4()))
    with _open(bounded_server) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
        )
        part = b"x" * 50_000
        for _ in range(5):  # 250 kB, never finished
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        status, _, body = _parse(_read_all(sock))
    assert (status, body["error"]) == (413, "request_too_large")


def test_small_operations_take_small_bodies(bounded_server: ServerProcess) -> None:
    padding = "x" * 70_000  # ignored fields, but 70 kB of them
    response = httpx.post(
        f"{bounded_server.base_url}/sync/connect",
        json={"has_local_pending_rows": False, "padding": padding},
        headers=_headers(bounded_server),
    )
    assert response.status_code == 413
    assert response.json()["message"] == "request body exceeds 65536 bytes"
    with bounded_server.client("alice") as client:
        attach(client, "dev-a")  # a normal connect is fine
        # a chunk as large as the limit allows still goes through
        rows = [insert_user(name="n" * 200) for _ in range(250)]  # ~140 kB
        assert push_rows(client, "dev-a", 1, rows, chunk_rows=250).bundle_seq == 1


# ------------------------------------------------------------------------------------ heads


def test_an_oversized_head_is_answered_431(server: ServerProcess) -> None:
    with _open(server) as sock:
        sock.sendall(
            b"GET /syncx/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 128 * 1024 + b"\r\n\r\n"
        )
        status, headers, body = _parse(_read_all(sock))
    assert status == 431
    assert body == {
        "error": "request_headers_too_large",
        "message": "request headers exceed 32768 bytes",
    }
    assert headers["connection"] == "close"
    # a head over h11's own 16 KiB default but within the limit is served
    big = httpx.get(f"{server.base_url}/syncx/health", headers={"X-Big": "a" * 20_000})
    assert big.status_code == 200


# ------------------------------------------------------------------------------------ timeouts


def _closed_within(sock: socket.socket, seconds: float) -> tuple[bytes, float]:
    started = time.monotonic()
    sock.settimeout(seconds)
    data = _read_all(sock)
    return data, time.monotonic() - started


def test_a_silent_connection_is_closed(bounded_server: ServerProcess) -> None:
    with _open(bounded_server) as sock:
        data, waited = _closed_within(sock, 10)
    assert data == b""  # nothing of a request arrived: closed without an answer
    assert 0.5 < waited < 5


def test_a_partial_head_is_answered_408(bounded_server: ServerProcess) -> None:
    with _open(bounded_server) as sock:
        sock.sendall(b"GET /syncx/health HTTP/1.1\r\nHost: x\r\n")
        data, waited = _closed_within(sock, 10)
    status, _, body = _parse(data)
    assert (status, body["error"]) == (408, "request_timeout")
    assert body["message"] == "request headers not received within 1s"
    assert waited < 5


def test_a_trickled_head_is_cut_off_at_its_deadline(bounded_server: ServerProcess) -> None:
    request = b"GET /syncx/health HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    received = b""
    started = time.monotonic()
    with _open(bounded_server) as sock:
        sock.settimeout(0.0)
        try:
            for byte in request:  # one byte every 0.2 s: 25 s for the whole head
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                try:
                    received += sock.recv(65536)
                except BlockingIOError:
                    continue
                if received:
                    break
        except (BrokenPipeError, ConnectionResetError):
            pass
        sock.settimeout(5)
        received += _read_all(sock)
    assert _parse(received)[0] == 408
    assert time.monotonic() - started < 5  # the deadline is for the whole head, not per byte


def test_a_partial_body_is_answered_408(bounded_server: ServerProcess) -> None:
    token = bounded_server.token("alice")
    with _open(bounded_server) as sock:
        sock.sendall(
            b"POST /sync/connect HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n"
            + f"Authorization: Bearer {token}\r\nOversync-Source-ID: dev-a\r\n\r\n".encode()
            + b'{"has_local'
        )
        data, waited = _closed_within(sock, 10)
    status, _, body = _parse(data)
    assert (status, body["error"]) == (408, "request_timeout")
    assert body["message"] == "request body not received within 2s"
    assert waited < 6


def test_an_idle_keep_alive_connection_is_closed(bounded_server: ServerProcess) -> None:
    with _open(bounded_server) as sock:
        sock.sendall(b"GET /syncx/health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        first = sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        rest, waited = _closed_within(sock, 10)
    assert waited < 5
    assert b"HTTP/1.1" not in rest  # closed without a second answer


def test_stalled_connections_do_not_accumulate(bounded_server: ServerProcess) -> None:
    pid = _pid(bounded_server)
    baseline = _fd_count(pid)
    stalled = []
    try:
        for index in range(300):
            sock = _open(bounded_server)
            if index % 3 == 0:
                sock.sendall(b"GET /syncx/health HTTP/1.1\r\n")  # half a head
            elif index % 3 == 1:
                sock.sendall(b"POST /sync/connect HTTP/1.1\r\nContent-Length: 9\r\n\r\n{")
            stalled.append(sock)  # the rest send nothing
        peak = 0
        for _ in range(20):
            peak = max(peak, _fd_count(pid))
            time.sleep(0.05)
        assert peak > baseline + 150  # they are open (some may have been closed already)
        deadline = time.monotonic() + 15
        while _fd_count(pid) > baseline + 5 and time.monotonic() < deadline:
            time.sleep(0.25)
        assert _fd_count(pid) <= baseline + 5, (_fd_count(pid), baseline)
    finally:
        for sock in stalled:
            sock.close()
    # and the server still serves
    assert httpx.get(f"{bounded_server.base_url}/syncx/health").status_code == 200
