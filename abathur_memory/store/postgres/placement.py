"""Where the store's tables live, and where pgvector's type and operators are.

The tables go into the first schema of the connection's ``search_path`` (``current_schema()``)
and are named without a schema, so one database can hold one memory per schema. Two things
follow:

- pgvector lives in the schema it was created in (``public`` by default), which a tenant's
  ``search_path`` need not name: its type, operator class and operator are always written
  qualified with that schema (looked up in ``pg_extension``), so ``search_path=tenant``
  alone works.
- An unqualified name that is missing from the first schema resolves in a later one: a
  ``search_path`` whose later schemas hold tables of ours (another tenant's, in ``public``
  say) would read and write them. Such a path is refused when the store opens, and doctor
  reports it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Any

from abathur_memory.errors import InvalidInput

SPACE_TABLE = r"^(chunks|memory_vectors)_s[0-9]+$"

# One round trip: our schema, the path, pgvector's schema, and the later schemas of the path
# that hold tables of ours.
PROBE = f"""
SELECT current_schema(), current_setting('search_path'),
  (SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace
   WHERE e.extname = 'vector'),
  ARRAY(SELECT DISTINCT n.nspname::text FROM pg_class AS c
        JOIN pg_namespace AS n ON n.oid = c.relnamespace
        WHERE c.relkind IN ('r', 'p') AND n.nspname = ANY(current_schemas(false))
          AND n.nspname IS DISTINCT FROM current_schema()
          AND (c.relname = ANY(%s) OR c.relname ~ '{SPACE_TABLE}')
        ORDER BY 1),
  to_regclass(quote_ident(current_schema()) || '.schema_migrations') IS NOT NULL
"""
VECTOR_SCHEMA = (
    "SELECT n.nspname FROM pg_extension AS e JOIN pg_namespace AS n ON n.oid = e.extnamespace"
    " WHERE e.extname = 'vector'"
)
# A table of ours in the schema the store uses (never one found further along the path).
OWN_TABLE = "SELECT to_regclass(quote_ident(current_schema()) || '.' || %s) IS NOT NULL"

_CREATE_TABLE = re.compile(r"CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?(\w+)", re.I)


@cache
def our_tables() -> tuple[str, ...]:
    """The names of the tables the numbered migrations create (the per-space ones match
    SPACE_TABLE)."""
    from abathur_memory.store.postgres.migrate import load_migrations

    names = {"schema_migrations"}
    for migration in load_migrations():
        names.update(_CREATE_TABLE.findall(migration.sql))
    return tuple(sorted(names))


@dataclass(frozen=True)
class Placement:
    schema: str | None  # where the tables are (None: no schema of the path exists)
    search_path: str
    vector_schema: str | None  # where pgvector is (None: not installed)
    shadowed: tuple[str, ...]  # later schemas of the path that hold tables of ours
    initialised: bool  # the schema holds our tables

    def problem(self) -> str | None:
        """Why this search_path must not be used, or None."""
        if not self.shadowed or self.schema is None:
            return None
        others = ", ".join(self.shadowed)
        return (
            f"its search_path ({self.search_path}) reaches abathur-memory tables in schema "
            f"{others} besides {self.schema}, where this store's tables go: a table missing "
            f"from {self.schema} would be read and written in {others}. Set the search_path "
            f"to the one schema (options=-c search_path={self.schema}); pgvector is found in "
            "its own schema without it"
        )

    def detail(self) -> str:
        vector = f"pgvector in schema {self.vector_schema}" if self.vector_schema else "no pgvector"
        return f"tables in schema {self.schema}, {vector}, search_path {self.search_path}"


def placement_of(row: Any) -> Placement:
    schema, search_path, vector_schema, shadowed, initialised = row
    return Placement(schema, search_path, vector_schema, tuple(shadowed or ()), bool(initialised))


def check(placement: Placement, label: str) -> None:
    """InvalidInput when the search_path reaches another schema's tables of ours."""
    problem = placement.problem()
    if problem is not None:
        raise InvalidInput(f"the database {label} is not safe to use: {problem}")


# -- pgvector's names, qualified --------------------------------------------------------


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _in(schema: str | None, name: str) -> str:
    return name if schema is None else f"{quote(schema)}.{name}"


def vector_type(schema: str | None, dim: int) -> str:
    return _in(schema, f"vector({int(dim)})")


def cosine_ops(schema: str | None) -> str:
    return _in(schema, "vector_cosine_ops")


def cosine_distance(schema: str | None) -> str:
    """The ``<=>`` operator: ``OPERATOR(schema.<=>)`` (HNSW indexes still serve it)."""
    return "<=>" if schema is None else f"OPERATOR({quote(schema)}.<=>)"


def vector_type_name(schema: str) -> str:
    """The name psycopg's TypeInfo.fetch looks the type up by."""
    return _in(schema, "vector")
