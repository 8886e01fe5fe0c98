"""What a principal may read, as a SQL condition on a namespace column (the namespace
policy of memory/namespaces.py, expressed for one query so nothing unreadable is ranked)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from abathur_memory.core.principal import SCOPES, Principal
from abathur_memory.core.read_rule import ReadRule, read_rule
from abathur_memory.core.search import MemoryFilters
from abathur_memory.store.sqlite import timestamps
from abathur_memory.store.sqlite.timestamps import SQL_NOW

# A memory that no longer holds, as a condition on ``m`` (memory_entries), applied inside
# candidate selection and listings: its validity has ended, an active ``supersedes`` link
# covering its version has taken effect (the losing side of a resolved contradiction is
# superseded too), or it is the ``from`` side of an active ``duplicates`` link. ``{point}``
# is when it must hold, ``{since}`` an extra condition on its start, ``{linked}`` which
# links count (those active now, or those active at an earlier time).
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
_ACTIVE_THEN = "l.created_at <= ? AND (l.removed_at IS NULL OR l.removed_at > ?)"
STILL_HOLDS = _HOLDS.format(since="", point=SQL_NOW, linked=_ACTIVE)


def holds_sql(
    valid_at: datetime | None = None, as_of: datetime | None = None
) -> tuple[str, list[Any]]:
    """STILL_HOLDS at another time, with positional parameters: what held at ``valid_at``
    (it had started: valid_from <= valid_at < valid_to), as the store knew it at ``as_of``
    (the links made and not yet removed then). With ``as_of`` alone, what held then as
    the store knew it then: what a listing showed at that time."""
    moment = valid_at if valid_at is not None else as_of
    if moment is None:
        return STILL_HOLDS, []
    point = timestamps.to_db(moment)
    since, since_params = "", []
    if valid_at is not None:
        since, since_params = "(m.valid_from IS NULL OR m.valid_from <= ?) AND ", [point]
    linked, linked_params = _ACTIVE, []
    if as_of is not None:
        known = timestamps.to_db(as_of)
        linked, linked_params = _ACTIVE_THEN, [known, known]
    sql = _HOLDS.format(since=since, point="?", linked=linked)
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
        clauses.append(f"({column} = ? OR ({column} > ? AND {column} < ?))")
        params.extend([root, root + ":", root + ";"])

    if rule.everything:
        clauses.append("1")
    for root in rule.subtrees:
        subtree(root)
    for scope in rule.scopes:
        clauses.append(f"({column} > ? AND {column} < ?)")
        params.extend([scope + ":", scope + ";"])
    if rule.sessions_of is not None:
        clauses.append(
            f"({column} > 'session:' AND {column} < 'session;' AND EXISTS ("
            " SELECT 1 FROM sessions AS s WHERE s.user_id = ? AND s.app_name = ?"
            f" AND ({column} = 'session:' || s.id"
            f"      OR substr({column}, 1, length(s.id) + 9) = 'session:' || s.id || ':')))"
        )
        params.extend(rule.sessions_of)
    condition = "(" + (" OR ".join(clauses) or "0") + ")"
    prefix = rule.within or rule.within_scope
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
        holds, holds_params = holds_sql(filters.valid_at)
        clauses.append(holds)
        params.extend(holds_params)
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
