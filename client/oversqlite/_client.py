"""The oversqlite client.

Lifecycle::

    config = ClientConfig(schema="business", tables=["users", "posts"])
    client = Client("app.db", config, base_url="https://sync.example", token=get_token)
    client.open()              # validate the schema, install triggers, resume durable state
    client.attach("alice")     # after sign-in, and once after every open()
    ...                        # the app writes its tables (any connection): triggers capture it
    client.sync()              # push_pending() then pull_to_stable()
    client.sync_then_detach()  # sign-out: push what is left, then wipe the user's data
    client.close()

Before ``attach()`` (and after ``detach()``) writes are still captured; the first attach decides
with the server whether they seed an empty account (``SEEDED_FROM_LOCAL``) or give way to the
account's existing data (``USED_REMOTE_STATE``).

Every sync operation takes the client's lock, so the client can be driven from a background
thread (:meth:`Client.start` runs one); the application should write its tables through its own
SQLite connection. The status calls (:meth:`Client.status`, :meth:`Client.pending_row_count`,
...) read through a second connection and never wait for a running sync. Sync operations take
an optional ``cancel`` token and ``progress`` callback (``oversqlite._control``).
"""

from __future__ import annotations

import enum
import logging
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import TYPE_CHECKING, Self

import httpx

from oversqlite import _lifecycle, _marks, _migrate, _outbox, _pull, _push, _rejected
from oversqlite._capture import fold_capture_log
from oversqlite._config import ClientConfig
from oversqlite._context import Context
from oversqlite._control import CancelToken, Control, ProgressCallback
from oversqlite._errors import (
    AttachRequiredError,
    ClientClosedError,
    ConfigError,
    DatabaseBusyError,
    DatabaseInUseError,
    LocalStoreError,
    OpenRequiredError,
    ProtocolError,
    RebuildRequiredError,
    ServerRejectedError,
    SourceRecoveryRequiredError,
)
from oversqlite._results import (
    AttachResult,
    DetachResult,
    PullOutcome,
    PullReport,
    PushOutcome,
    PushReport,
    RejectedChange,
    RestoreSummary,
    SourceInfo,
    SyncReport,
    SyncStatus,
    SyncThenDetachResult,
)
from oversqlite._schema import TableInfo, check_foreign_keys, load_tables, table_shape
from oversqlite._store import (
    STATE_TABLES,
    atomic,
    begin_immediate,
    connect,
    install,
    pending_row_count,
    read_state,
    update_state,
)
from oversqlite._transport import Api, TokenSource
from oversqlite._triggers import capture_existing_rows, drop_all

if TYPE_CHECKING:
    from oversqlite._background import BackgroundSync, EventCallback

__all__ = ["Client", "ClientState"]

logger = logging.getLogger("oversqlite")

# Local writes during a pull stop it; sync() pushes them and pulls again, this many times.
MAX_SYNC_ROUNDS = 3
MAX_SYNC_THEN_DETACH_ROUNDS = 3

_owners: set[str] = set()
_owners_lock = threading.Lock()


class ClientState(enum.Enum):
    CREATED = "created"
    """Constructed; call open()."""
    OPEN = "open"
    """Usable; attach() binds a user."""
    CLOSED = "closed"
    """Closed or uninstalled; cannot be reopened (make a new client)."""


def _owner_key(path: str) -> str | None:
    if path in ("", ":memory:") or path.startswith("file:"):
        return None
    return os.path.realpath(path)


