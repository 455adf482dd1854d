-- The reference example application's business schema (go-oversync examples/nethttp_server).
-- Every table is owned by a sync scope: `_sync_scope_id` holds the user id, is the first column of
-- every unique index, and every foreign key includes it and is DEFERRABLE INITIALLY DEFERRED.
-- Idempotent: safe to run at every start.
CREATE SCHEMA IF NOT EXISTS business;

CREATE TABLE IF NOT EXISTS business.users (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    email TEXT NOT NULL,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    PRIMARY KEY (_sync_scope_id, id)
);

CREATE TABLE IF NOT EXISTS business.posts (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    title TEXT NOT NULL,
    content TEXT NOT NULL,
    author_id UUID,
    created_at TIMESTAMPTZ DEFAULT now(),
    updated_at TIMESTAMPTZ DEFAULT now(),
    PRIMARY KEY (_sync_scope_id, id),
    CONSTRAINT posts_author_id_fkey FOREIGN KEY (_sync_scope_id, author_id)
        REFERENCES business.users (_sync_scope_id, id) DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE IF NOT EXISTS business.categories (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    parent_id UUID,
    PRIMARY KEY (_sync_scope_id, id),
    CONSTRAINT categories_parent_id_fkey FOREIGN KEY (_sync_scope_id, parent_id)
        REFERENCES business.categories (_sync_scope_id, id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE IF NOT EXISTS business.teams (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    captain_member_id UUID,
    PRIMARY KEY (_sync_scope_id, id)
);

CREATE TABLE IF NOT EXISTS business.team_members (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    team_id UUID NOT NULL,
    PRIMARY KEY (_sync_scope_id, id),
    CONSTRAINT team_members_team_id_fkey FOREIGN KEY (_sync_scope_id, team_id)
        REFERENCES business.teams (_sync_scope_id, id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED
);

DO $$
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM pg_constraint WHERE conname = 'teams_captain_member_id_fkey'
            AND conrelid = 'business.teams'::regclass
    ) THEN
        ALTER TABLE business.teams ADD CONSTRAINT teams_captain_member_id_fkey
            FOREIGN KEY (_sync_scope_id, captain_member_id)
            REFERENCES business.team_members (_sync_scope_id, id) DEFERRABLE INITIALLY DEFERRED;
    END IF;
END
$$;

CREATE TABLE IF NOT EXISTS business.files (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    data BYTEA NOT NULL,
    PRIMARY KEY (_sync_scope_id, id)
);

CREATE TABLE IF NOT EXISTS business.file_reviews (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    review TEXT NOT NULL,
    file_id UUID NOT NULL,
    PRIMARY KEY (_sync_scope_id, id),
    CONSTRAINT file_reviews_file_id_fkey FOREIGN KEY (_sync_scope_id, file_id)
        REFERENCES business.files (_sync_scope_id, id) ON DELETE CASCADE
        DEFERRABLE INITIALLY DEFERRED
);

CREATE TABLE IF NOT EXISTS business.typed_rows (
    _sync_scope_id TEXT NOT NULL,
    id UUID NOT NULL,
    name TEXT NOT NULL,
    note TEXT NULL,
    count_value BIGINT NULL,
    enabled_flag BIGINT NOT NULL,
    rating DOUBLE PRECISION NULL,
    data BYTEA NULL,
    created_at TIMESTAMPTZ NULL,
    PRIMARY KEY (_sync_scope_id, id)
);
