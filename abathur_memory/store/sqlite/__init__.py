"""SQLite: the embedded default backend (one file, WAL, one writer and a pool of readers)."""
