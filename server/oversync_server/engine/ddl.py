"""The `sync` schema, layout `server_postgres_sync_v1` (reference server.md §1.4), as SQL text.

Table for table and column for column the reference layout, with the same constraints and the
same meaning of every value, so that a database written by either server can be served by the
other. `schema.py` runs this; nothing else should create sync objects.

Deliberate differences (docs/deviations.md): the redundant second unique index on
`snapshot_session_rows (snapshot_id, table_id, key_bytes)` (server.md §17.15) is not created; the
UNIQUE constraint already provides that index. `snapshot_sessions` has one extra column,
`source_id` (default '', the last column; `UPGRADE_DDL` adds it to an existing layout) and its
index, so a source's new snapshot session replaces its older one and the per-user cap is cheap.
Two extra tables (`EXTRA_TABLES`): `sync.registered_columns` records the columns of every
registered table as bootstrap last served them, so that `oversync-server schema check` can tell
a removed, renamed or retyped column (docs/schema-changes.md); `sync.snapshot_pages` holds the
rows of the snapshot sessions this server creates, already rendered as wire JSON, a page of rows
per table row (`engine.snapshots`; a session the Go server created, or this one with
`snapshot_storage: reference`, keeps its rows in `snapshot_session_rows` and is served from
there). The Go server validates only
`sync.meta` and `sync.table_catalog` of an existing layout, so the extras do not bother it.
"""

from __future__ import annotations

from typing import Final

LAYOUT_NAME: Final = "server_postgres_sync_v1"
PROTOCOL_LABEL: Final = "v1"
# pg_advisory_xact_lock key serialising bootstraps: "oversync" in ASCII, as the reference uses.
BOOTSTRAP_LOCK_KEY: Final = 0x6F76657273796E63

SYNC_TABLES: Final = (
    "sync.meta",
    "sync.table_catalog",
    "sync.user_state",
    "sync.scope_state",
    "sync.source_state",
    "sync.row_state",
    "sync.bundle_capture_stage",
    "sync.bundle_log",
    "sync.bundle_rows",
    "sync.push_sessions",
    "sync.push_session_rows",
    "sync.snapshot_sessions",
    "sync.snapshot_session_rows",
)
# oversync-py's own tables in schema `sync` (not in the reference layout).
EXTRA_TABLES: Final = ("sync.registered_columns", "sync.snapshot_pages")

# The columns of each registered table as last bootstrapped (`engine.schema.record_columns`).
# No foreign key to table_catalog: the reference's foreign keys stay the only ones in `sync`.
REGISTERED_COLUMNS_DDL: Final = """
CREATE TABLE IF NOT EXISTS sync.registered_columns (
    table_id INTEGER NOT NULL,
    column_name TEXT NOT NULL,
    ordinal INTEGER NOT NULL,
    type_name TEXT NOT NULL,
    sql_type TEXT NOT NULL,
    not_null BOOLEAN NOT NULL,
    has_default BOOLEAN NOT NULL,
    generated BOOLEAN NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (table_id, column_name)
);
"""

# The rows of a snapshot session created by this server, a page per row (`engine.snapshots`):
# rows first_ordinal .. first_ordinal + row_count - 1 as their SnapshotRow wire JSON joined by
# ',' (`rows_wire`, UTF-8, stored uncompressed out of line so a chunk reads only the bytes it
# serves), `row_ends[i]` the byte offset just past row i. `payload_bytes` sums the rows'
# payload text lengths (the session's byte_count). The foreign key makes every session delete,
# the Go server's included, take its pages along. UNLOGGED: pages are a short-lived rendering of
# data that is logged elsewhere, so they cost no WAL (a 100k-row session writes ~30 MB of
# pages); a crash or a failover empties the table, and a chunk read then answers
# `snapshot_session_expired` (`engine.snapshots.read_chunk`): the client starts a new session.
SNAPSHOT_PAGES_DDL: Final = """
CREATE UNLOGGED TABLE IF NOT EXISTS sync.snapshot_pages (
    snapshot_id UUID NOT NULL REFERENCES sync.snapshot_sessions (snapshot_id) ON DELETE CASCADE,
    first_ordinal BIGINT NOT NULL,
    row_count INTEGER NOT NULL,
    payload_bytes BIGINT NOT NULL,
    row_ends INTEGER[] NOT NULL,
    rows_wire BYTEA NOT NULL,
    PRIMARY KEY (snapshot_id, first_ordinal)
);
ALTER TABLE sync.snapshot_pages ALTER COLUMN rows_wire SET STORAGE EXTERNAL;
"""
# A table an older oversync-py created logged (the rewrite copies only live sessions' pages).
_SNAPSHOT_PAGES_UNLOGGED: Final = """
DO $$ BEGIN
    IF (SELECT relpersistence FROM pg_class WHERE oid = 'sync.snapshot_pages'::regclass) = 'p'
    THEN ALTER TABLE sync.snapshot_pages SET UNLOGGED;
    END IF;
END $$;
"""

