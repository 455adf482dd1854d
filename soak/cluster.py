"""The system under test: a durable local PostgreSQL and several ``oversync-server serve``
processes on one database, startable outside pytest (reuses ``oversync_server.localpg`` and
the tests' ``ServerProcess``), with an audit of every committed bundle.

The audit is two append-only tables filled by triggers on ``sync.bundle_log`` and
``sync.bundle_rows``: it keeps the whole committed history even when retention prunes the
server's log, so the checker sees every bundle ever committed, in order. The server's code is
not changed; the triggers run inside its transactions (a rolled-back bundle leaves no trace).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import shutil
import signal
import subprocess
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
from tests.serverproc import JWT_SECRET, ServerProcess

from oversync_server.localpg import LocalPostgres, free_port, make_tempdir

__all__ = ["JWT_SECRET", "Cluster"]

_T = TypeVar("_T")

AUDIT_DDL = """
CREATE SCHEMA IF NOT EXISTS soak_audit;
CREATE TABLE IF NOT EXISTS soak_audit.bundle_events (
    event_id BIGSERIAL PRIMARY KEY, op TEXT NOT NULL, user_pk BIGINT NOT NULL,
    bundle_seq BIGINT NOT NULL, source_id TEXT NOT NULL, source_bundle_id BIGINT NOT NULL,
    row_count BIGINT NOT NULL, bundle_hash BYTEA NOT NULL);
CREATE TABLE IF NOT EXISTS soak_audit.row_events (
    event_id BIGSERIAL PRIMARY KEY, user_pk BIGINT NOT NULL, bundle_seq BIGINT NOT NULL,
    row_ordinal BIGINT NOT NULL, table_id INTEGER NOT NULL, key_bytes BYTEA NOT NULL,
    op_code SMALLINT NOT NULL, payload_wire JSON);
CREATE OR REPLACE FUNCTION soak_audit.copy_bundle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soak_audit.bundle_events
        (op, user_pk, bundle_seq, source_id, source_bundle_id, row_count, bundle_hash)
    VALUES (TG_OP, NEW.user_pk, NEW.bundle_seq, NEW.source_id, NEW.source_bundle_id,
            NEW.row_count, NEW.bundle_hash);
    RETURN NULL;
END $$;
CREATE OR REPLACE FUNCTION soak_audit.copy_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO soak_audit.row_events
        (user_pk, bundle_seq, row_ordinal, table_id, key_bytes, op_code, payload_wire)
    VALUES (NEW.user_pk, NEW.bundle_seq, NEW.row_ordinal, NEW.table_id, NEW.key_bytes,
            NEW.op_code, NEW.payload_wire);
    RETURN NULL;
END $$;
CREATE OR REPLACE TRIGGER soak_audit_bundle AFTER INSERT OR UPDATE ON sync.bundle_log
    FOR EACH ROW EXECUTE FUNCTION soak_audit.copy_bundle();
CREATE OR REPLACE TRIGGER soak_audit_row AFTER INSERT ON sync.bundle_rows
    FOR EACH ROW EXECUTE FUNCTION soak_audit.copy_row();
"""

_TERMINATE = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


def run_async(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run `coro` from sync code (in a worker thread, so it works under a running loop too)."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Cluster:
    DATABASE = "soak"

    def __init__(self, root: Path, *, servers: int, retained_bundles: int) -> None:
        self.root = root
        # durable (fsync on): a PostgreSQL restart must not lose acknowledged commits; under
        # make_tempdir because the cluster may run as another user than the soak
        self.pg_root = make_tempdir("oversync-soak-pg-")
        self.pg = LocalPostgres(self.pg_root / "pgdata", port=free_port(), ephemeral=False)
        self.server_count = servers
        self.env = {
            "OVERSYNC_RETAINED_BUNDLES_PER_USER": str(retained_bundles),
            "OVERSYNC_RETENTION_PRUNE_BATCH_SIZE": "1000",
        }
        self.servers: list[ServerProcess] = []
        self.database_url = ""
        self._starts = 0

    def start(self) -> Cluster:
        self.pg.start()
        self.database_url = self.pg.create_database(self.DATABASE, exist_ok=True)
        for _ in range(self.server_count):
            server = ServerProcess(self.database_url, env=self.env, ready_timeout=180.0)
            self.servers.append(self._start(server))
        run_async(self._execute(AUDIT_DDL))  # sync.* exists once a server has started
        return self

    def _start(self, server: ServerProcess) -> ServerProcess:
        self._starts += 1
        log_dir = self.root / "logs" / f"server-{self._starts}"
        log_dir.mkdir(parents=True, exist_ok=True)
        return server.start(log_dir)

    @property
    def ports(self) -> list[int]:
        return [server.port for server in self.servers]

    def kill_server(self, index: int, sig: signal.Signals) -> None:
        """Send `sig` to server `index`, wait for it to exit, start it again on its port."""
        server = self.servers[index]
        assert server.process is not None
        server.process.send_signal(sig)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
        self._start(server)

    def restart_dead_servers(self) -> int:
        dead = [s for s in self.servers if s.process is None or s.process.poll() is not None]
        for server in dead:
            self._start(server)
        return len(dead)

    def restart_postgres(self) -> None:
        self.pg.stop()
        self.pg.start()

    def terminate_backends(self) -> int:
        count: int = run_async(self._fetchval(_TERMINATE, self.DATABASE))
        return count

    async def _execute(self, sql: str) -> None:
        conn = await asyncpg.connect(self.database_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    async def _fetchval(self, sql: str, *args: Any) -> Any:
        conn = await asyncpg.connect(self.pg.dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        try:
            self.pg.stop()
        finally:
            shutil.rmtree(self.pg_root, ignore_errors=True)
