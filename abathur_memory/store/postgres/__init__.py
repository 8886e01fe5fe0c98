"""The PostgreSQL store (``--db postgresql://...``): the storage interface of
``store/protocols.py`` over a psycopg 3 connection pool, with its own numbered migrations.

Its drivers are the optional ``postgres`` extra: importing this package without them is
one clear error saying what to install, not a ModuleNotFoundError from deep inside."""

from __future__ import annotations

import importlib

from abathur_memory.errors import Unavailable

DRIVER_MODULES = ("psycopg", "psycopg_pool", "pgvector.psycopg")
INSTALL = (
    "from a checkout of abathur-memory, pip install '.[postgres]'; or install its packages: "
    "pip install 'psycopg[binary]>=3.2,<4' 'psycopg-pool>=3.2,<4' 'pgvector>=0.3,<1'"
)


def require_driver() -> None:
    """Unavailable, saying what to install, when the postgres extra is missing."""
    for name in DRIVER_MODULES:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise Unavailable(
                f"a postgresql:// database needs abathur-memory's postgres extra, which is not "
                f"installed ({exc}): {INSTALL}"
            ) from None


require_driver()
