"""Text beyond ASCII: root names in any script, and CJK words found inside sentences by
keyword search, the same on both backends (and in a database made before either)."""

from __future__ import annotations

import unicodedata

import pytest
from backends import Raw
from conftest import settings_for
from indexing_helpers import make_docs, write_tree

from abathur_memory.core.cjk import index_grams, query_grams
from abathur_memory.core.documents import clean_root_name
from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.errors import InvalidInput
from abathur_memory.search.query import keyword_terms
from abathur_memory.search.results import Filters

# -- root names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "name"),
    [
        ("ünï cødé", "ünï-cødé"),
        ("ノート", "ノート"),
        ("日本語 メモ", "日本語-メモ"),
        ("हिन्दी", "हिन्दी"),  # vowel signs are combining marks: kept
        ("Ελληνικά_σημειώσεις", "Ελληνικά_σημειώσεις"),
        (unicodedata.normalize("NFD", "ünï"), "ünï"),  # as macOS spells a folder: NFC
        ("notes/../x", "notes-..-x"),  # never a path separator
        ("a=b c", "a-b-c"),
        ("'quoted' \"name\"", "quoted-name"),
        ("tab\tand\x00nul", "tab-and-nul"),
        ("📝 notes", "notes"),
        ("...", "root"),
        ("", "root"),
        ("x" * 80, "x" * 64),
    ],
)
def test_root_names_keep_letters_of_every_script(typed, name):
    assert clean_root_name(typed) == name


@pytest.mark.anyio
async def test_roots_with_unicode_names_work_end_to_end(store, tmp_path):
    """Named by the folder (``ünï cødé``) or by NAME= (``ノート``): searched, filtered, read,
    refreshed and renamed by those names; a name typed in NFD finds the NFC root."""
    docs = make_docs(store, FakeEmbedder(dim=64))
    plain = write_tree(tmp_path / "ünï cødé", {"a.md": "# A\n\nthe otter swims\n"})
    named = write_tree(tmp_path / "notes", {"メモ.md": "# メモ\n\nthe heron waits\n"})
    assert (await docs.add_root(plain)).root.name == "ünï-cødé"
    assert (await docs.add_root(f"ノート={named}")).root.name == "ノート"
    await docs.index()
    found = await docs.search(None, "heron", mode="keyword")
    assert [hit.path for hit in found.results] == ["ノート/メモ.md"]
    assert found.results[0].root == "ノート"
    nfd = unicodedata.normalize("NFD", "ünï-cødé")
    otter = await docs.search(None, "otter", mode="keyword", filters=Filters(root=nfd))
    assert [hit.path for hit in otter.results] == ["ünï-cødé/a.md"]
    assert "heron" in (await docs.get(None, "ノート/メモ.md")).text
    assert "otter" in (await docs.get(None, f"{nfd}/a.md")).text
    (named / "メモ.md").write_text("# メモ\n\nthe heron flies\n")
    refreshed = await docs.refresh(None, "ノート/メモ.md")
    assert refreshed.work is not None and refreshed.work.documents_done == 1
    renamed = await docs.rename_root("ノート", "日記")
    assert renamed.name == "日記"
    moved = await docs.search(None, "flies", mode="keyword")
    assert [hit.path for hit in moved.results] == ["日記/メモ.md"]
    with pytest.raises(InvalidInput, match="letters and digits"):
        await docs.rename_root("日記", "日記/2")


# -- CJK keywords ---------------------------------------------------------------------------

CORPUS = {
    "ja.md": (
        "# 日本語のメモ\n\n私は東京都に住んでいます。毎朝、電車で会社に行きます。\n\n"
        "## 料理\n\n週末にはラーメンを作るのが好きです。\n"
    ),
    "zh.md": "# 中文笔记\n\n我们明天去北京大学参观图书馆。\n",
    "ko.md": "# 한국어\n\n내일 서울에서 친구를 만나요.\n",
    "mixed.md": "# Mixed\n\nPython入門は楽しい。\n",
    "en.md": "# English\n\nThe quick brown fox jumps over the lazy dog.\n",
}

# A word inside a sentence, and the document it is in.
FINDS = [
    ("東京", "ja.md"),
    ("住んで", "ja.md"),
    ("ラーメン", "ja.md"),
    ("東京に住んでいます", "ja.md"),  # a sentence of its own, not the document's
    ("朝", "ja.md"),  # one character (毎朝)
    ("北京大学", "zh.md"),
    ("图书馆", "zh.md"),
    ("서울", "ko.md"),
    ("친구", "ko.md"),
    ("入門", "mixed.md"),
    ("python", "mixed.md"),  # the Latin letters glued to CJK
    ("fox", "en.md"),
]


