"""Contract tests of the LangGraph store adapter, on both backends.

Modelled on LangGraph's own store tests: langgraph-checkpoint 4.3.2 ``tests/test_store.py``
(the ``InMemoryStore`` cases: namespaces, listing, pagination, filters, search with a
query, validation of labels) and the TTL tests of langgraph-checkpoint-sqlite
(``tests/test_ttl.py``: omit expired, refresh on read, sweep, per-item and default TTL).
The same cases run against ``AbathurStore``, through the async API (the sync API has its
own test: it must run outside the event loop). The TTL cases use an injected clock instead
of sleeping. Cases about ``AsyncBatchedBaseStore``'s queue, ``get_text_at_path`` and the
embedding configuration are LangGraph's internals and are left out.

Deliberate differences are marked ``xfail(strict=True)`` with their reason (DIFFERS).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from adapter_fixtures import memory_fixture  # noqa: F401

pytest.importorskip("langgraph")

from langgraph.store.base import (
    GetOp,
    InvalidNamespaceError,
    ListNamespacesOp,
    MatchCondition,
    PutOp,
    SearchOp,
    TTLConfig,
)

from abathur_memory.adapters.langgraph import AbathurStore
from abathur_memory.errors import Forbidden, InvalidInput

pytestmark = pytest.mark.anyio

DIFFERS = {
    "index": "every memory is indexed whole by abathur-memory's pipeline: put(index=False) "
    "and per-field index paths are ignored",
    "omit": "expired items are always omitted from reads (TTLConfig omit_expired is "
    "always on): an item past its expiry is gone for every reader, swept or not",
}


class Clock:
    """A clock the test moves (TTL tests must not sleep or read the wall clock)."""

    def __init__(self) -> None:
        self.now = datetime(2030, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += timedelta(minutes=minutes)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(memory, clock):
    return AbathurStore(memory, clock=clock)


async def _put_all(store, namespaces):
    for i, ns in enumerate(namespaces):
        await store.aput(ns, f"id_{i}", {"data": f"value_{i:02d}"})


# -- namespaces and listing (test_store.py) -------------------------------------------------


async def test_list_namespaces_basic(store):
    namespaces = [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
        ("users", "123"),
        ("users", "456", "settings"),
        ("admin", "users", "789"),
    ]
    await _put_all(store, namespaces)
    ls = store.alist_namespaces
    assert sorted(await ls(prefix=("a", "b"))) == namespaces[:4]
    assert sorted(await ls(suffix=("f",))) == [("a", "b", "f"), ("a", "c", "f"), ("b", "a", "f")]
    assert sorted(await ls(prefix=("a",), suffix=("f",))) == [("a", "b", "f"), ("a", "c", "f")]
    assert sorted(await ls(prefix=("a", "b"), max_depth=3)) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert await ls(prefix=("a", "b"), limit=2) == [("a", "b", "c"), ("a", "b", "d", "e")]
    assert await ls(prefix=("a", "b"), offset=2) == [("a", "b", "d", "i"), ("a", "b", "f")]
    assert sorted(await ls(prefix=("a", "*", "f"))) == [("a", "b", "f"), ("a", "c", "f")]
    assert sorted(await ls(suffix=("*", "f"))) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert await ls(prefix=("nonexistent",)) == []
    assert await ls(prefix=("users", "123")) == [("users", "123")]


async def test_list_namespaces_with_wildcards(store):
    await _put_all(
        store,
        [
            ("users", "123"),
            ("users", "456"),
            ("users", "789", "settings"),
            ("admin", "users", "789"),
            ("guests", "123"),
            ("guests", "456", "preferences"),
        ],
    )
    assert sorted(await store.alist_namespaces(prefix=("users", "*"))) == [
        ("users", "123"),
        ("users", "456"),
        ("users", "789", "settings"),
    ]
    assert await store.alist_namespaces(suffix=("*", "preferences")) == [
        ("guests", "456", "preferences")
    ]
    assert await store.alist_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []


async def test_list_namespaces_pagination(store):
    await _put_all(store, [("namespace", f"sub_{i:02d}") for i in range(20)])
    for offset in (0, 5, 15):
        page = await store.alist_namespaces(prefix=("namespace",), limit=5, offset=offset)
        assert page == [("namespace", f"sub_{i:02d}") for i in range(offset, offset + 5)]


async def test_list_namespaces_max_depth(store):
    await _put_all(
        store,
        [("a", "b", "c", "d"), ("a", "b", "c", "e"), ("a", "b", "f"), ("a", "g"), ("h", "i", "j")],
    )
    assert sorted(await store.alist_namespaces(max_depth=2)) == [
        ("a", "b"),
        ("a", "g"),
        ("h", "i"),
    ]


async def test_list_namespaces_no_conditions_and_empty_store(store):
    assert await store.alist_namespaces() == []
    namespaces = [("a", "b"), ("c", "d"), ("e", "f", "g")]
    await _put_all(store, namespaces)
    assert sorted(await store.alist_namespaces()) == namespaces


async def test_search_pages_match_full_listing(store):
    for ns in [("a",), ("a", "b"), ("ab",), ("a", "c", "d")]:
        for i in range(7):
            await store.aput(ns, f"k{i}", {"i": i, "even": i % 2 == 0})

    def keys(items):
        return [(item.namespace, item.key) for item in items]

    full = keys(await store.asearch(("a",), limit=100))
    assert {ns for ns, _ in full} == {("a",), ("a", "b"), ("a", "c", "d")}
    assert len(full) == 21
    paged = []
    for offset in range(0, len(full), 4):
        paged += keys(await store.asearch(("a",), limit=4, offset=offset))
    assert paged == full
    even = keys(await store.asearch(("a",), filter={"even": True}, limit=100))
    assert keys(await store.asearch(("a",), filter={"even": True}, limit=3, offset=2)) == even[2:5]


async def test_cannot_put_empty_namespace(store):
    doc = {"foo": "bar"}
    for bad in [(), ("the", "thing.about"), ("some", "fun", ""), ("langgraph", "foo")]:
        with pytest.raises(InvalidNamespaceError):
            await store.aput(bad, "foo", doc)
    await store.aput(("foo", "langgraph", "foo"), "bar", doc)
    assert (await store.aget(("foo", "langgraph", "foo"), "bar")).value == doc
    assert (await store.asearch(("foo", "langgraph", "foo"), query="bar"))[0].value == doc
    await store.adelete(("foo", "langgraph", "foo"), "bar")
    assert await store.aget(("foo", "langgraph", "foo"), "bar") is None
    # past the public put: the root label "langgraph" is a rule of put only
    await store.abatch([PutOp(("langgraph", "foo"), "bar", doc)])
    assert (await store.aget(("langgraph", "foo"), "bar")).value == doc
    assert (await store.asearch(("langgraph", "foo")))[0].value == doc


INVALID_NAMESPACES = [("foo.bar",), ("foo\x00",), ("foo", ""), (123,)]


@pytest.mark.parametrize("namespace", INVALID_NAMESPACES)
async def test_rejects_invalid_namespace_labels(store, memory, namespace):
    calls = [
        store.aget(namespace, "key"),
        store.adelete(namespace, "key"),
        store.asearch(namespace),
        store.alist_namespaces(prefix=namespace),
        store.alist_namespaces(suffix=namespace),
        store.abatch([PutOp(namespace, "key", {"v": 1})]),
        store.abatch([ListNamespacesOp((MatchCondition("prefix", namespace),))]),
    ]
    for call in calls:
        with pytest.raises(InvalidNamespaceError):
            await call
    assert (await memory.memories.list("user:alice")).entries == []


async def test_search_and_listing_keep_empty_prefixes_and_wildcards(store):
    await store.aput(("tenant", "a_%"), "key", {"v": 1})
    await store.aput(("tenant", "b", "child"), "key", {"v": 1})
    assert len(await store.asearch(())) == 2
    assert [i.namespace for i in await store.asearch(("tenant", "a_%"))] == [("tenant", "a_%")]
    assert sorted(await store.alist_namespaces(prefix=("tenant", "*"), suffix=("*",))) == [
        ("tenant", "a_%"),
        ("tenant", "b", "child"),
    ]


# -- search with a query (test_store.py's vector cases, through the retrieval pipeline) -----


async def test_query_search_finds_inserted_items(store):
    docs = [
        ("doc1", {"text": "short text"}),
        ("doc2", {"text": "longer text document"}),
        ("doc3", {"text": "longest text document here"}),
        ("doc4", {"description": "text in description field"}),
        ("doc5", {"content": "text in content field"}),
        ("doc6", {"body": "text in body field"}),
    ]
    for key, value in docs:
        await store.aput(("test",), key, value)
    keys = [r.key for r in await store.asearch(("test",), query="long text")]
    assert "doc2" in keys and "doc3" in keys


async def test_query_search_follows_updates(store):
    await store.aput(("test",), "doc1", {"text": "zany zebra Xerxes"})
    await store.aput(("test",), "doc2", {"text": "something about dogs"})
    await store.aput(("test",), "doc3", {"text": "text about birds"})
    initial = await store.asearch(("test",), query="Zany Xerxes")
    assert initial[0].key == "doc1"
    await store.aput(("test",), "doc1", {"text": "new text about dogs"})
    after = await store.asearch(("test",), query="Zany Xerxes")
    after_score = next((r.score for r in after if r.key == "doc1"), 0.0)
    assert after_score < initial[0].score
    for r in await store.asearch(("test",), query="new text about dogs"):
        if r.key == "doc1":
            assert r.score > after_score


@pytest.mark.xfail(strict=True, reason=DIFFERS["index"])
async def test_put_with_index_false_is_not_found_by_query(store):
    await store.aput(("test",), "doc1", {"text": "new text about dogs"})
    await store.aput(("test",), "doc4", {"text": "new text about dogs"}, index=False)
    results = await store.asearch(("test",), query="new text about dogs", limit=3)
    assert not any(r.key == "doc4" for r in results)


async def test_query_search_with_filters(store):
    docs = [
        ("doc1", {"text": "red apple", "color": "red", "score": 4.5}),
        ("doc2", {"text": "red car", "color": "red", "score": 3.0}),
        ("doc3", {"text": "green apple", "color": "green", "score": 4.0}),
        ("doc4", {"text": "blue car", "color": "blue", "score": 3.5}),
    ]
    for key, value in docs:
        await store.aput(("test",), key, value)
    results = await store.asearch(("test",), query="apple", filter={"color": "red"})
    assert [r.key for r in results][:1] == ["doc1"] and len(results) == 2
    results = await store.asearch(("test",), query="car", filter={"color": "red"})
    assert [r.key for r in results][:1] == ["doc2"] and len(results) == 2
    # LangGraph also asserts doc4 first for "bbbbluuu": its fake embedding compares
    # characters; which item a query sharing no word ranks first depends on the model, so
    # only the filter is asserted here.
    results = await store.asearch(("test",), query="bbbbluuu", filter={"score": {"$gt": 3.2}})
    assert sorted(r.key for r in results) == ["doc1", "doc3", "doc4"]
    results = await store.asearch(
        ("test",), query="apple", filter={"score": {"$gte": 4.0}, "color": "green"}
    )
    assert [r.key for r in results] == ["doc3"]


async def test_concurrent_writes_and_filtered_searches(store):
    colors = ["red", "blue", "green", "yellow", "purple"]
    items = ["apple", "car", "house", "book", "phone"]
    docs = [
        (f"doc{i}", {"text": f"{colors[i % 5]} {items[i % 5]}", "color": colors[i % 5], "index": i})
        for i in range(50)
    ]
    await asyncio.gather(*(store.aput(("test",), k, v) for k, v in docs))
    await asyncio.gather(*(store.adelete(("test",), k) for k, _ in docs))
    await asyncio.gather(*(store.aput(("test",), k, v) for k, v in docs))
    queries: list[tuple[str, dict[str, Any]]] = [
        ("apple", {"color": "red"}),
        ("car", {"color": "blue"}),
        ("house", {"index": {"$gt": 25}}),
    ]
    found = await asyncio.gather(*(store.asearch(("test",), query=q, filter=f) for q, f in queries))
    for results, (_, wanted) in zip(found, queries, strict=True):
        assert results
        for r in results:
            if "color" in wanted:
                assert r.value["color"] == wanted["color"]
            else:
                assert r.value["index"] > 25


async def test_query_search_pagination(store):
    for i in range(5):
        await store.aput(("test",), f"doc{i}", {"text": f"test document number {i}"})
    first = await store.asearch(("test",), query="test", limit=2)
    second = await store.asearch(("test",), query="test", limit=2, offset=2)
    assert len(first) == 2 and len(second) == 2 and first[0].key != second[0].key
    assert len(await store.asearch(("test",), query="test", limit=10)) == 5


async def test_non_ascii(store):
    texts = ["这是中文", "これは日本語です", "이건 한국어야", "Это русский", "यह रूसी है"]
    for n, text in enumerate(texts, 1):
        await store.aput(("user_123", "memories"), str(n), {"text": text})
    for n, text in enumerate(texts, 1):
        assert (await store.asearch(("user_123", "memories"), query=text))[0].key == str(n)


# -- TTL (checkpoint-sqlite's test_ttl.py), with a clock the test moves ----------------------


async def test_ttl_basic(memory, clock):
    store = AbathurStore(memory, ttl_config={"default_ttl": 1}, clock=clock)
    await store.aput(("test",), "item1", {"value": "test"})
    item = await store.aget(("test",), "item1")
    assert item is not None and item.value == {"value": "test"}
    clock.advance(2)
    assert await store.sweep_ttl() == 1
    assert await store.aget(("test",), "item1") is None


async def test_ttl_refresh_on_read(memory, clock):
    store = AbathurStore(
        memory, ttl_config={"default_ttl": 1, "refresh_on_read": True}, clock=clock
    )
    await store.aput(("test",), "item1", {"value": "test"})
    clock.advance(0.7)
    assert await store.sweep_ttl() == 0
    assert await store.aget(("test",), "item1", refresh_ttl=True) is not None
    clock.advance(0.7)  # 1.4 minutes after the put, 0.7 after the refresh
    assert await store.sweep_ttl() == 0
    assert await store.aget(("test",), "item1", refresh_ttl=False) is not None
    clock.advance(1.5)
    assert await store.sweep_ttl() == 1
    assert await store.aget(("test",), "item1") is None


async def test_ttl_refresh_writes_at_most_twice_per_period(memory, clock):
    """Ours: a refresh is a version; reads refresh only when less than half is left."""
    store = AbathurStore(memory, ttl_config={"default_ttl": 10}, clock=clock)
    await store.aput(("test",), "item", {"value": 1})
    for _ in range(20):
        clock.advance(1)
        assert await store.aget(("test",), "item") is not None
    history = await memory.memories.history("user:alice:langgraph:test", "item")
    assert 2 <= len(history) <= 1 + 20 // 5


async def test_ttl_refresh_does_not_resurrect_expired_items(memory, clock):
    store = AbathurStore(memory, ttl_config={"default_ttl": 5}, clock=clock)
    await store.aput(("refresh",), "expired", {"n": 0}, ttl=1)
    await store.aput(("refresh",), "live", {"n": 1})
    clock.advance(3)
    assert await store.aget(("refresh",), "expired", refresh_ttl=True) is None
    assert "expired" not in [i.key for i in await store.asearch(("refresh",), refresh_ttl=True)]
    assert len(await memory.memories.history("user:alice:langgraph:refresh", "expired")) == 1
    assert len(await memory.memories.history("user:alice:langgraph:refresh", "live")) == 2


async def test_omit_expired_filters_read_paths_and_pages(memory, clock):
    store = AbathurStore(memory, ttl_config={"default_ttl": 5, "omit_expired": True}, clock=clock)
    await store.aput(("omit", "expired"), "e", {"data": "gone"}, ttl=1)
    await store.aput(("omit", "control"), "c", {"data": "keep"}, ttl=None)
    for k in ("a", "b", "c"):
        await store.aput(("page",), k, {"k": k})
    await store.aput(("page",), "b0", {"k": "x"}, ttl=1)
    clock.advance(2)
    assert await store.aget(("omit", "expired"), "e") is None
    assert await store.aget(("omit", "control"), "c") is not None
    assert await store.asearch(("omit", "expired")) == []
    namespaces = await store.alist_namespaces(prefix=("omit",))
    assert ("omit", "expired") not in namespaces and ("omit", "control") in namespaces
    page1 = await store.asearch(("page",), limit=2, offset=0)
    page2 = await store.asearch(("page",), limit=2, offset=2)
    assert [i.key for i in page1] == ["a", "b"] and [i.key for i in page2] == ["c"]


@pytest.mark.xfail(strict=True, reason=DIFFERS["omit"])
async def test_omit_expired_disabled_preserves_expired_items(memory, clock):
    store = AbathurStore(memory, ttl_config={"default_ttl": 1, "omit_expired": False}, clock=clock)
    await store.aput(("keep",), "k", {"data": "still-here"})
    clock.advance(2)
    assert await store.aget(("keep",), "k", refresh_ttl=False) is not None


async def test_ttl_custom_value_and_override_default(memory, clock):
    store = AbathurStore(memory, ttl_config={"default_ttl": 5}, clock=clock)
    await store.aput(("test",), "item1", {"value": "override"}, ttl=1)
    await store.aput(("test",), "item2", {"value": "default"})
    await store.aput(("test",), "item3", {"value": "permanent"}, ttl=None)
    clock.advance(2)
    await store.sweep_ttl()
    assert await store.aget(("test",), "item1") is None
    assert await store.aget(("test",), "item2", refresh_ttl=False) is not None
    clock.advance(4)
    await store.sweep_ttl()
    assert await store.aget(("test",), "item2") is None
    assert await store.aget(("test",), "item3") is not None


async def test_search_with_ttl(memory, clock):
    store = AbathurStore(memory, ttl_config={"default_ttl": 1}, clock=clock)
    await store.aput(("test",), "item1", {"value": "apple"})
    await store.aput(("test",), "item2", {"value": "banana"})
    assert [r.key for r in await store.asearch(("test",), filter={"value": "apple"})] == ["item1"]
    clock.advance(2)
    await store.sweep_ttl()
    assert await store.asearch(("test",), filter={"value": "apple"}) == []


async def test_ttl_sweeper(memory, clock):
    # langgraph types the interval as whole minutes; the adapter takes a fraction (0.06 s
    # here, so the test does not wait a minute), which the SDK's own type does not allow.
    ttl_config: TTLConfig = {
        "default_ttl": 1,
        "sweep_interval_minutes": 0.001,  # type: ignore[typeddict-item]
    }
    store = AbathurStore(memory, ttl_config=ttl_config, clock=clock)
    await store.aput(("test",), "item1", {"value": "test"})
    await store.start_ttl_sweeper()
    clock.advance(2)
    for _ in range(500):  # the sweeper runs every 0.06 s; a generous guard, not a timing
        if not (await memory.memories.list("user:alice:langgraph")).entries:
            break
        await asyncio.sleep(0.02)
    await store.stop_ttl_sweeper()
    assert (await memory.memories.list("user:alice:langgraph")).entries == []
    history = await memory.memories.history("user:alice:langgraph:test", "item1")
    assert history[-1].is_deleted  # swept is a soft delete: the history stays


# -- ours: the mapping, the guarantees underneath ------------------------------------------


async def test_tuples_map_to_namespaces_reversibly(store, memory):
    odd = ("memories", "a b", "x:y", "50%", "é")
    await store.aput(odd, "k", {"v": 1})
    entry = (await memory.memories.list("user:alice:langgraph")).entries[0]
    assert entry.namespace == "user:alice:langgraph:memories:a%20b:x%3Ay:50%25:é"
    assert (await store.asearch(("memories",)))[0].namespace == odd
    assert await store.alist_namespaces() == [odd]


async def test_every_put_is_a_version_and_delete_keeps_history(store, memory):
    await store.aput(("prefs",), "editor", {"name": "vim"})
    await store.aput(("prefs",), "editor", {"name": "helix"})
    await store.adelete(("prefs",), "editor")
    history = await memory.memories.history("user:alice:langgraph:prefs", "editor")
    assert [v.value for v in history] == [{"name": "vim"}, {"name": "helix"}]
    assert history[-1].is_deleted


async def test_batch_applies_ops_in_order(store):
    results = await store.abatch(
        [
            PutOp(("b",), "k", {"v": 1}),
            GetOp(("b",), "k"),
            PutOp(("b",), "k", {"v": 2}),
            PutOp(("b",), "k", {"v": 3}),
            SearchOp(("b",)),
            PutOp(("b",), "k", None),
            GetOp(("b",), "k"),
            ListNamespacesOp(),
        ]
    )
    assert results[1].value == {"v": 1}
    assert [i.value for i in results[4]] == [{"v": 3}]
    assert results[6] is None and results[7] == []  # the namespace went with its last item


async def test_a_bad_op_in_a_batch_changes_nothing(store, memory):
    with pytest.raises(InvalidInput):
        await store.abatch([PutOp(("ok",), "k", {"v": 1}), PutOp(("ok",), "bad\x01key", {"v": 2})])
    assert (await memory.memories.list("user:alice:langgraph")).entries == []


async def test_access_rules_apply_to_the_root(memory):
    shared = AbathurStore(memory, root="app:abathur:langgraph")  # app namespaces: read-only
    with pytest.raises(Forbidden):
        await shared.aput(("x",), "k", {"v": 1})
    with pytest.raises(Forbidden):
        await AbathurStore(memory, root="user:bob:langgraph").aget(("x",), "k")


async def test_sync_api_from_a_worker_thread_and_refusal_inside_the_loop(store):
    await asyncio.to_thread(store.put, ("sync",), "k", {"v": 1})
    item = await asyncio.to_thread(store.get, ("sync",), "k")
    assert item.value == {"v": 1}
    with pytest.raises(asyncio.InvalidStateError, match="await the async method"):
        store.get(("sync",), "k")
