"""Contains all the data models used in inputs/outputs"""

from .bundle import Bundle
from .bundle_change_event import BundleChangeEvent
from .bundle_limits import BundleLimits
from .bundle_row import BundleRow
from .bundle_row_payload import BundleRowPayload
from .capabilities_response import CapabilitiesResponse
from .client_schema_versions import ClientSchemaVersions
from .committed_bundle_rows_response import CommittedBundleRowsResponse
from .connect_request import ConnectRequest
from .connect_resolution import ConnectResolution
from .connect_response import ConnectResponse
from .error_response import ErrorResponse
from .features import Features
from .op import Op
from .pull_response import PullResponse
from .push_chunk_request import PushChunkRequest
from .push_chunk_response import PushChunkResponse
from .push_commit_response import PushCommitResponse
from .push_conflict import PushConflict
from .push_conflict_server_row_type_0 import PushConflictServerRowType0
from .push_request_row import PushRequestRow
from .push_request_row_payload import PushRequestRowPayload
from .push_session_already_committed import PushSessionAlreadyCommitted
from .push_session_create_request import PushSessionCreateRequest
from .push_session_staging import PushSessionStaging
from .registered_table_spec import RegisteredTableSpec
from .snapshot_chunk_response import SnapshotChunkResponse
from .snapshot_row import SnapshotRow
from .snapshot_row_payload import SnapshotRowPayload
from .snapshot_session import SnapshotSession
from .snapshot_session_create_request import SnapshotSessionCreateRequest
from .source_replacement import SourceReplacement
from .source_replacement_reason import SourceReplacementReason
from .status_response import StatusResponse
from .status_response_lifecycle import StatusResponseLifecycle
from .status_response_status import StatusResponseStatus
from .sync_key import SyncKey

__all__ = (
    "Bundle",
    "BundleChangeEvent",
    "BundleLimits",
    "BundleRow",
    "BundleRowPayload",
    "CapabilitiesResponse",
    "ClientSchemaVersions",
    "CommittedBundleRowsResponse",
    "ConnectRequest",
    "ConnectResolution",
    "ConnectResponse",
    "ErrorResponse",
    "Features",
    "Op",
    "PullResponse",
    "PushChunkRequest",
    "PushChunkResponse",
    "PushCommitResponse",
    "PushConflict",
    "PushConflictServerRowType0",
    "PushRequestRow",
    "PushRequestRowPayload",
    "PushSessionAlreadyCommitted",
    "PushSessionCreateRequest",
    "PushSessionStaging",
    "RegisteredTableSpec",
    "SnapshotChunkResponse",
    "SnapshotRow",
    "SnapshotRowPayload",
    "SnapshotSession",
    "SnapshotSessionCreateRequest",
    "SourceReplacement",
    "SourceReplacementReason",
    "StatusResponse",
    "StatusResponseLifecycle",
    "StatusResponseStatus",
    "SyncKey",
)
