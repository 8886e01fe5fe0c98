"""What a principal may read, as a condition on a namespace column: SQLite's
``store/sqlite/readable.py`` in PostgreSQL's form, clause for clause, so both backends list
exactly the same memories. Namespaces are ``COLLATE "C"``: the ranges compare bytes, as
SQLite does."""

from __future__ import annotations

from typing import Any

from abathur_memory.core.principal import Principal


def readable_sql(
    principal: Principal, prefix: str | None, column: str = "k.namespace"
) -> tuple[str, list[Any]]:
    """A condition on ``column`` that holds exactly for what the principal may read,
    optionally within ``prefix`` (on ':' boundaries). Positional ``%s`` parameters."""
    clauses: list[str] = []
    params: list[Any] = []

    def subtree(root: str) -> None:
        clauses.append(f"({column} = %s OR ({column} > %s AND {column} < %s))")
        params.extend([root, root + ":", root + ";"])

    if principal.admin:
        clauses.append("true")
    else:
        subtree(f"user:{principal.user}")
        subtree(f"app:{principal.app}")
        if principal.project:
            subtree(f"project:{principal.project}")
        clauses.append(f"({column} > 'temp:' AND {column} < 'temp;')")
        clauses.append(
            f"({column} > 'session:' AND {column} < 'session;' AND EXISTS ("
            " SELECT 1 FROM sessions AS s WHERE s.user_id = %s AND s.app_name = %s"
            f" AND ({column} = 'session:' || s.id"
            f"      OR substr({column}, 1, length(s.id) + 9) = 'session:' || s.id || ':')))"
        )
        params.extend([principal.user, principal.app])
    condition = "(" + " OR ".join(clauses) + ")"
    if prefix is not None:
        if prefix in ("app", "user", "project", "session", "temp"):
            condition += f" AND {column} > %s AND {column} < %s"
            params.extend([prefix + ":", prefix + ";"])
        else:
            condition += f" AND ({column} = %s OR ({column} > %s AND {column} < %s))"
            params.extend([prefix, prefix + ":", prefix + ";"])
    return condition, params
