"""The sync engine: the `sync` schema, the catalog, capture and commit, scope state, retention.

Framework-free: it raises `engine.errors.SyncError` and the HTTP layer maps codes to statuses.
"""
