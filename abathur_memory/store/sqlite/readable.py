"""What a principal may read, as a SQL condition on a namespace column (the namespace
policy of memory/namespaces.py, expressed for one query so nothing unreadable is ranked)."""

from __future__ import annotations

from typing import Any

from abathur_memory.core.principal import SCOPES, Principal
from abathur_memory.core.search import MemoryFilters
from abathur_memory.store.sqlite import timestamps
from abathur_memory.store.sqlite.timestamps import SQL_NOW

# A memory that no longer holds, as a condition on ``m`` (memory_entries), applied inside
# candidate selection and listings: its validity has ended, an active ``supersedes`` link
# covering its version has taken effect (the losing side of a resolved contradiction is
# superseded too), or it is the ``from`` side of an active ``duplicates`` link.
STILL_HOLDS = f"""(m.valid_to IS NULL OR m.valid_to > {SQL_NOW})
  AND NOT EXISTS (SELECT 1 FROM memory_links AS l
                  WHERE l.to_namespace = m.namespace AND l.to_key = m.key
                    AND l.link_type = 'supersedes' AND l.removed_at IS NULL
                    AND l.to_version >= m.version AND l.holds_until <= {SQL_NOW})
  AND NOT EXISTS (SELECT 1 FROM memory_links AS l
                  WHERE l.from_namespace = m.namespace AND l.from_key = m.key
                    AND l.link_type = 'duplicates' AND l.removed_at IS NULL
                    AND l.from_version >= m.version)"""


def readable_sql(
    principal: Principal, prefix: str | None, column: str = "k.namespace"
) -> tuple[str, list[Any]]:
    """A condition on ``column`` (a namespace) that holds exactly for what the principal
    may read, optionally within ``prefix`` (on ':' boundaries). Positional parameters."""
    clauses: list[str] = []
    params: list[Any] = []

    def subtree(root: str) -> None:
        clauses.append(f"({column} = ? OR ({column} > ? AND {column} < ?))")
        params.extend([root, root + ":", root + ";"])

    if principal.admin:
        clauses.append("1")
    else:
        subtree(f"user:{principal.user}")
        subtree(f"app:{principal.app}")
        if principal.project:
            subtree(f"project:{principal.project}")
        clauses.append(f"({column} > 'temp:' AND {column} < 'temp;')")
        clauses.append(
            f"({column} > 'session:' AND {column} < 'session;' AND EXISTS ("
            " SELECT 1 FROM sessions AS s WHERE s.user_id = ? AND s.app_name = ?"
            f" AND ({column} = 'session:' || s.id"
            f"      OR substr({column}, 1, length(s.id) + 9) = 'session:' || s.id || ':')))"
        )
        params.extend([principal.user, principal.app])
    condition = "(" + " OR ".join(clauses) + ")"
    if prefix is not None:
        within, within_params = prefix_sql(prefix, column)
        condition += f" AND {within}"
        params.extend(within_params)
    return condition, params


def prefix_sql(prefix: str, column: str = "k.namespace") -> tuple[str, list[Any]]:
    """A condition on ``column`` for the namespaces under ``prefix`` (on ':' boundaries),
    in a form the namespace indexes serve as ranges."""
    if prefix in SCOPES:
        return f"{column} > ? AND {column} < ?", [prefix + ":", prefix + ";"]
    return f"({column} = ? OR ({column} > ? AND {column} < ?))", [
        prefix,
        prefix + ":",
        prefix + ";",
    ]


def memory_filter_sql(filters: MemoryFilters) -> tuple[str, list[Any]]:
    """`` AND ...`` conditions on ``m`` (memory_entries) and ``k`` (memory_fts_keys) for a
    search's filters, applied inside candidate selection; ``""`` when there are none (the
    caller then joins nothing more)."""
    clauses: list[str] = []
    params: list[Any] = []
    clauses.append("m.redacted_at IS NULL")  # an erased memory has nothing to find
    if not filters.include_superseded:
        clauses.append(STILL_HOLDS)
    if filters.memory_type is not None:
        clauses.append("m.memory_type = ?")
        params.append(filters.memory_type)
    if filters.after is not None:
        clauses.append("k.moment >= ?")
        params.append(timestamps.to_db(filters.after))
    if filters.before is not None:
        clauses.append("k.moment < ?")
        params.append(timestamps.to_db(filters.before))
    for name, value in filters.metadata:
        path = '$."' + name.replace('"', '""') + '"'
        if isinstance(value, bool):
            clauses.append("json_type(m.metadata, ?) = ?")
            params.extend([path, "true" if value else "false"])
        else:
            clauses.append(
                "json_type(m.metadata, ?) IN ('text', 'integer', 'real')"
                " AND json_extract(m.metadata, ?) = ?"
            )
            params.extend([path, path, value])
    return "".join(f" AND {clause}" for clause in clauses), params
