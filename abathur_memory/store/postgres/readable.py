"""What a principal may read, as a condition on a namespace column: SQLite's
``store/sqlite/readable.py`` in PostgreSQL's form, clause for clause, so both backends list
exactly the same memories. Namespaces are ``COLLATE "C"``: the ranges compare bytes, as
SQLite does."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from abathur_memory.core.principal import Principal
from abathur_memory.core.read_rule import ReadRule, read_rule
from abathur_memory.core.search import MemoryFilters
from abathur_memory.store.postgres.times import SQL_NOW, at_ms

# What no longer holds: SQLite's STILL_HOLDS (store/sqlite/readable.py), clause for clause,
# and its template for another time.
_HOLDS = """{since}(m.valid_to IS NULL OR m.valid_to > {point})
  AND NOT EXISTS (SELECT 1 FROM memory_links AS l
                  WHERE l.to_namespace = m.namespace AND l.to_key = m.key
                    AND l.link_type = 'supersedes' AND {linked}
                    AND l.to_version >= m.version AND l.holds_until <= {point})
  AND NOT EXISTS (SELECT 1 FROM memory_links AS l
                  WHERE l.from_namespace = m.namespace AND l.from_key = m.key
                    AND l.link_type = 'duplicates' AND {linked}
                    AND l.from_version >= m.version)"""
_ACTIVE = "l.removed_at IS NULL"
_ACTIVE_THEN = "l.created_at <= %s AND (l.removed_at IS NULL OR l.removed_at > %s)"
STILL_HOLDS = _HOLDS.format(since="", point=SQL_NOW, linked=_ACTIVE)


def holds_sql(
    valid_at: datetime | None = None, as_of: datetime | None = None
) -> tuple[str, list[Any]]:
    """SQLite's holds_sql: what held at ``valid_at`` as the store knew it at ``as_of``."""
    moment = valid_at if valid_at is not None else as_of
    if moment is None:
        return STILL_HOLDS, []
    point = at_ms(moment)
    since, since_params = "", []
    if valid_at is not None:
        since, since_params = "(m.valid_from IS NULL OR m.valid_from <= %s) AND ", [point]
    linked, linked_params = _ACTIVE, []
    if as_of is not None:
        known = at_ms(as_of)
        linked, linked_params = _ACTIVE_THEN, [known, known]
    sql = _HOLDS.format(since=since, point="%s", linked=linked)
    return sql, [*since_params, point, *linked_params, point, *linked_params]


def readable_sql(
    principal: Principal, prefix: str | None, column: str = "k.namespace"
) -> tuple[str, list[Any]]:
    """A condition on ``column`` (a namespace) that holds exactly for what the principal
    may read, optionally within ``prefix`` (on ':' boundaries): core/read_rule.py's rule,
    rendered. Positional parameters."""
    return render(read_rule(principal, prefix), column)


def render(rule: ReadRule, column: str = "k.namespace") -> tuple[str, list[Any]]:
    """``rule`` as one condition on ``column``, in ranges the namespace indexes serve."""
    clauses: list[str] = []
    params: list[Any] = []

    def subtree(root: str) -> None:
        clauses.append(f"({column} = %s OR ({column} > %s AND {column} < %s))")
        params.extend([root, root + ":", root + ";"])

    if rule.everything:
        clauses.append("true")
    for root in rule.subtrees:
        subtree(root)
    for scope in rule.scopes:
        clauses.append(f"({column} > %s AND {column} < %s)")
        params.extend([scope + ":", scope + ";"])
    if rule.sessions_of is not None:
        clauses.append(
            f"({column} > 'session:' AND {column} < 'session;' AND EXISTS ("
            " SELECT 1 FROM sessions AS s WHERE s.user_id = %s AND s.app_name = %s"
            f" AND ({column} = 'session:' || s.id"
            f"      OR substr({column}, 1, length(s.id) + 9) = 'session:' || s.id || ':')))"
        )
        params.extend(rule.sessions_of)
    condition = "(" + (" OR ".join(clauses) or "false") + ")"
    if rule.within is not None:
        condition += f" AND ({column} = %s OR ({column} > %s AND {column} < %s))"
        params.extend([rule.within, rule.within + ":", rule.within + ";"])
    if rule.within_scope is not None:
        condition += f" AND {column} > %s AND {column} < %s"
        params.extend([rule.within_scope + ":", rule.within_scope + ";"])
    return condition, params


def memory_filter_sql(filters: MemoryFilters) -> tuple[str, list[Any]]:
    """`` AND ...`` conditions on ``m`` (memory_entries) and ``k`` (memory_search_index) for
    a search's filters, applied inside candidate selection (SQLite's memory_filter_sql)."""
    clauses: list[str] = []
    params: list[Any] = []
    clauses.append("m.redacted_at IS NULL")  # an erased memory has nothing to find
    if not filters.include_superseded:
        holds, holds_params = holds_sql(filters.valid_at)
        clauses.append(holds)
        params.extend(holds_params)
    if filters.memory_type is not None:
        clauses.append("m.memory_type = %s")
        params.append(filters.memory_type)
    if filters.after is not None:
        clauses.append("k.moment >= %s")
        params.append(filters.after)
    if filters.before is not None:
        clauses.append("k.moment < %s")
        params.append(filters.before)
    for name, value in filters.metadata:
        clauses.append("m.metadata @> %s::jsonb")
        params.append(json.dumps({name: value}))
    return "".join(f" AND {clause}" for clause in clauses), params