def test_grams_are_pairs_and_characters_of_cjk_runs():
    assert index_grams("東京都") == "東 京 都 東京 京都"
    assert index_grams("plain English text") == ""
    assert index_grams("Python入門", "# 本") == "Python 入 門 入門 本"
    assert query_grams("東京都") == ["東京", "京都"]
    assert query_grams("京") == ["京"]
    assert query_grams("python入門") == ["python", "入門"]
    assert keyword_terms("the fox") == ["fox"]  # English queries are as before
    assert keyword_terms("東京の fox")[:4] == ["東京の", "東京", "京の", "fox"]


@pytest.fixture
async def cjk_docs(store, tmp_path):
    docs = make_docs(store, FakeEmbedder(dim=64))
    await docs.add_root(write_tree(tmp_path / "c", CORPUS))
    await docs.index()
    return docs


@pytest.mark.anyio
@pytest.mark.parametrize(("query", "document"), FINDS)
async def test_a_cjk_word_inside_a_sentence_is_found(cjk_docs, query, document):
    """Runs on both backends with the same corpus and query: both find the document."""
    found = await cjk_docs.search(None, query, mode="keyword")
    assert found.results, query
    assert found.results[0].path == f"c/{document}"
    hybrid = await cjk_docs.search(None, query)
    assert hybrid.results[0].path == f"c/{document}"


@pytest.mark.anyio
async def test_cjk_snippets_bold_the_word_and_absent_words_find_nothing(cjk_docs):
    found = await cjk_docs.search(None, "東京", mode="keyword")
    assert "**東京**" in found.results[0].snippet
    assert (await cjk_docs.search(None, "大阪", mode="keyword")).results == []


async def _as_before_cjk(raw: Raw) -> None:
    """Put the active space's tables back in the shape the previous release made: no
    ``grams`` (and on SQLite a full-text index over heading and text only)."""
    from abathur_memory.store.sqlite import space_tables

    space = await raw.store.spaces.active()
    if raw.postgres:
        await raw.execute_write(f"DROP TRIGGER {space.chunks}_grams ON {space.chunks}")
        await raw.execute_write(f"ALTER TABLE {space.chunks} DROP COLUMN grams_tsv")
        await raw.execute_write(f"ALTER TABLE {space.chunks} DROP COLUMN grams")
        await raw.execute_write("UPDATE embedding_spaces SET ddl_version = 1")
        return
    for statement in (
        f"DROP TRIGGER {space.chunks}_ai",
        f"DROP TRIGGER {space.chunks}_ad",
        f"DROP TABLE {space.fts}",
        f"ALTER TABLE {space.chunks} DROP COLUMN grams",
        *space_tables.STEPS[0](space.id),  # the first release's (IF NOT EXISTS) tables
        f"INSERT INTO {space.fts}({space.fts}) VALUES ('rebuild')",
        "UPDATE embedding_spaces SET ddl_version = 2",
    ):
        assert isinstance(statement, str)  # the first step is plain SQL
        await raw.execute_write(statement)


@pytest.mark.anyio
async def test_an_upgraded_database_finds_cjk_without_re_embedding(db_url, raw, tmp_path):
    from abathur_memory.runtime import open_runtime

    embedder = FakeEmbedder(dim=64)
    docs = make_docs(raw.store, embedder)
    await docs.add_root(write_tree(tmp_path / "c", CORPUS))
    await docs.index()
    await _as_before_cjk(raw)
    if not raw.postgres:  # (this release's PostgreSQL queries need the upgraded table)
        before = await docs.search(None, "東京", mode="keyword")
        assert before.results == []  # what the previous release answered
    embedded = embedder.embedded_texts
    async with open_runtime(settings_for(db_url)) as upgraded:  # migrates on open
        for query, document in FINDS:
            found = await upgraded.documents.search(None, query, mode="keyword")
            assert [hit.path for hit in found.results][:1] == [f"c/{document}"], query
        report = await upgraded.documents.index()
        assert report.work is not None and report.work.documents_done == 0
    assert embedder.embedded_texts == embedded


@pytest.mark.anyio
async def test_cjk_pairs_survive_migrate_to_postgresql_and_back(tmp_path, pg_url, capsys):
    """`migrate` copies ``grams``; PostgreSQL derives their tsvector as the rows arrive."""
    import asyncio

    from cli_helpers import run_cli

    from abathur_memory.runtime import open_runtime

    source, back = tmp_path / "source.db", tmp_path / "back.db"
    async with open_runtime(settings_for(source)) as runtime:
        await runtime.documents.add_root(write_tree(tmp_path / "c", CORPUS))
        await runtime.documents.index()
    for frm, to in ((str(source), pg_url), (pg_url, str(back))):
        copied = await asyncio.to_thread(run_cli, capsys, "migrate", "--db", frm, "--to", to)
        assert copied.code == 0, copied.err
        async with open_runtime(settings_for(to)) as runtime:
            for query, document in FINDS:
                found = await runtime.documents.search(None, query, mode="keyword")
                assert [hit.path for hit in found.results][:1] == [f"c/{document}"], query
