"""The generated typed client against a real server process over real HTTP, and schemathesis
over the whole spec: no 5xx, and every response conforms to the contract."""

from __future__ import annotations

import httpx
import pytest
import schemathesis

from oversync_client import AuthenticatedClient
from oversync_client.api.discovery import get_capabilities
from oversync_client.api.lifecycle import connect
from oversync_client.models import CapabilitiesResponse, ConnectRequest, ErrorResponse
from serverproc import ServerProcess

# Operations not implemented yet would be left out of the schemathesis run, with the reason.
# The SSE watch stream is skipped in _run: an endless stream, covered by tests/test_watch.py.
NOT_YET_IMPLEMENTED: dict[str, str] = {}  # every operation is implemented


def test_capabilities_through_the_typed_client(server: ServerProcess) -> None:
    with server.client("alice") as client:
        response = get_capabilities.sync_detailed(client=client, oversync_source_id="device-1")
    assert response.status_code == 200
    capabilities = response.parsed
    assert isinstance(capabilities, CapabilitiesResponse)
    assert capabilities.protocol_version == "v1"
    assert capabilities.features.connect_lifecycle is True
    assert capabilities.features.server_checkpoint_tracking is False
    assert len(capabilities.features.to_dict()) == 20
    assert capabilities.registered_tables == [
        "business.categories",
        "business.file_reviews",
        "business.files",
        "business.posts",
        "business.team_members",
        "business.teams",
        "business.typed_rows",
        "business.users",
    ]
    limits = capabilities.bundle_limits
    assert limits is not None and limits.max_bundles_per_pull == 5000
    assert "max_rows_per_snapshot_session" not in limits.to_dict()  # unset limits are omitted


def test_a_bad_token_is_a_401_error_response(server: ServerProcess) -> None:
    with AuthenticatedClient(base_url=server.base_url, token="not-a-jwt") as client:
        response = connect.sync_detailed(
            client=client, oversync_source_id="device-1", body=ConnectRequest()
        )
    assert response.status_code == 401
    assert isinstance(response.parsed, ErrorResponse)
    assert response.parsed.error == "authentication_failed"


@pytest.mark.parametrize(
    ("method", "path", "headers", "status", "code"),
    [
        ("GET", "/sync/capabilities", {}, 401, "authentication_failed"),
        ("GET", "/sync/capabilities", {"X-Authenticated": "yes"}, 400, "invalid_request"),
        ("GET", "/no/such/path", {}, 404, "not_found"),
        ("PUT", "/sync/pull", {}, 405, "method_not_allowed"),
    ],
)
def test_every_error_is_an_error_response(
    server: ServerProcess, method: str, path: str, headers: dict[str, str], status: int, code: str
) -> None:
    if headers.pop("X-Authenticated", None):  # a valid token, but no Oversync-Source-ID
        headers = {**headers, "Authorization": f"Bearer {server.token('alice')}"}
    response = httpx.request(method, server.base_url + path, headers=headers)
    assert response.status_code == status
    assert response.json()["error"] == code
    assert isinstance(response.json()["message"], str)


def test_malformed_json_is_an_error_response(server: ServerProcess) -> None:
    response = httpx.post(
        f"{server.base_url}/sync/connect",
        content=b"{not json",
        headers={
            "Authorization": f"Bearer {server.token('alice')}",
            "Oversync-Source-ID": "device-1",
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_options_answers_cors_preflight(server: ServerProcess) -> None:
    response = httpx.options(f"{server.base_url}/sync/pull")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "*"
    assert "Oversync-Source-ID" in response.headers["access-control-allow-headers"]


def test_schemathesis_whole_spec(server: ServerProcess) -> None:
    """Every operation, generated positive and negative cases, with a valid token."""
    schema = schemathesis.openapi.from_url(f"{server.base_url}/openapi.json")
    for operation_id in NOT_YET_IMPLEMENTED:
        schema = schema.exclude(operation_id=operation_id)
    token = server.token("schemathesis-user")

    @schema.auth()
    class BearerAuth:
        def get(self, case: schemathesis.Case, context: object) -> str:
            return token

        def set(self, case: schemathesis.Case, data: str, context: object) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    failures: list[str] = []
    checked = 0
    for result in _run(schema, server.base_url):
        checked += 1
        if result:
            failures.append(result)
    assert checked > 0
    assert not failures, "\n\n".join(failures[:10])


def _run(schema: object, base_url: str) -> list[str]:
    """Drive schemathesis's own test generator per operation, collecting failures."""
    from hypothesis import HealthCheck, settings

    outcomes: list[str] = []
    for operation in schema.get_all_operations():  # type: ignore[attr-defined]
        api_operation = operation.ok()
        if api_operation.definition.raw.get("operationId") == "watchBundles":
            continue  # an endless event stream: covered by the watch tests

        @settings(
            max_examples=25,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                base_url=base_url,
                excluded_checks=[schemathesis.checks.positive_data_acceptance],
            )

        test = api_operation.as_strategy()
        from hypothesis import given

        try:
            given(test)(check)()
            outcomes.append("")
        except Exception as error:
            outcomes.append(f"{api_operation.method.upper()} {api_operation.path}: {error}")
    return outcomes
