"""The transport wrapper: error mapping, retry policy, fresh tokens, background-thread use."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest
from sdk_helpers import Backend, new_id

from oversqlite import (
    ProtocolError,
    RetryExhaustedError,
    RetryPolicy,
    ServerRejectedError,
    TransportError,
)
from oversqlite._transport import Api, with_retry


def api_answering(*responses: httpx.Response, seen: list[httpx.Request] | None = None) -> Api:
    queue = list(responses)

    def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(request)
        return queue.pop(0)

    return Api(base_url="http://x", token="t", timeout=5, transport=httpx.MockTransport(handler))


def test_answers_map_into_the_error_tree() -> None:
    api = api_answering(
        httpx.Response(409, json={"error": "history_pruned", "message": "floor 9"}),
        httpx.Response(502, text="<html>bad gateway</html>"),
        httpx.Response(501, json={"error": "not_implemented", "message": "later"}),
        httpx.Response(200, json={"unexpected": True}),
        httpx.Response(400, text="not json"),
    )
    with pytest.raises(ServerRejectedError) as rejected:
        api.pull("s", after=0, max_bundles=10, target=None)
    assert (rejected.value.status, rejected.value.code) == (409, "history_pruned")
    with pytest.raises(TransportError) as transient:
        api.pull("s", after=0, max_bundles=10, target=None)
    assert transient.value.status == 502
    with pytest.raises(ServerRejectedError, match="not_implemented"):
        api.pull("s", after=0, max_bundles=10, target=None)
    with pytest.raises(ProtocolError):
        api.pull("s", after=0, max_bundles=10, target=None)
    with pytest.raises(ServerRejectedError, match="not json"):
        api.pull("s", after=0, max_bundles=10, target=None)


def test_network_failures_become_transport_errors() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    api = Api(base_url="http://x", token="t", timeout=5, transport=httpx.MockTransport(refuse))
    with pytest.raises(TransportError, match="ConnectError"):
        api.capabilities("s")


def test_retry_honours_retry_after_and_gives_up_typed() -> None:
    sleeps: list[float] = []
    policy = RetryPolicy(max_attempts=3, initial_backoff=0.1, max_backoff=2.0, jitter=0.0)
    api = api_answering(
        httpx.Response(
            429, headers={"Retry-After": "1.5"}, json={"error": "slow_down", "message": ""}
        ),
        httpx.Response(503, json={"error": "service_unavailable", "message": ""}),
        httpx.Response(503, json={"error": "service_unavailable", "message": ""}),
    )
    with pytest.raises(RetryExhaustedError) as caught:
        with_retry(
            policy,
            "pull",
            lambda: api.pull("s", after=0, max_bundles=1, target=None),
            sleep=sleeps.append,
        )
    assert sleeps == [1.5, 0.2]
    assert caught.value.attempts == 3 and isinstance(caught.value.__cause__, TransportError)


def test_the_token_source_is_asked_for_every_request() -> None:
    tokens = iter(["one", "two"])
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(404, json={"error": "nope", "message": ""})

    api = Api(
        base_url="http://x/",
        token=lambda: next(tokens),
        timeout=5,
        transport=httpx.MockTransport(handler),
    )
    for _ in range(2):
        with pytest.raises(ServerRejectedError):
            api.capabilities("src")
    assert [r.headers["authorization"] for r in seen] == ["Bearer one", "Bearer two"]
    assert seen[0].headers["oversync-source-id"] == "src"
    assert seen[0].url.path == "/sync/capabilities"


def test_the_client_can_run_in_a_background_thread(backend: Backend, tmp_path: Path) -> None:
    a, b = backend.device("a"), backend.device("b")
    a.client.attach("alice")
    a.client.sync()
    b.client.attach("alice")
    stop = threading.Event()
    errors: list[BaseException] = []

    def syncer() -> None:
        try:
            while not stop.is_set():
                a.client.sync()
        except BaseException as exc:  # reported below
            errors.append(exc)

    worker = threading.Thread(target=syncer)
    worker.start()
    writer = a.db.__class__(a.path, isolation_level=None, timeout=30)
    try:
        for i in range(20):
            writer.execute(
                "INSERT INTO users (id, name, email) VALUES (?, ?, 'e')", (new_id(), f"t{i}")
            )
            a.client.status()  # other calls wait for the lock
    finally:
        stop.set()
        worker.join(timeout=60)
        writer.close()
    assert not errors
    a.client.sync()
    b.client.sync()
    assert len(b.rows("users")) == 20 and b.everything() == a.everything()
