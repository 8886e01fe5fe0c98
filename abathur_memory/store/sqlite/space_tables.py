"""Tables of one embedding space, versioned like the numbered migrations.

Chunks, their full-text index and their vectors depend on the model (the vector dimension
lives in the data, the chunking in the model's token limit), so each embedding space has its
own tables, ``chunks_s<N>``, ``chunks_fts_s<N>``, ``chunk_vectors_s<N>`` and
``memory_vectors_s<N>``. They are created when a space is created, and every later change to
their shape is one more step here: ``embedding_spaces.ddl_version`` records how many steps a
space has had, and :func:`ensure_all` (run right after the numbered migrations) brings every
live space up to date. Every step is idempotent, so a space whose tables were made by an
older release that created some of them already is upgraded cleanly.
"""

from __future__ import annotations

from collections.abc import Callable

from abathur_memory.core.cjk import has_cjk, index_grams
from abathur_memory.store.sqlite import driver

FTS_TOKENIZER = "porter unicode61 remove_diacritics 2"

# A step is SQL, or a function of the connection where SQL alone cannot do it.
Statement = str | Callable[[driver.Connection], None]


def _v1_documents(space_id: int) -> list[Statement]:
    chunks, fts = f"chunks_s{space_id}", f"chunks_fts_s{space_id}"
    vectors = f"chunk_vectors_s{space_id}"
    return [
        f"""CREATE TABLE IF NOT EXISTS {chunks} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            document_id INTEGER NOT NULL REFERENCES document_index(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            heading TEXT NOT NULL,
            heading_path TEXT NOT NULL CHECK(json_valid(heading_path)),
            start_line INTEGER NOT NULL CHECK(start_line >= 1),
            end_line INTEGER NOT NULL CHECK(end_line >= start_line),
            text TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            token_count INTEGER NOT NULL,
            UNIQUE (document_id, seq)
        )""",
        f"CREATE INDEX IF NOT EXISTS {chunks}_text_hash ON {chunks}(text_hash)",
        f"""CREATE VIRTUAL TABLE IF NOT EXISTS {fts} USING fts5(
            heading, text, content='{chunks}', content_rowid='id', tokenize='{FTS_TOKENIZER}'
        )""",
        f"""CREATE TABLE IF NOT EXISTS {vectors} (
            chunk_id INTEGER PRIMARY KEY REFERENCES {chunks}(id) ON DELETE CASCADE,
            embedding BLOB NOT NULL,
            code BLOB NOT NULL
        )""",
        f"""CREATE TRIGGER IF NOT EXISTS {chunks}_ai AFTER INSERT ON {chunks} BEGIN
            INSERT INTO {fts}(rowid, heading, text) VALUES (new.id, new.heading, new.text);
        END""",
        f"""CREATE TRIGGER IF NOT EXISTS {chunks}_ad AFTER DELETE ON {chunks} BEGIN
            INSERT INTO {fts}({fts}, rowid, heading, text)
                VALUES ('delete', old.id, old.heading, old.text);
        END""",
    ]


def _v2_memory_vectors(space_id: int) -> list[Statement]:
    """Vectors of live memories (one row per part of a long value), for memory_search."""
    return [
        f"""CREATE TABLE IF NOT EXISTS memory_vectors_s{space_id} (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            entry_id INTEGER NOT NULL,
            part INTEGER NOT NULL,
            text_hash TEXT NOT NULL,
            embedding BLOB NOT NULL,
            code BLOB NOT NULL,
            UNIQUE (entry_id, part)
        )""",
    ]


def _v3_cjk_grams(space_id: int) -> list[Statement]:
    """CJK words findable inside a sentence (core/cjk.py): each chunk gets ``grams``, its
    CJK characters and pairs, and the full-text index a third column over them. FTS5 adds
    no column to a table, so it is made again: triggers dropped, ``grams`` added and filled
    for the chunks that hold CJK, the index created and rebuilt from the chunks."""
    chunks, fts = f"chunks_s{space_id}", f"chunks_fts_s{space_id}"

    def fill(conn: driver.Connection) -> None:
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({chunks})")}
        if "grams" not in present:
            conn.execute(f"ALTER TABLE {chunks} ADD COLUMN grams TEXT NOT NULL DEFAULT ''")
        last = 0
        while rows := conn.execute(
            f"SELECT id, heading, text FROM {chunks} WHERE id > ? ORDER BY id LIMIT 1000",
            (last,),
        ).fetchall():
            last = rows[-1][0]
            conn.executemany(
                f"UPDATE {chunks} SET grams = ? WHERE id = ?",
                [
                    (index_grams(row[1], row[2]), row[0])
                    for row in rows
                    if has_cjk(row[1]) or has_cjk(row[2])
                ],
            )

    return [
        f"DROP TRIGGER IF EXISTS {chunks}_ai",
        f"DROP TRIGGER IF EXISTS {chunks}_ad",
        f"DROP TABLE IF EXISTS {fts}",
        fill,
        f"""CREATE VIRTUAL TABLE {fts} USING fts5(
            heading, text, grams, content='{chunks}', content_rowid='id',
            tokenize='{FTS_TOKENIZER}'
        )""",
        f"""CREATE TRIGGER {chunks}_ai AFTER INSERT ON {chunks} BEGIN
            INSERT INTO {fts}(rowid, heading, text, grams)
                VALUES (new.id, new.heading, new.text, new.grams);
        END""",
        f"""CREATE TRIGGER {chunks}_ad AFTER DELETE ON {chunks} BEGIN
            INSERT INTO {fts}({fts}, rowid, heading, text, grams)
                VALUES ('delete', old.id, old.heading, old.text, old.grams);
        END""",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


# Step n (1-based) brings a space from ddl_version n-1 to n. Append; never edit a step.
STEPS: tuple[Callable[[int], list[Statement]], ...] = (
    _v1_documents,
    _v2_memory_vectors,
    _v3_cjk_grams,
)
LATEST = len(STEPS)


def table_names(space_id: int) -> tuple[str, ...]:
    """Every table of the space, children first (the order to drop them in)."""
    return (
        f"memory_vectors_s{space_id}",
        f"chunk_vectors_s{space_id}",
        f"chunks_fts_s{space_id}",
        f"chunks_s{space_id}",
    )


def create(conn: driver.Connection, space_id: int) -> None:
    """The tables of a new space, at the latest version (in the caller's transaction)."""
    upgrade(conn, space_id, 0)


def upgrade(conn: driver.Connection, space_id: int, version: int) -> None:
    for step in STEPS[version:]:
        for statement in step(space_id):
            if isinstance(statement, str):
                conn.execute(statement)
            else:
                statement(conn)
    conn.execute("UPDATE embedding_spaces SET ddl_version = ? WHERE id = ?", (LATEST, space_id))


def behind(conn: driver.Connection) -> list[tuple[int, int]]:
    """(space id, ddl_version) of every live space not at the latest version."""
    if not conn.execute(
        "SELECT 1 FROM pragma_table_info('embedding_spaces') WHERE name = 'ddl_version'"
    ).fetchone():
        return []
    return [
        (row[0], row[1])
        for row in conn.execute(
            "SELECT id, ddl_version FROM embedding_spaces WHERE ddl_version < ? ORDER BY id",
            (LATEST,),
        )
    ]


def ensure_all(conn: driver.Connection) -> list[int]:
    """Bring every space's tables to the latest version; returns the spaces upgraded."""
    upgraded = []
    for space_id, version in behind(conn):
        upgrade(conn, space_id, version)
        upgraded.append(space_id)
    return upgraded