SCHEMA_DDL: Final = (
    """
CREATE SCHEMA IF NOT EXISTS sync;

CREATE TABLE IF NOT EXISTS sync.meta (
    singleton_key BOOLEAN PRIMARY KEY CHECK (singleton_key),
    protocol_label TEXT NOT NULL DEFAULT 'v1',
    layout_name TEXT NOT NULL
);

CREATE TABLE IF NOT EXISTS sync.table_catalog (
    table_id INTEGER PRIMARY KEY,
    schema_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    sync_key_column TEXT NOT NULL,
    sync_key_kind SMALLINT NOT NULL,
    UNIQUE (schema_name, table_name),
    CHECK (sync_key_kind IN (1, 2))
);

CREATE TABLE IF NOT EXISTS sync.user_state (
    user_pk BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id TEXT NOT NULL UNIQUE,
    next_bundle_seq BIGINT NOT NULL DEFAULT 1 CHECK (next_bundle_seq >= 1),
    retained_bundle_floor BIGINT NOT NULL DEFAULT 0,
    CONSTRAINT user_state_retained_floor_check
        CHECK (retained_bundle_floor >= 0 AND retained_bundle_floor <= next_bundle_seq - 1)
);

CREATE TABLE IF NOT EXISTS sync.scope_state (
    user_pk BIGINT PRIMARY KEY REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    state_code SMALLINT NOT NULL CHECK (state_code IN (0, 1, 2)),
    initializer_source_id TEXT,
    initialization_id UUID,
    lease_expires_at TIMESTAMPTZ,
    initialized_at TIMESTAMPTZ,
    initialized_by_source_id TEXT,
    CONSTRAINT scope_state_fields_check CHECK (
        (state_code = 0
            AND initializer_source_id IS NULL AND initialization_id IS NULL
            AND lease_expires_at IS NULL
            AND initialized_at IS NULL AND initialized_by_source_id IS NULL)
        OR (state_code = 1
            AND initializer_source_id IS NOT NULL AND initialization_id IS NOT NULL
            AND lease_expires_at IS NOT NULL
            AND initialized_at IS NULL AND initialized_by_source_id IS NULL)
        OR (state_code = 2
            AND initializer_source_id IS NULL AND initialization_id IS NULL
            AND lease_expires_at IS NULL
            AND initialized_at IS NOT NULL AND initialized_by_source_id IS NOT NULL)
    )
);

CREATE TABLE IF NOT EXISTS sync.source_state (
    user_pk BIGINT NOT NULL REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    source_id TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('active', 'reserved', 'retired')),
    max_committed_source_bundle_id BIGINT NOT NULL DEFAULT 0
        CHECK (max_committed_source_bundle_id >= 0),
    replaced_by_source_id TEXT NOT NULL DEFAULT '',
    retirement_reason TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (user_pk, source_id),
    CONSTRAINT source_state_active_check CHECK (
        state <> 'active' OR (replaced_by_source_id = '' AND retirement_reason = '')),
    CONSTRAINT source_state_reserved_check CHECK (
        state <> 'reserved' OR (replaced_by_source_id = '' AND retirement_reason = ''
            AND max_committed_source_bundle_id = 0)),
    CONSTRAINT source_state_retired_check CHECK (
        state <> 'retired' OR (replaced_by_source_id <> '' AND retirement_reason <> ''))
);

CREATE TABLE IF NOT EXISTS sync.row_state (
    user_pk BIGINT NOT NULL REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    table_id INTEGER NOT NULL REFERENCES sync.table_catalog (table_id),
    key_bytes BYTEA NOT NULL,
    bundle_seq BIGINT NOT NULL,
    deleted BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (user_pk, table_id, key_bytes)
);
CREATE INDEX IF NOT EXISTS rs_user_live_snapshot_idx
    ON sync.row_state (user_pk, table_id, key_bytes) WHERE deleted = FALSE;

CREATE TABLE IF NOT EXISTS sync.bundle_capture_stage (
    capture_ordinal BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    txid BIGINT NOT NULL,
    user_pk BIGINT NOT NULL REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    table_id INTEGER NOT NULL REFERENCES sync.table_catalog (table_id),
    op_code SMALLINT NOT NULL CHECK (op_code IN (1, 2, 3)),
    key_bytes BYTEA NOT NULL,
    payload_db JSONB,
    CHECK ((op_code = 3 AND payload_db IS NULL)
        OR (op_code IN (1, 2) AND payload_db IS NOT NULL))
);
CREATE INDEX IF NOT EXISTS bcs_tx_user_ordinal_idx
    ON sync.bundle_capture_stage (txid, user_pk, capture_ordinal);

CREATE TABLE IF NOT EXISTS sync.bundle_log (
    user_pk BIGINT NOT NULL REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    bundle_seq BIGINT NOT NULL,
    source_id TEXT NOT NULL,
    source_bundle_id BIGINT NOT NULL,
    row_count BIGINT NOT NULL,
    byte_count BIGINT NOT NULL,
    bundle_hash BYTEA NOT NULL,
    committed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (user_pk, bundle_seq),
    CONSTRAINT bundle_log_source_tuple_key UNIQUE (user_pk, source_id, source_bundle_id)
);

-- The user_state FK is implied by the bundle_log one; it is kept because the reference has it.
CREATE TABLE IF NOT EXISTS sync.bundle_rows (
    user_pk BIGINT NOT NULL REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    bundle_seq BIGINT NOT NULL,
    row_ordinal BIGINT NOT NULL,
    table_id INTEGER NOT NULL REFERENCES sync.table_catalog (table_id),
    key_bytes BYTEA NOT NULL,
    op_code SMALLINT NOT NULL CHECK (op_code IN (1, 2, 3)),
    payload_wire JSON,
    PRIMARY KEY (user_pk, bundle_seq, row_ordinal),
    CONSTRAINT bundle_rows_bundle_fk FOREIGN KEY (user_pk, bundle_seq)
        REFERENCES sync.bundle_log (user_pk, bundle_seq) ON DELETE CASCADE,
    CHECK ((op_code = 3 AND payload_wire IS NULL)
        OR (op_code IN (1, 2) AND payload_wire IS NOT NULL))
);

CREATE TABLE IF NOT EXISTS sync.push_sessions (
    push_id UUID PRIMARY KEY,
    user_pk BIGINT NOT NULL REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    source_id TEXT NOT NULL,
    source_bundle_id BIGINT NOT NULL,
    planned_row_count BIGINT NOT NULL,
    next_expected_row_ordinal BIGINT NOT NULL DEFAULT 0,
    initialization_id UUID NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    UNIQUE (user_pk, source_id, source_bundle_id),
    CHECK (planned_row_count > 0
        AND next_expected_row_ordinal >= 0
        AND next_expected_row_ordinal <= planned_row_count)
);
CREATE INDEX IF NOT EXISTS ps_expires_at_idx ON sync.push_sessions (expires_at);

CREATE TABLE IF NOT EXISTS sync.push_session_rows (
    push_id UUID NOT NULL REFERENCES sync.push_sessions (push_id) ON DELETE CASCADE,
    row_ordinal BIGINT NOT NULL,
    table_id INTEGER NOT NULL REFERENCES sync.table_catalog (table_id),
    key_bytes BYTEA NOT NULL,
    op_code SMALLINT NOT NULL CHECK (op_code IN (1, 2, 3)),
    base_bundle_seq BIGINT NOT NULL,
    payload_apply JSON,
    PRIMARY KEY (push_id, row_ordinal),
    CHECK ((op_code = 3 AND payload_apply IS NULL)
        OR (op_code IN (1, 2) AND payload_apply IS NOT NULL))
);

CREATE TABLE IF NOT EXISTS sync.snapshot_sessions (
    snapshot_id UUID PRIMARY KEY,
    user_pk BIGINT NOT NULL REFERENCES sync.user_state (user_pk) ON DELETE CASCADE,
    snapshot_bundle_seq BIGINT NOT NULL,
    row_count BIGINT NOT NULL DEFAULT 0,
    byte_count BIGINT NOT NULL DEFAULT 0,
    expires_at TIMESTAMPTZ NOT NULL,
    source_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS ss_expires_at_idx ON sync.snapshot_sessions (expires_at);
CREATE INDEX IF NOT EXISTS ss_user_source_idx ON sync.snapshot_sessions (user_pk, source_id);

CREATE TABLE IF NOT EXISTS sync.snapshot_session_rows (
    snapshot_id UUID NOT NULL REFERENCES sync.snapshot_sessions (snapshot_id) ON DELETE CASCADE,
    row_ordinal BIGINT NOT NULL,
    table_id INTEGER NOT NULL REFERENCES sync.table_catalog (table_id),
    key_bytes BYTEA NOT NULL,
    bundle_seq BIGINT NOT NULL,
    payload_wire JSON NOT NULL,
    PRIMARY KEY (snapshot_id, row_ordinal),
    UNIQUE (snapshot_id, table_id, key_bytes)
);

CREATE SEQUENCE IF NOT EXISTS sync.accepted_push_replay_seq;
CREATE SEQUENCE IF NOT EXISTS sync.rejected_registered_write_seq;
CREATE SEQUENCE IF NOT EXISTS sync.history_pruned_error_seq;
"""
    + REGISTERED_COLUMNS_DDL
    + SNAPSHOT_PAGES_DDL
)

