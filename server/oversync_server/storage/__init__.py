"""PostgreSQL storage of the sync server: the `sync` schema, the catalog, capture and state."""
