"""Text beyond ASCII: root names in any script."""

from __future__ import annotations

import unicodedata

import pytest
from indexing_helpers import make_docs, write_tree

from abathur_memory.core.documents import clean_root_name
from abathur_memory.embedders.fake import FakeEmbedder
from abathur_memory.errors import InvalidInput
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