# Brings an existing layout (created by the reference or an older oversync-py) to SCHEMA_DDL's
# extras; run only when `UPGRADE_NEEDED_SQL` says so (ALTER TABLE locks the table).
UPGRADE_NEEDED_SQL: Final = """
SELECT NOT EXISTS (
    SELECT 1 FROM pg_attribute
    WHERE attrelid = 'sync.snapshot_sessions'::regclass AND attname = 'source_id'
      AND NOT attisdropped)
    OR to_regclass('sync.registered_columns') IS NULL
    OR to_regclass('sync.snapshot_pages') IS NULL
    OR EXISTS (SELECT 1 FROM pg_class
               WHERE oid = to_regclass('sync.snapshot_pages') AND relpersistence = 'p')
"""
UPGRADE_DDL: Final = (
    """
ALTER TABLE sync.snapshot_sessions ADD COLUMN IF NOT EXISTS source_id TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS ss_user_source_idx ON sync.snapshot_sessions (user_pk, source_id);
"""
    + REGISTERED_COLUMNS_DDL
    + SNAPSHOT_PAGES_DDL
    + _SNAPSHOT_PAGES_UNLOGGED
)

# Transaction-local: the id of a registered table whose rows the running top-level statement
# stages itself (the push commit's apply, `engine.push_commit`); the row triggers' WHEN condition
# (`engine.schema.trigger_ddl`) skips those rows. Empty or unset otherwise.
CAPTURE_DIRECT_GUC: Final = "oversync.capture_direct"

