"""`oversync_client_helpers` against a real server: `unwrap` returns the success model or raises
`ApiError` with status/code/message/details, `watch_bundles`/`awatch_bundles` yield typed
events; mypy --strict types `unwrap` of every generated operation as its success model; the
generated README lists every operation. (The 20-line script of docs/typed-client.md, checked
with `mypy --strict` and run against a server, is run by tests/test_docs.py.)"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import pkgutil
import subprocess
import sys
import typing
from pathlib import Path

import httpx
import pytest

import oversync_client.api
from oversync_client import AuthenticatedClient
from oversync_client.api.push import commit_push_session, create_push_session, upload_push_chunk
from oversync_client.models import (
    BundleChangeEvent,
    ErrorResponse,
    PushChunkRequest,
    PushChunkResponse,
    PushCommitResponse,
    PushSessionCreateRequest,
    PushSessionStaging,
)
from oversync_client_helpers import ApiError, awatch_bundles, unwrap, watch_bundles
from protocol_helpers import attach, insert_user, push_rows
from serverproc import REPO_ROOT, ServerProcess


def operations() -> list[tuple[str, object]]:
    """(`tag.operation`, module) of every generated operation."""
    found = []
    for tag in pkgutil.iter_modules(oversync_client.api.__path__):
        package = importlib.import_module(f"oversync_client.api.{tag.name}")
        for operation in pkgutil.iter_modules(package.__path__):
            module = importlib.import_module(f"{package.__name__}.{operation.name}")
            found.append((f"{tag.name}.{operation.name}", module))
    return sorted(found, key=lambda item: item[0])


def _spelled(kind: object) -> str:
    return "None" if kind is type(None) else getattr(kind, "__name__", repr(kind))


def test_mypy_strict_types_unwrap_of_every_operation_as_its_success(tmp_path: Path) -> None:
    """For each operation, `unwrap` of its `sync_detailed` and of its `sync` result reveals
    the success model(s): never ErrorResponse, never a Response, never an inference error."""
    lines = ["from typing import Any", "from oversync_client.types import Response"]
    lines += ["from oversync_client.models import *", "from oversync_client_helpers import unwrap"]
    expected = []
    for index, (name, module) in enumerate(operations()):
        detailed = inspect.signature(module.sync_detailed).return_annotation  # type: ignore[attr-defined]
        members = typing.get_args(typing.get_args(detailed)[0]) or typing.get_args(detailed)
        union = " | ".join(_spelled(kind) for kind in members)
        success = sorted(_spelled(k) for k in members if k is not ErrorResponse)
        lines += [
            f"def detailed_{index}(r: Response[{union}]) -> None:  # {name}",
            "    reveal_type(unwrap(r))",
            f"def plain_{index}(r: {union} | None) -> None:",
            "    reveal_type(unwrap(r))",
        ]
        expected += [(name, success)] * 2
    script = tmp_path / "every_operation.py"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(script)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    revealed = [line for line in result.stdout.splitlines() if "Revealed type" in line]
    assert len(revealed) == len(expected), result.stdout
    for line, (name, success) in zip(revealed, expected, strict=True):
        shown = line.split("Revealed type is ")[1].strip('"')
        assert "ErrorResponse" not in shown and "Response[" not in shown, (name, shown)
        if success != ["Any"]:  # the 204 operations have no body
            assert sorted(part.rsplit(".", 1)[-1] for part in shown.split(" | ")) == success
    assert "error:" not in result.stdout, result.stdout


def test_unwrap_returns_the_model_or_raises_api_error(server: ServerProcess) -> None:
    with server.client("ada") as client:
        attach(client, "dev-a")
        staging = unwrap(
            create_push_session.sync_detailed(
                client=client,
                oversync_source_id="dev-a",
                body=PushSessionCreateRequest(source_bundle_id=1, planned_row_count=1),
            )
        )
        assert isinstance(staging, PushSessionStaging)
        with pytest.raises(ApiError) as refused:  # nothing uploaded yet: the commit is refused
            unwrap(
                commit_push_session.sync_detailed(
                    staging.push_id, client=client, oversync_source_id="dev-a"
                )
            )
        error = refused.value
        assert (error.status, error.code) == (400, "push_commit_invalid"), error
        assert error.details["error"] == error.code and error.message and not error.retryable
        with pytest.raises(ApiError) as plain:  # the sync() result: same code, status unknown
            unwrap(
                commit_push_session.sync("no-such-push", client=client, oversync_source_id="dev-a")
            )
        assert plain.value.status is None and plain.value.code == "push_session_not_found"
        chunk = PushChunkRequest(start_row_ordinal=0, rows=[insert_user()])
        uploaded = upload_push_chunk.sync_detailed(
            staging.push_id, client=client, oversync_source_id="dev-a", body=chunk
        )
        assert isinstance(unwrap(uploaded), PushChunkResponse)
        committed = unwrap(
            commit_push_session.sync_detailed(
                staging.push_id, client=client, oversync_source_id="dev-a"
            )
        )
        assert isinstance(committed, PushCommitResponse) and committed.bundle_seq == 1


def test_unwrap_of_an_undocumented_answer_keeps_status_and_text() -> None:
    """A proxy's HTML error page (not an ErrorResponse) still becomes an ApiError."""

    def proxy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="<html>bad gateway</html>")

    http = httpx.Client(base_url="http://sync.invalid", transport=httpx.MockTransport(proxy))
    client = AuthenticatedClient(base_url="http://sync.invalid", token="t").set_httpx_client(http)
    with pytest.raises(ApiError) as refused:
        unwrap(commit_push_session.sync_detailed("p", client=client, oversync_source_id="s"))
    assert refused.value.status == 502 and refused.value.retryable
    assert refused.value.code == "http_error" and "bad gateway" in refused.value.message


def test_watch_yields_typed_events(server: ServerProcess) -> None:
    with server.client("bea") as client:
        with pytest.raises(ApiError) as refused:  # not connected yet: no scope to watch
            next(watch_bundles(client, source_id="dev-w"))
        assert (refused.value.status, refused.value.code) == (409, "scope_uninitialized")
        attach(client, "dev-w")
        push_rows(client, "dev-w", 1, [insert_user()])
        events = watch_bundles(client, source_id="dev-w", after_bundle_seq=0)
        first = next(events)  # the catch-up event for bundle 1
        assert isinstance(first, BundleChangeEvent) and first.bundle_seq == 1
        push_rows(client, "dev-w", 2, [insert_user()])
        second = next(events)  # a live event carries its source
        assert (second.bundle_seq, second.source_id, second.source_bundle_id) == (2, "dev-w", 2)
        events.close()


def test_awatch_yields_typed_events(server: ServerProcess) -> None:
    with server.client("cy") as client:
        attach(client, "dev-x")
        push_rows(client, "dev-x", 1, [insert_user()])

    async def first_event() -> BundleChangeEvent:
        async with server.client("cy") as async_client:
            async for event in awatch_bundles(async_client, source_id="dev-x"):
                return event
        raise AssertionError("the stream ended without an event")

    assert asyncio.run(first_event()).bundle_seq == 1


def test_generated_readme_documents_every_operation() -> None:
    readme = (REPO_ROOT / "generated" / "oversync_client" / "README.md").read_text()
    for name, _ in operations():
        assert f"`api.{name}`" in readme, name
    for section in ("## Install", "## Create a client", "## Handle errors", "## Watch"):
        assert section in readme
    assert "MyDataModel" not in readme and "my_tag" not in readme
