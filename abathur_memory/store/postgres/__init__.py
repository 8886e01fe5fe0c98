"""The PostgreSQL store (``--db postgresql://...``): the storage interface of
``store/protocols.py`` over a psycopg 3 connection pool, with its own numbered migrations."""