# Where those statements stage their rows in a large push (`push_commit.DIRECT_STAGE_MIN_ROWS`):
# a temporary table of the connection (no WAL, no foreign keys, no indexes; emptied at every
# commit and by every rollback), read by the finalizer beside sync.bundle_capture_stage. Its ordinals come from the stage's own identity sequence, so
# rows of both keep the order in which they were written. Nothing outside the transaction that
# wrote them ever sees these rows, as with the stage's.
DIRECT_STAGE: Final = "pg_temp.oversync_direct_stage"
DIRECT_STAGE_DDL: Final = """
CREATE TEMP TABLE IF NOT EXISTS oversync_direct_stage (
    capture_ordinal BIGINT NOT NULL,
    table_id INTEGER NOT NULL,
    op_code SMALLINT NOT NULL,
    key_bytes BYTEA NOT NULL,
    payload_db JSONB
) ON COMMIT DELETE ROWS
"""
STAGE_ORDINAL_SQL: Final = "nextval('sync.bundle_capture_stage_capture_ordinal_seq'::regclass)"

# The owner guard (BEFORE, row level) and the capture trigger (AFTER, row level), server.md §1.6.
# Both read the transaction-local bundle context (§1.7) through NULLIF(..., ''): once a transaction
# that set a placeholder GUC ends, the placeholder survives in the session with value ''.
TRIGGER_FUNCTIONS_DDL: Final = r"""
CREATE OR REPLACE FUNCTION sync.enforce_registered_row_owner() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    bundle_user text := NULLIF(current_setting('oversync.bundle_user_id', true), '');
BEGIN
    IF bundle_user IS NULL THEN
        -- sequences are not transactional: the count survives the rollback of this write
        PERFORM nextval('sync.rejected_registered_write_seq');
        RAISE EXCEPTION 'write to registered table %.% requires oversync sync bundle context',
            quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
            USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP = 'INSERT' THEN
        IF NEW._sync_scope_id IS NULL OR NEW._sync_scope_id = '' THEN
            NEW._sync_scope_id := bundle_user;
        ELSIF NEW._sync_scope_id <> bundle_user THEN
            RAISE EXCEPTION 'scope mismatch on %.%: actor % cannot write owner %',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, bundle_user, NEW._sync_scope_id
                USING ERRCODE = 'P0001';
        END IF;
        RETURN NEW;
    ELSIF TG_OP = 'UPDATE' THEN
        IF OLD._sync_scope_id IS DISTINCT FROM bundle_user THEN
            RAISE EXCEPTION 'scope mismatch on %.%: actor % cannot update owner %',
                TG_TABLE_SCHEMA, TG_TABLE_NAME, bundle_user, OLD._sync_scope_id
                USING ERRCODE = 'P0001';
        END IF;
        IF NEW._sync_scope_id IS DISTINCT FROM OLD._sync_scope_id THEN
            RAISE EXCEPTION 'scope mutation is not allowed on %.%',
                TG_TABLE_SCHEMA, TG_TABLE_NAME
                USING ERRCODE = 'P0001';
        END IF;
        RETURN NEW;
    END IF;
    IF OLD._sync_scope_id IS DISTINCT FROM bundle_user THEN
        RAISE EXCEPTION 'scope mismatch on %.%: actor % cannot delete owner %',
            TG_TABLE_SCHEMA, TG_TABLE_NAME, bundle_user, OLD._sync_scope_id
            USING ERRCODE = 'P0001';
    END IF;
    RETURN OLD;
END
$fn$;

CREATE OR REPLACE FUNCTION sync.capture_registered_row_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
    bundle_user text := NULLIF(current_setting('oversync.bundle_user_id', true), '');
    bundle_user_pk bigint := NULLIF(current_setting('oversync.bundle_user_pk', true), '')::bigint;
    key_column text := TG_ARGV[0];
    key_kind text := TG_ARGV[1];
    registered_table_id integer := TG_ARGV[2]::integer;
    new_doc jsonb;
    old_key text;
    new_key text;
    old_key_bytes bytea;
    new_key_bytes bytea;
BEGIN
    IF bundle_user IS NULL THEN
        PERFORM nextval('sync.rejected_registered_write_seq');
        RAISE EXCEPTION 'write to registered table %.% requires oversync sync bundle context',
            quote_ident(TG_TABLE_SCHEMA), quote_ident(TG_TABLE_NAME)
            USING ERRCODE = 'P0001';
    END IF;
    IF bundle_user_pk IS NULL OR key_column IS NULL OR key_kind IS NULL
            OR registered_table_id IS NULL THEN
        RAISE EXCEPTION 'oversync capture context is incomplete for %.%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'P0001';
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        IF OLD._sync_scope_id IS DISTINCT FROM bundle_user THEN
            RAISE EXCEPTION 'oversync capture scope mismatch for %.%',
                TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'P0001';
        END IF;
        old_key := to_jsonb(OLD) ->> key_column;
        old_key_bytes := CASE WHEN key_kind = '1' THEN uuid_send(old_key::uuid)
                              ELSE convert_to(old_key, 'UTF8') END;
    END IF;
    IF TG_OP = 'DELETE' THEN
        INSERT INTO sync.bundle_capture_stage (txid, user_pk, table_id, op_code, key_bytes, payload_db)
        VALUES (txid_current(), bundle_user_pk, registered_table_id, 3, old_key_bytes, NULL);
        RETURN OLD;
    END IF;
    IF NEW._sync_scope_id IS DISTINCT FROM bundle_user THEN
        RAISE EXCEPTION 'oversync capture scope mismatch for %.%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'P0001';
    END IF;
    new_doc := to_jsonb(NEW);
    new_key := new_doc ->> key_column;
    new_key_bytes := CASE WHEN key_kind = '1' THEN uuid_send(new_key::uuid)
                          ELSE convert_to(new_key, 'UTF8') END;
    new_doc := new_doc - '_sync_scope_id';
    IF TG_OP = 'UPDATE' AND old_key_bytes IS DISTINCT FROM new_key_bytes THEN
        -- a key-changing update is the delete of the old row and the insert of the new one
        INSERT INTO sync.bundle_capture_stage (txid, user_pk, table_id, op_code, key_bytes, payload_db)
        VALUES (txid_current(), bundle_user_pk, registered_table_id, 3, old_key_bytes, NULL),
               (txid_current(), bundle_user_pk, registered_table_id, 1, new_key_bytes, new_doc);
    ELSE
        INSERT INTO sync.bundle_capture_stage (txid, user_pk, table_id, op_code, key_bytes, payload_db)
        VALUES (txid_current(), bundle_user_pk, registered_table_id,
                CASE WHEN TG_OP = 'INSERT' THEN 1 ELSE 2 END, new_key_bytes, new_doc);
    END IF;
    RETURN NULL;
END
$fn$;
"""
