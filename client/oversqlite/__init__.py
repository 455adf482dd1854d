"""oversqlite: the Python SQLite client SDK of oversync."""
