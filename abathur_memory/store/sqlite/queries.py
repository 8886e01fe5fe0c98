"""The queries on the hot path, shared by the services that run them and the doctor that
checks their plans. Keeping one copy means `doctor` tests the SQL that actually runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from abathur_memory.store.sqlite import rows
from abathur_memory.store.sqlite.readable import STILL_HOLDS

# Latest live version of one key: idx_memory_namespace_key_version answers it directly.
MEMORY_GET_LATEST = """
SELECT * FROM memory_entries
WHERE namespace = :namespace AND key = :key AND is_deleted = 0
ORDER BY version DESC
LIMIT 1
"""

# One page of the latest live version of every key under a namespace prefix, on ':'
# boundaries: `user:alice` matches `user:alice` and `user:alice:prefs`, never `user:alice2`.
# The index range is [prefix, prefix || ';') (';' follows ':'), the substr() test drops
# siblings such as `user:alice2` that fall inside it, and the row-value comparison seeks to
# the page cursor. Rows come out in index order, so no sort is needed. Values longer than
# :cut bytes are cut (rows.cut(): a listing never reads them whole into Python). What no
# longer holds (superseded, a duplicate, validity ended) is left out unless
# :include_superseded.
MEMORY_LIST_PAGE = f"""
SELECT {rows.listed_memory_columns(":cut")} FROM memory_entries AS m
WHERE m.namespace >= :prefix AND m.namespace < :prefix || ';'
  AND (m.namespace = :prefix OR substr(m.namespace, 1, length(:prefix) + 1) = :prefix || ':')
  AND (m.namespace, m.key) > (:after_namespace, :after_key)
  AND m.is_deleted = 0
  AND (:memory_type IS NULL OR m.memory_type = :memory_type)
  AND m.version = (SELECT MAX(v.version) FROM memory_entries AS v
                   WHERE v.namespace = m.namespace AND v.key = m.key)
  AND (:include_superseded OR ({STILL_HOLDS}))
ORDER BY m.namespace, m.key
LIMIT :limit
"""

SESSIONS_ACTIVE = """
SELECT * FROM sessions
WHERE status IN ('active', 'paused')
ORDER BY last_update_time DESC
LIMIT :limit
"""

DOCUMENT_BY_PATH = """
SELECT * FROM document_index WHERE file_path = :file_path
"""

DOCUMENTS_PENDING = """
SELECT * FROM document_index
WHERE sync_status IN ('pending', 'stale')
ORDER BY last_synced_at
LIMIT :limit
"""


@dataclass(frozen=True)
class HotQuery:
    name: str
    sql: str
    params: dict[str, object]
    indexes: tuple[str, ...]  # the plan must use one of these
    table: str  # the table the index belongs to
    others: tuple[str, ...] = ()  # other tables the query reads


HOT_QUERIES = (
    HotQuery(
        "memory get-latest",
        MEMORY_GET_LATEST,
        {"namespace": "user:x", "key": "k"},
        ("idx_memory_namespace_key_version",),
        "memory_entries",
    ),
    HotQuery(
        "namespace listing",
        MEMORY_LIST_PAGE,
        {
            "prefix": "user:x",
            "memory_type": None,
            "after_namespace": "",
            "after_key": "",
            "limit": 50,
            "cut": 4096,
            "include_superseded": 0,
        },
        ("idx_memory_namespace_key_version", "sqlite_autoindex_memory_entries_1"),
        "memory_entries",
        ("memory_links",),
    ),
    HotQuery(
        "active sessions",
        SESSIONS_ACTIVE,
        {"limit": 50},
        ("idx_sessions_status_updated",),
        "sessions",
    ),
    HotQuery(
        "document by path",
        DOCUMENT_BY_PATH,
        {"file_path": "a.md"},
        ("idx_document_file_path",),
        "document_index",
    ),
    HotQuery(
        "pending documents",
        DOCUMENTS_PENDING,
        {"limit": 50},
        ("idx_document_sync_status",),
        "document_index",
    ),
)
