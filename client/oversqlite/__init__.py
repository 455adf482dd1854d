"""oversqlite: offline-first sync of SQLite tables with an oversync server.

Start with :class:`Client` (its module docstring tells the lifecycle), :class:`ClientConfig`
and :class:`SyncTable`. Results are typed values (:class:`PushReport`, :class:`PullReport`,
...); failures are exceptions under :class:`SyncError` that say what to do next.
"""

from oversqlite._async import AsyncClient
from oversqlite._background import BackgroundSync, EventCallback, EventKind, SyncEvent
from oversqlite._client import Client, ClientState
from oversqlite._codec import format_timestamp, parse_timestamp
from oversqlite._config import ClientConfig, KeyKind, Migration, RetryPolicy, SyncTable
from oversqlite._conflicts import (
    AcceptServer,
    Conflict,
    ConflictResolver,
    KeepLocal,
    KeepMerged,
    Resolution,
    ServerState,
    client_wins,
    server_wins,
)
from oversqlite._control import (
    CancelToken,
    OperationCancelledError,
    Phase,
    Progress,
    ProgressCallback,
)
from oversqlite._errors import (
    AttachConflictError,
    AttachRequiredError,
    ClientClosedError,
    ConfigError,
    ConflictError,
    ConflictRetryExhaustedError,
    DatabaseBusyError,
    DatabaseInUseError,
    InvalidConflictResolutionError,
    LifecycleUnsupportedError,
    LocalStoreError,
    MigrationError,
    OpenRequiredError,
    PendingChangesError,
    ProtocolError,
    PushRejectedError,
    RebuildRequiredError,
    ReconnectRequiredError,
    RetryExhaustedError,
    SchemaMismatchError,
    ServerRejectedError,
    SourceRecoveryRequiredError,
    SourceReplacementDivergedError,
    StateError,
    SyncError,
    TransportError,
    UnsupportedValueError,
    UpgradeRequiredError,
    UsageError,
)
from oversqlite._results import (
    AttachOutcome,
    AttachResult,
    DetachOutcome,
    DetachResult,
    PullOutcome,
    PullReport,
    PushOutcome,
    PushReport,
    ResolvedConflict,
    RestoreSummary,
    SourceInfo,
    SyncReport,
    SyncStatus,
    SyncThenDetachResult,
)

__all__ = [
    "AcceptServer",
    "AsyncClient",
    "AttachConflictError",
    "AttachOutcome",
    "AttachRequiredError",
    "AttachResult",
    "BackgroundSync",
    "CancelToken",
    "Client",
    "ClientClosedError",
    "ClientConfig",
    "ClientState",
    "ConfigError",
    "Conflict",
    "ConflictError",
    "ConflictResolver",
    "ConflictRetryExhaustedError",
    "DatabaseBusyError",
    "DatabaseInUseError",
    "DetachOutcome",
    "DetachResult",
    "EventCallback",
    "EventKind",
    "InvalidConflictResolutionError",
    "KeepLocal",
    "KeepMerged",
    "KeyKind",
    "LifecycleUnsupportedError",
    "LocalStoreError",
    "Migration",
    "MigrationError",
    "OpenRequiredError",
    "OperationCancelledError",
    "PendingChangesError",
    "Phase",
    "Progress",
    "ProgressCallback",
    "ProtocolError",
    "PullOutcome",
    "PullReport",
    "PushOutcome",
    "PushRejectedError",
    "PushReport",
    "RebuildRequiredError",
    "ReconnectRequiredError",
    "Resolution",
    "ResolvedConflict",
    "RestoreSummary",
    "RetryExhaustedError",
    "RetryPolicy",
    "SchemaMismatchError",
    "ServerRejectedError",
    "ServerState",
    "SourceInfo",
    "SourceRecoveryRequiredError",
    "SourceReplacementDivergedError",
    "StateError",
    "SyncError",
    "SyncEvent",
    "SyncReport",
    "SyncStatus",
    "SyncTable",
    "SyncThenDetachResult",
    "TransportError",
    "UnsupportedValueError",
    "UpgradeRequiredError",
    "UsageError",
    "client_wins",
    "format_timestamp",
    "parse_timestamp",
    "server_wins",
]

# Reprs and tracebacks show oversqlite.Client, not oversqlite._client.Client.
for _name in __all__:
    _obj = globals()[_name]
    if isinstance(_obj, type) or callable(_obj):
        try:
            _obj.__module__ = __name__
        except (AttributeError, TypeError):
            pass
del _name, _obj
