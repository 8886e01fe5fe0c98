"""Storage layer: the SQLite driver, the async database (one writer, many readers), backups."""
