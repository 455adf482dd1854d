"""The wire contract itself: valid OpenAPI 3.1, served as-is, and the generated code matches it."""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

import httpx
import yaml
from openapi_spec_validator import validate

from oversync_server.api import services
from serverproc import ServerProcess

SPEC_PATH = Path(__file__).resolve().parents[1] / "openapi" / "oversync.yaml"


def load_spec() -> dict[str, object]:
    spec = yaml.safe_load(SPEC_PATH.read_text(encoding="utf-8"))
    assert isinstance(spec, dict)
    return spec


def test_spec_is_valid_openapi_31() -> None:
    spec = load_spec()
    validate(spec)
    assert spec["openapi"] == "3.1.0"


def test_every_operation_has_an_operation_id_tag_and_error_body() -> None:
    spec = load_spec()
    operations = [
        (path, method, operation)
        for path, item in spec["paths"].items()  # type: ignore[attr-defined]
        for method, operation in item.items()
    ]
    assert len(operations) == 14
    for path, method, operation in operations:
        assert operation["operationId"], (path, method)
        assert len(operation["tags"]) == 1, (path, method)
        for status, response in operation["responses"].items():
            if int(status) >= 400 and (path, status) != ("/syncx/health", "503"):
                assert response["$ref"].startswith("#/components/responses/"), (path, status)
        if path.startswith("/sync/"):
            assert operation.get("security") is None  # inherits the global bearer requirement
            names = [p.get("$ref", "") for p in operation["parameters"]]
            assert "#/components/parameters/SourceId" in names, path
        else:
            assert operation["security"] == [], path


# Every `error` code of the reference's master table (protocol.md §16) that is reachable over
# HTTP, plus this implementation's fixes of Go 500s (docs/deviations.md).
MASTER_TABLE_CODES = {
    "authentication_failed", "invalid_request", "service_unavailable", "connect_failed",
    "push_session_invalid", "scope_uninitialized", "scope_initializing", "initialization_stale",
    "initialization_expired", "history_pruned", "source_sequence_out_of_order", "source_retired",
    "push_session_create_failed", "push_chunk_invalid", "push_chunk_out_of_order",
    "push_session_not_found", "push_session_forbidden", "push_session_expired",
    "push_chunk_failed", "push_commit_invalid", "push_conflict", "source_sequence_changed",
    "push_session_commit_failed", "push_session_delete_failed", "committed_bundle_chunk_invalid",
    "committed_bundle_not_found", "committed_bundle_rows_failed", "pull_failed",
    "bundle_change_watch_forbidden", "bundle_change_watch_disabled", "bundle_change_watch_failed",
    "snapshot_session_invalid", "source_replacement_invalid", "snapshot_session_create_failed",
    "snapshot_chunk_invalid", "snapshot_session_not_found", "snapshot_session_forbidden",
    "snapshot_session_expired", "snapshot_chunk_failed", "snapshot_session_delete_failed",
    "status_failed", "health_failed", "snapshot_session_too_large",
}  # fmt: skip
# This implementation's own bounds (docs/deviations.md): per-user and per-server caps.
OWN_CODES = {"too_many_snapshot_sessions", "too_many_watch_streams"}


def test_error_codes_are_declared_per_operation_and_status() -> None:
    spec = load_spec()
    declared: set[str] = set()
    for item in spec["paths"].values():  # type: ignore[attr-defined]
        for operation in item.values():
            error_codes = operation["x-error-codes"]
            statuses = {int(status) for status in operation["responses"]}
            assert {int(status) for status in error_codes} <= statuses, operation["operationId"]
            for codes in error_codes.values():
                declared.update(codes)
    assert declared == MASTER_TABLE_CODES | OWN_CODES


def test_the_http_layer_maps_each_code_to_the_status_the_spec_declares() -> None:
    from oversync_server.errors import HTTP_STATUS

    spec = load_spec()
    for item in spec["paths"].values():  # type: ignore[attr-defined]
        for operation in item.values():
            for status, codes in operation["x-error-codes"].items():
                for code in codes:
                    expected = int(status)
                    # generic failure codes are not listed: anything unknown is a 500
                    assert HTTP_STATUS.get(code, 500) == expected, (code, operation["operationId"])


def test_every_protocol_method_is_implemented_by_a_service() -> None:
    """A spec change the services do not follow fails here (and at import, and in mypy)."""
    for name, protocol in inspect.getmembers(services, inspect.isclass):
        if not name.endswith("Service") or name == "Protocol":
            continue
        tag = name.removesuffix("Service").lower()
        module = importlib.import_module(f"oversync_server.services.{tag}")
        implementation = getattr(module, tag.capitalize())
        for method in protocol.__abstractmethods__:
            ours = inspect.signature(getattr(implementation, method))
            theirs = inspect.signature(getattr(protocol, method))
            assert list(ours.parameters) == list(theirs.parameters), (name, method)


def test_served_openapi_is_the_source_spec(server: ServerProcess) -> None:
    served = httpx.get(f"{server.base_url}/openapi.json").json()
    source = load_spec()
    assert served["paths"] == source["paths"]
    served_components, source_components = served["components"], dict(source["components"])
    # The generator serves the schemas the operations reference; the SSE event payload schema is
    # documentation for stream readers and referenced by no operation.
    source_schemas = dict(source_components.pop("schemas"))
    assert source_schemas.pop("BundleChangeEvent")
    assert served_components.pop("schemas") == source_schemas
    assert served_components == source_components


def test_generated_client_installs_on_its_own(tmp_path: Path) -> None:
    """`pip install ./generated/oversync_client` into an empty venv pulls only httpx and attrs."""
    import subprocess
    import sys
    import venv

    client_dir = SPEC_PATH.parents[1] / "generated" / "oversync_client"
    venv.EnvBuilder(with_pip=True).create(tmp_path / "venv")
    python = tmp_path / "venv" / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(client_dir)],
        check=True,
        timeout=300,
    )
    probe = "import oversync_client, oversync_client.api.push.create_push_session; print('ok')"
    assert subprocess.run([python, "-c", probe], capture_output=True, text=True).stdout == "ok\n"
    installed = subprocess.run(
        [python, "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    names = {line.split("==")[0].lower().replace("_", "-") for line in installed.split()}
    direct = {"oversync-client", "httpx", "attrs"}
    httpx_deps = {"anyio", "certifi", "httpcore", "h11", "idna", "sniffio", "typing-extensions"}
    assert direct <= names
    assert names - direct - httpx_deps - {"pip", "setuptools"} == set(), names
    assert sys.version_info >= (3, 11)