class Client:
    """Syncs the managed tables of one SQLite database file with an oversync server.

    ``token`` is a bearer token or a callable returning one (called for every request, so
    expiring tokens can be refreshed); the server derives the user id from it, and it must
    belong to the user passed to :meth:`attach`. ``transport`` replaces the HTTP transport
    (proxies, tests); ``tracer`` receives every SQL statement the SDK runs.

    Usage::

        with Client("app.db", config, base_url=URL, token=token) as client:
            client.attach("alice")
            report = client.sync()
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: ClientConfig,
        *,
        base_url: str,
        token: TokenSource,
        transport: httpx.BaseTransport | None = None,
        tracer: Callable[[str], None] | None = None,
    ) -> None:
        self._path = os.fspath(path)
        self._config = config
        self._base_url = base_url
        self._token = token
        self._transport = transport
        self._tracer = tracer
        self._lock = threading.RLock()
        self._state = ClientState.CREATED
        self._ctx: Context | None = None
        self._control = Control()
        # Status reads: their own connection (WAL readers never wait for the writer).
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()
        self._background: BackgroundSync | None = None
        self._owner: str | None = None
        self._session_user: str | None = None

    # ------------------------------------------------------------------ lifecycle

    @property
    def state(self) -> ClientState:
        return self._state

    def open(self) -> Self:
        """Validate the config against the database, install sync state, resume it.

        Idempotent. Creates the ``_sync_*`` tables and triggers if missing, runs the pending
        ``ClientConfig.migrations`` (each in its own transaction, capture suspended), drops
        triggers of tables no longer managed, generates the source id on first use, records
        the rows of newly managed tables as pending inserts, and marks tables whose shape
        changed for re-hydration at the next sync.

        Raises :class:`ConfigError` when the schema cannot be synced safely (or the database
        is at a newer local schema version than the app), :class:`MigrationError` when a
        migration fails (it is rolled back), and :class:`DatabaseInUseError` when another
        client of this process owns the file.
        """
        with self._lock:
            if self._state is ClientState.CLOSED:
                raise ClientClosedError("open")
            if self._state is ClientState.OPEN:
                return self
            owner = _owner_key(self._path)
            with _owners_lock:
                if owner is not None and owner in _owners:
                    raise DatabaseInUseError(f"another open Client owns {owner}; close it first")
                if owner is not None:
                    _owners.add(owner)
            conn: sqlite3.Connection | None = None
            try:
                conn = connect(
                    self._path, busy_timeout=self._config.busy_timeout, tracer=self._tracer
                )
                tables = self._install(conn)
                check_foreign_keys(conn, tables, self._config.foreign_keys, self._path)
                api = Api(
                    base_url=self._base_url,
                    token=self._token,
                    timeout=self._config.http_timeout,
                    transport=self._transport,
                    control=self._control,
                )
                self._reader = self._open_reader(conn)
            except BaseException as exc:
                if conn is not None:
                    conn.close()
                if self._reader is not None:
                    self._reader.close()
                    self._reader = None
                self._release(owner)
                if isinstance(exc, sqlite3.Error):
                    raise LocalStoreError(f"open: {exc}") from exc
                raise
            self._owner = owner
            self._ctx = Context(
                conn, api, self._config, tables, self._control.sleep, control=self._control
            )
            self._state = ClientState.OPEN
            return self

    def _open_reader(self, writer: sqlite3.Connection) -> sqlite3.Connection:
        """A second connection for status reads; in-memory databases share the writer."""
        if _owner_key(self._path) is None:
            return writer
        reader = sqlite3.connect(
            self._path, isolation_level=None, check_same_thread=False, timeout=5.0
        )
        reader.execute("PRAGMA query_only = ON")
        return reader

    def _install(self, conn: sqlite3.Connection) -> dict[str, TableInfo]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            install(conn)
            fold_capture_log(conn)  # writes logged while no client was open
            state = read_state(conn)
            schema = self._config.schema
            if state.schema_name and state.schema_name != schema:
                raise ConfigError(
                    f"this database syncs schema {state.schema_name!r}, not {schema!r}; one "
                    "database syncs one server schema (uninstall_sync() to switch)"
                )
            # Shapes first (the app may have changed tables itself; an older SDK recorded none),
            # so migrations are compared with the shape before them.
            _marks.note_reshaped(conn)
            migrations = _migrate.pending_migrations(conn, self._config)
            if migrations:  # each runs in a transaction of its own
                conn.execute("COMMIT")
                _migrate.run_migrations(conn, self._config, migrations)
                begin_immediate(conn)
            tables = self._register(conn)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return tables

    def _register(self, conn: sqlite3.Connection) -> dict[str, TableInfo]:
        """Validate and register the managed tables, install triggers, record the version."""
        state = read_state(conn)
        tables = load_tables(conn, self._config.sync_tables)
        reshaped = _marks.note_reshaped(conn)  # includes changes the app made itself
        if reshaped:
            logger.info("open: %s changed shape; re-hydrating at the next sync", reshaped)
        self._register_tables(conn, tables)
        _marks.reinstall_triggers(conn, tables.values())
        if not state.source_id:
            update_state(conn, source_id=str(uuid.uuid4()))
        update_state(
            conn,
            schema_name=self._config.schema,
            apply_mode=0,
            schema_version=self._config.schema_version,
        )
        return tables

    @staticmethod
    def _register_tables(conn: sqlite3.Connection, tables: dict[str, TableInfo]) -> None:
        previous = {row[0] for row in conn.execute("SELECT table_name FROM _sync_managed_tables")}
        for name in sorted(previous - set(tables)):
            pending = conn.execute(
                "SELECT (SELECT COUNT(*) FROM _sync_dirty_rows WHERE table_name = ?) + "
                "(SELECT COUNT(*) FROM _sync_outbox_rows WHERE table_name = ?)",
                (name, name),
            ).fetchone()[0]
            if pending:
                raise ConfigError(
                    f"table {name!r} left the config with {pending} unpushed row(s); add it back "
                    "and sync before removing it"
                )
            for state_table in ("_sync_row_state", "_sync_managed_tables", "_sync_rehydrate"):
                conn.execute(f"DELETE FROM {state_table} WHERE table_name = ?", (name,))
            conn.execute("DELETE FROM _sync_rehydrate_rows WHERE table_name = ?", (name,))
        for name, table in tables.items():
            if name not in previous:
                captured = capture_existing_rows(conn, table)
                if captured:
                    logger.info(
                        "open: %d existing row(s) of %s recorded as pending", captured, name
                    )
                shape = table_shape(conn, name) or []
                conn.execute(
                    "INSERT INTO _sync_managed_tables (table_name, key_column, columns) "
                    "VALUES (?, ?, ?)",
                    (name, table.key.name, _marks.shape_json(shape)),
                )
                if previous:  # a table added to a syncing database: fetch its server rows
                    _marks.mark(conn, name, table.wire_columns)

    def _release(self, owner: str | None) -> None:
        if owner is not None:
            with _owners_lock:
                _owners.discard(owner)

    def close(self) -> None:
        """Stop background sync, close the SDK's connections and HTTP client. Idempotent."""
        self.stop()
        with self._read_lock:  # never nested with self._lock: _reading() takes them the other way
            reader, self._reader = self._reader, None
        with self._lock:
            if reader is not None and (self._ctx is None or reader is not self._ctx.conn):
                reader.close()
            if self._ctx is not None:
                self._ctx.api.close()
                self._ctx.conn.close()
                self._ctx = None
            self._release(self._owner)
            self._owner = None
            self._state = ClientState.CLOSED

    def __enter__(self) -> Self:
        return self.open()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def _operation(
        self,
        name: str,
        *,
        connected: bool = False,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> Iterator[Context]:
        """Lock, check the lifecycle state, and map SQLite errors into the SDK's tree."""
        with self._lock, self._control.running(name, cancel, progress):
            if self._state is ClientState.CLOSED:
                raise ClientClosedError(name)
            if self._ctx is None:
                raise OpenRequiredError(name)
            started = time.monotonic()
            try:
                if connected:
                    self._require_connected(self._ctx, name)
                yield self._ctx
            except sqlite3.OperationalError as exc:
                text = str(exc)
                if "locked" in text or "busy" in text:
                    raise DatabaseBusyError(f"{name}: {text}; retry the call") from exc
                raise LocalStoreError(f"{name}: {text}") from exc
            except sqlite3.Error as exc:
                raise LocalStoreError(f"{name}: {exc}") from exc
            except (ServerRejectedError, ProtocolError):
                self._ctx.forget_capabilities()  # the server may have changed: ask again
                raise
            finally:
                logger.debug("%s took %.3fs", name, time.monotonic() - started)

    @contextmanager
    def _reading(self, name: str) -> Iterator[sqlite3.Connection]:
        """The status connection (no client lock: a running sync never delays a status read)."""
        with self._read_lock:
            if self._state is ClientState.CLOSED:
                raise ClientClosedError(name)
            if self._reader is None:
                raise OpenRequiredError(name)
            try:
                if self._ctx is not None and self._reader is self._ctx.conn:
                    with self._lock:  # in-memory: one shared connection
                        yield self._reader
                else:
                    yield self._reader
            except sqlite3.Error as exc:
                raise LocalStoreError(f"{name}: {exc}") from exc

    def _require_connected(self, ctx: Context, name: str, *, gates: bool = True) -> None:
        state = read_state(ctx.conn)
        if state.operation == "remote_replace" or not state.attached:
            raise AttachRequiredError(name)
        if self._session_user != state.user_id:
            raise AttachRequiredError(name)
        if not gates:
            return
        if state.operation == "source_recovery":
            raise SourceRecoveryRequiredError(state.recovery_reason)
        if state.rebuild_required:
            raise RebuildRequiredError(name)

    # ------------------------------------------------------------------ attach / detach

    def attach(
        self,
        user_id: str,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> AttachResult:
        """Bind the database to ``user_id``, asking the server how to start.

        Returns an :class:`AttachResult` whose outcome is ``RESUMED`` (already attached: no
        network), ``STARTED_EMPTY``, ``SEEDED_FROM_LOCAL`` (push to seed the account),
        ``USED_REMOTE_STATE`` (local managed data replaced by the account's snapshot) or
        ``RETRY_LATER`` (another device is initializing the account: wait ``retry_after``).

        Raises :class:`AttachConflictError` if attached to another user,
        :class:`LifecycleUnsupportedError` for servers without ``/sync/connect``, and
        transport/server errors (nothing changes locally in that case).
        """
        if not user_id or not user_id.strip():
            raise ValueError("attach() needs a non-empty user_id")
        with self._operation("attach", cancel=cancel, progress=progress) as ctx:
            if not read_state(ctx.conn).attached:
                check_foreign_keys(ctx.conn, ctx.tables, self._config.foreign_keys, self._path)
            result = _lifecycle.attach(ctx, user_id)
            if result.attached:
                self._session_user = user_id
            logger.info("attach %s: %s", user_id, result.outcome)
            return result

    def detach(self) -> DetachResult:
        """Wipe the managed tables and return to anonymous, unless changes are pending.

        Returns ``BLOCKED_PENDING_CHANGES`` with the pending count instead of losing data;
        use :meth:`sync_then_detach` to push first. Local writes after a detach are captured
        as anonymous changes again.
        """
        with self._operation("detach") as ctx:
            result = _lifecycle.detach(ctx)
            if result.detached:
                self._session_user = None
            logger.info("detach: %s", result.outcome)
            return result

    def sync_then_detach(
        self,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> SyncThenDetachResult:
        """Sync until nothing is pending (a few rounds at most), then detach."""
        self.stop()  # the background loop would keep syncing a database being wiped
        with self._operation("sync_then_detach", cancel=cancel, progress=progress):
            syncs: list[SyncReport] = []
            result = self.detach()
            previous = result.pending_row_count
            while not result.detached and len(syncs) < MAX_SYNC_THEN_DETACH_ROUNDS:
                syncs.append(self.sync())
                result = self.detach()
                if not result.detached and result.pending_row_count >= previous:
                    break  # no progress (the app keeps writing): report instead of looping
                previous = result.pending_row_count
            return SyncThenDetachResult(result, tuple(syncs))

    def uninstall_sync(self) -> None:
        """Remove every trigger and ``_sync_*`` table (business data stays), then close.

        Pending changes are forgotten. Opening a new client on the file installs sync afresh
        and treats all existing rows as new local rows.
        """
        self.stop()
        with self._operation("uninstall_sync") as ctx, atomic(ctx.conn):
            drop_all(ctx.conn)
            for name in STATE_TABLES:
                ctx.conn.execute(f"DROP TABLE IF EXISTS {name}")
        self.close()

    # ------------------------------------------------------------------ sync

    def push_pending(
        self,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> PushReport:
        """Push all pending local changes as one bundle and apply what the server committed.

        Returns ``NO_CHANGE`` (nothing pending) or ``COMMITTED``, with any conflicts the
        resolver settled. Safe to call again after any failure: a frozen bundle is resent with
        the same identity and nothing is lost.

        Raises :class:`AttachRequiredError`, :class:`SourceRecoveryRequiredError` /
        :class:`RebuildRequiredError` (call :meth:`rebuild`, or use :meth:`sync`),
        :class:`ReconnectRequiredError` (attach again), :class:`PushRejectedError` (fix the
        row), conflict errors, :class:`RetryExhaustedError`.
        """
        with self._operation(
            "push_pending", connected=True, cancel=cancel, progress=progress
        ) as ctx:
            self._check_version(ctx, "push_pending")
            before, _ = _migrate.rehydrate(ctx)
            return _combined(before, _push.push_pending(ctx))

    def pull_to_stable(
        self,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> PullReport:
        """Apply the server's bundles up to its current stable sequence.

        Returns ``BLOCKED_BY_PENDING_CHANGES`` (push first) when local changes exist or appear
        during the pull, ``APPLIED_SNAPSHOT`` when pruned history forced a snapshot rebuild.
        """
        with self._operation(
            "pull_to_stable", connected=True, cancel=cancel, progress=progress
        ) as ctx:
            self._check_version(ctx, "pull_to_stable")
            if not _outbox.exists(ctx.conn):  # a frozen bundle blocks the pull anyway
                _, restore = _migrate.rehydrate(ctx)
                if restore is not None:
                    seen = read_state(ctx.conn).last_bundle_seq_seen
                    return PullReport(PullOutcome.APPLIED_SNAPSHOT, seen, restore=restore)
            return self._pull(ctx)

    @staticmethod
    def _check_version(ctx: Context, operation: str) -> None:
        """The version gate: nothing is sent or changed for an app the server does not serve."""
        ctx.check_schema_version(operation, read_state(ctx.conn).source_id)

    @staticmethod
    def _pull(ctx: Context) -> PullReport:
        return _pull.pull_to_stable(
            ctx,
            read_state(ctx.conn).source_id,
            on_pruned=lambda: _lifecycle.rebuild_keep_source(ctx),
        )

    def sync(
        self,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> SyncReport:
        """:meth:`push_pending` then :meth:`pull_to_stable`, repeated while writes interleave.

        Also runs a pending rebuild or source recovery (:meth:`rebuild`) once when needed, and
        the re-hydration of tables a local schema change marked (``SyncReport.rehydrated``).
        Like every call that talks to the server, it first checks the server's client schema
        version gate and raises :class:`UpgradeRequiredError` before anything is sent.

        ``cancel`` (a :class:`CancelToken`, as on every sync operation) stops it at the next
        safe point with :class:`OperationCancelledError`; ``progress`` receives
        :class:`Progress` values for pushed chunks, pulled bundles and snapshot rows.
        """
        with self._operation("sync", cancel=cancel, progress=progress) as ctx:
            rounds, recovered = 0, False
            committed: PushReport | None = None
            rehydrated: RestoreSummary | None = None
            while True:
                rounds += 1
                try:
                    self._require_connected(ctx, "sync")
                    self._check_version(ctx, "sync")
                    before, restore = _migrate.rehydrate(ctx)
                    rehydrated = restore or rehydrated
                    push = _combined(before, _push.push_pending(ctx))
                    if push.outcome is PushOutcome.COMMITTED or committed is None:
                        committed = push
                    pull = self._pull(ctx)
                except (SourceRecoveryRequiredError, RebuildRequiredError):
                    if recovered:
                        raise
                    recovered = True
                    _lifecycle.rebuild(ctx)
                    continue
                blocked = pull.outcome is PullOutcome.BLOCKED_BY_PENDING_CHANGES
                if blocked and rounds < MAX_SYNC_ROUNDS:
                    continue
                logger.info(
                    "sync: push %s, pull %s, %d round(s)", push.outcome, pull.outcome, rounds
                )
                return SyncReport(committed, pull, rounds, rehydrated)

    def rebuild(
        self,
        *,
        cancel: CancelToken | None = None,
        progress: ProgressCallback | None = None,
    ) -> PullReport:
        """Replace the local managed tables by a server snapshot, keeping pending changes.

        With source recovery pending, the snapshot also rotates this device to its reserved
        new source id. Returns ``APPLIED_SNAPSHOT`` with a restore summary. Raises
        :class:`PendingChangesError` while a pushed bundle awaits completion (push first).
        """
        with self._operation("rebuild", cancel=cancel, progress=progress) as ctx:
            self._require_connected(ctx, "rebuild", gates=False)
            self._check_version(ctx, "rebuild")
            restore = _lifecycle.rebuild(ctx)
            seen = read_state(ctx.conn).last_bundle_seq_seen
            return PullReport(PullOutcome.APPLIED_SNAPSHOT, seen, restore=restore)

    # ------------------------------------------------------------------ status

    def status(self) -> SyncStatus:
        """Durable sync status (no network; answers at once, even during a sync)."""
        with self._reading("status") as conn:
            state = read_state(conn)
            return SyncStatus(
                attached=state.attached,
                user_id=state.user_id or None,
                pending_row_count=pending_row_count(conn),
                last_bundle_seq_seen=state.last_bundle_seq_seen,
                pending_initialization=bool(state.pending_initialization_id),
                rebuild_required=bool(state.rebuild_required),
                source_recovery_reason=state.recovery_reason or None,
                local_schema_version=state.schema_version or self._config.schema_version,
                tables_to_rehydrate=tuple(sorted(_marks.load_marks(conn))),
                rejected_change_count=_rejected.rejected_count(conn),
            )

    # ------------------------------------------------------------------ rejected changes

    def rejected_changes(self) -> list[RejectedChange]:
        """Local changes the server refused for good, oldest first (no network).

        A push moves a row the server cannot store (a foreign key, NOT NULL, CHECK or type
        error) here with the server's error, and keeps pushing the others. Fix the data and
        call :meth:`retry_rejected`, or give up on the change with :meth:`discard_rejected`.
        """
        with self._reading("rejected_changes") as conn:
            return _rejected.list_rejected(conn)

    def retry_rejected(self, change_id: int) -> None:
        """Make a rejected change pending again: the live row is pushed by the next push.

        Fix the local data first (e.g. restore the row it references); a refusal moves it back.
        """
        with self._operation("retry_rejected") as ctx:
            _rejected.retry(ctx.conn, change_id)

    def discard_rejected(self, change_id: int) -> None:
        """Drop a rejected change and put its local row back to the server's state.

        A row the server never had is deleted locally at once; a row the server has is
        restored from a snapshot at the next sync (its table is re-hydrated, pending changes
        are kept). A newer local edit of the same key stays pending.
        """
        with self._operation("discard_rejected") as ctx:
            _rejected.discard(ctx.conn, ctx.tables, change_id)

    def pending_row_count(self) -> int:
        """Rows waiting to be pushed (no network; answers at once, even during a sync)."""
        with self._reading("pending_row_count") as conn:
            return pending_row_count(conn)

    def last_bundle_seq_seen(self) -> int:
        """The durable pull checkpoint (no network; answers at once, even during a sync)."""
        with self._reading("last_bundle_seq_seen") as conn:
            return read_state(conn).last_bundle_seq_seen

    def source_info(self) -> SourceInfo:
        """The source id this database pushes as, and recovery state (diagnostics)."""
        with self._reading("source_info") as conn:
            state = read_state(conn)
            return SourceInfo(
                source_id=state.source_id,
                next_source_bundle_id=state.next_source_bundle_id,
                replacement_source_id=state.replacement_source_id or None,
                source_recovery_reason=state.recovery_reason or None,
                rebuild_required=bool(state.rebuild_required),
            )

    # ------------------------------------------------------------------ background sync

    def start(
        self,
        *,
        watch: bool = False,
        on_event: EventCallback | None = None,
        poll_interval: float | None = None,
    ) -> BackgroundSync:
        """Sync in a background thread until :meth:`stop` (or :meth:`close`).

        It pushes soon after local writes, pulls every ``poll_interval`` seconds and, with
        ``watch=True`` on a server that advertises ``bundle_change_watch``, as soon as the
        server's ``/sync/watch`` stream announces a bundle (falling back to polling when watch
        is off or fails). Transport errors and 429/502/503/504 are retried with jittered
        exponential backoff. ``on_event`` receives :class:`SyncEvent` values on the background
        thread. Returns the :class:`BackgroundSync` (pause/resume, events); calling it again
        while running returns the running one.
        """
        from oversqlite._background import BackgroundSync

        with self._lock:
            if self._ctx is None:
                raise OpenRequiredError("start")
            if self._background is None:
                self._background = BackgroundSync(
                    self, watch=watch, on_event=on_event, poll_interval=poll_interval
                )
                self._background.start()
            return self._background

    def stop(self, timeout: float = 10.0) -> None:
        """Stop background sync (a running operation stops at its next safe point)."""
        background, self._background = self._background, None
        if background is not None:
            background.stop(timeout)

    @property
    def background(self) -> BackgroundSync | None:
        """The running background sync, if :meth:`start` was called."""
        return self._background

    def _context(self, name: str) -> Context:
        """The open context (the background loop and watch read capabilities through it)."""
        if self._ctx is None:
            raise OpenRequiredError(name)
        return self._ctx


def _combined(before: PushReport | None, push: PushReport) -> PushReport:
    """A bundle pushed before a re-hydration and the push after it, reported as one push."""
    if before is None or before.outcome is PushOutcome.NO_CHANGE:
        return push
    if push.outcome is PushOutcome.NO_CHANGE:
        return PushReport(
            before.outcome,
            before.bundle_seq,
            before.source_bundle_id,
            before.row_count,
            before.conflicts + push.conflicts,
        )
    return PushReport(
        push.outcome,
        push.bundle_seq,
        push.source_bundle_id,
        before.row_count + push.row_count,
        before.conflicts + push.conflicts,
    )
