"""The optional chat model (issue 15, parts 5 and 7): it judges updates (only its verdict
makes a contradiction), writes the distilled text of episodic clusters and, when asked,
a summary of promoted session events; off by default; a model that is down, slow or
answers garbage leaves the deterministic pass, says so, and writes nothing wrongly.
Against a local server that speaks Ollama's chat API and the OpenAI one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any

import pytest
from acting import Acting, Bound, open_acting
from backends import Raw
from chat_stub import ChatStub
from cli_helpers import run_cli
from conftest import settings_for
from mcp import Client
from mcp_helpers import call, connected
from ollama_stub import unused_port
from test_consolidation import NS, fillers, seed

from abathur_memory.errors import InvalidInput
from abathur_memory.memory.consolidation import ConsolidationReport
from abathur_memory.memory.model_help import parse_verdict
from abathur_memory.memory.proposals import Proposal

pytestmark = pytest.mark.anyio

APIS = ("ollama", "openai")
DISTILLED = "Biscuit the dog is walked in the park on several days of the week."
SUMMARY = "We chose PostgreSQL because of pgvector."


def model(system: str, user: str) -> str:
    """A model with fixed answers: it judges by the facts of the two memories."""
    if '"verdict"' in system:
        if "peanuts" in user:
            return '{"verdict": "contradicts", "reason": "allergic and not allergic"}'
        if "green tea" in user:
            return '```json\n{"verdict": "compatible", "reason": "both can hold"}\n```'
        return '{"verdict": "updates", "reason": "the newer one replaces the older"}'
    if "Events, in order" in user:
        return json.dumps({"text": SUMMARY})
    return json.dumps({"text": DISTILLED})


async def seed_more(memories: Bound) -> None:
    """seed() (a duplicate, a near duplicate, an update, a cluster) and two more subjects."""
    await seed(memories)
    await memories.put(NS, "allergy", "allergic to peanuts")
    await memories.put(NS, "allergy_v2", "not allergic to peanuts, the test was negative")
    await memories.put(NS, "drink", "drinks coffee in the morning, but green tea after lunch")
    await memories.put(NS, "drink_v2", "however busy, drinks green tea every afternoon")


def by_kind(report: ConsolidationReport) -> dict[str, list[Proposal]]:
    found: dict[str, list[Proposal]] = {}
    for p in report.proposals:
        found.setdefault(p.kind, []).append(p)
    return found


def keys(proposal: Proposal) -> list[str]:
    return sorted(m.key for m in proposal.members)


def modelled(
    db_url: str, stub: ChatStub | None, api: str = "ollama", **more: Any
) -> contextlib.AbstractAsyncContextManager[Acting]:
    settings = stub.settings(api) if stub is not None else {}
    return open_acting(settings_for(db_url, **settings, **more))


async def counts(raw: Raw) -> tuple[int, int]:
    entries = (await raw.fetchone("SELECT count(*) FROM memory_entries"))[0]
    links = (await raw.fetchone("SELECT count(*) FROM memory_links"))[0]
    return entries, links


async def test_off_by_default_no_model_is_asked(db_url):
    """Without chat_model nothing is sent, even with an endpoint configured, and promotion
    refuses a summary it cannot write (before writing anything)."""
    with ChatStub(model) as stub:
        async with modelled(db_url, None, chat_base_url=stub.host) as acting:
            assert acting.runtime.settings.chat_model == ""
            await seed_more(acting.memories)
            report = await acting.consolidation.consolidate(acting.principal, NS)
            assert "model" not in report.notes
            assert all("model" not in p.evidence for p in report.proposals)
            assert "contradiction" not in by_kind(report)
            session = await acting.sessions.create()
            await acting.sessions.append(session.id, "message", "user", "we chose postgres")
            before = await counts(acting.raw)
            with pytest.raises(InvalidInput, match="chat_model"):
                await acting.promotion.promote(acting.principal, session.id, NS, 1, 1, True)
            assert await counts(acting.raw) == before
        assert stub.requests == []


@pytest.mark.parametrize("api", APIS)
async def test_model_verdicts_land_in_proposals(db_url, api, monkeypatch):
    monkeypatch.setenv("ABATHUR_CHAT_API_KEY", "sk-test-secret")
    async with modelled(db_url, None) as plain:
        await seed_more(plain.memories)
        deterministic = by_kind(await plain.consolidation.consolidate(plain.principal, NS))
    with ChatStub(model) as stub:
        async with modelled(db_url, stub, api) as acting:
            report = await acting.consolidation.consolidate(acting.principal, NS)
            found = by_kind(report)
            # updates: the deterministic proposal (same id, same links) with the verdict
            (city,) = [p for p in found["update"] if keys(p) == ["city", "city_v2"]]
            (det_city,) = [p for p in deterministic["update"] if keys(p) == ["city", "city_v2"]]
            assert city.id == det_city.id and city.links == det_city.links
            assert city.evidence["model"] == {
                "model": f"{api}:judge-1",
                "verdict": "updates",
                "reason": "the newer one replaces the older",
            }
            # contradicts: a contradiction, linked contradicts (newer to older), not superseded
            (allergy,) = found["contradiction"]
            assert keys(allergy) == ["allergy", "allergy_v2"]
            assert [(x.link_type, x.from_key, x.to_key) for x in allergy.links] == [
                ("contradicts", "allergy_v2", "allergy")
            ]
            assert allergy.evidence["model"]["verdict"] == "contradicts"
            assert allergy.id not in {p.id for ps in deterministic.values() for p in ps}
            # compatible: still an update, but at a quarter of its confidence, another id
            (drink,) = [p for p in found["update"] if keys(p) == ["drink", "drink_v2"]]
            (det_drink,) = [p for p in deterministic["update"] if keys(p) == ["drink", "drink_v2"]]
            assert drink.evidence["model"]["verdict"] == "compatible"
            assert drink.confidence == pytest.approx(det_drink.confidence / 4)
            assert drink.id != det_drink.id
            assert report.notes["model"] == {
                "model": f"{api}:judge-1",
                "asked": 4,  # three subjects judged, one cluster distilled
                "answered": 4,
                "fell_back": 0,
            }
            judged = [r for r in stub.chats if '"verdict"' in r["body"]["messages"][0]["content"]]
            assert len(judged) == 3
            request = judged[0]
            assert request["path"] == ("/api/chat" if api == "ollama" else "/v1/chat/completions")
            assert request["body"]["model"] == "judge-1"
            headers = {k.lower(): v for k, v in request["headers"].items()}
            assert headers["authorization"] == "Bearer sk-test-secret"
            if api == "ollama":
                assert request["body"]["format"] == "json"
            # applying the contradiction marks both memories, hides neither
            before = len(stub.chats)
            applied = await acting.consolidation.consolidate(
                acting.principal, NS, dry_run=False, apply=[allergy.id]
            )
            assert applied.applied == [allergy.id]
            assert len(stub.chats) == before  # the same answers, remembered: not asked again
            listed = {e.key for e in (await acting.memories.list(NS)).entries}
            assert {"allergy", "allergy_v2"} <= listed
            links = await acting.links.readable_links(acting.principal, NS, "allergy_v2")
            assert [(x.link_type, x.to_key) for x in links] == [("contradicts", "allergy")]


@pytest.mark.parametrize("api", APIS)
async def test_the_distilled_text_comes_from_the_model(db_url, api):
    with ChatStub(model) as stub:
        async with modelled(db_url, stub, api) as acting:
            await seed(acting.memories)
            report = await acting.consolidation.consolidate(acting.principal, NS)
            (cluster,) = by_kind(report)["episodic_cluster"]
            assert cluster.new_memory is not None  # a cluster proposes its distilled memory
            value = cluster.new_memory.value
            assert value["text"] == DISTILLED and value["written_by"] == f"{api}:judge-1"
            assert len(value["facts"]) == 3  # the union of the members' texts stays
            assert cluster.evidence["model"] == {"model": f"{api}:judge-1", "wrote": "text"}
            assert {x.from_key for x in cluster.links} == {cluster.new_memory.key}
            (asked,) = [r for r in stub.chats if "Memories, oldest first" in str(r["body"])]
            prompt = asked["body"]["messages"][1]["content"]
            assert all(f"on {day}" in prompt for day in ("monday", "tuesday", "friday"))
            applied = await acting.consolidation.consolidate(
                acting.principal, NS, dry_run=False, apply=[cluster.id]
            )
            assert applied.applied == [cluster.id]
            got = await acting.memories.get(NS, cluster.new_memory.key)
            assert got.value["text"] == DISTILLED and got.memory_type == "semantic"


FAILURES = [(api, mode) for mode in ("down", "error", "broken", "garbage", "slow") for api in APIS]


@pytest.mark.parametrize(("api", "mode"), FAILURES, ids=[f"{a}-{m}" for a, m in FAILURES])
async def test_a_failing_model_leaves_the_deterministic_pass(db_url, api, mode, caplog):
    """Down, HTTP 500, a body that is no chat reply, an answer that is no verdict, a
    timeout: the proposals are the deterministic ones, each says why, the run's notes
    say what failed (one line); a model's proposal from an earlier run is not applied."""
    async with modelled(db_url, None) as plain:
        await seed_more(plain.memories)
        deterministic = await plain.consolidation.consolidate(plain.principal, NS)
    with ChatStub(model) as good:  # a run with a working model: its own proposals
        async with modelled(db_url, good, api) as acting:
            judged = await acting.consolidation.consolidate(acting.principal, NS)
    made_by_model = [
        p.id for p in judged.proposals if p.id not in {d.id for d in deterministic.proposals}
    ]
    assert len(made_by_model) == 3  # the contradiction, the compatible update, the cluster
    answer = (lambda s, u: "The older one, I think.") if mode == "garbage" else model
    with ChatStub(answer) as stub:
        stub.mode = mode
        settings = stub.settings(api)
        if mode == "down":
            settings["chat_base_url"] = settings["chat_base_url"].replace(
                str(stub.server.server_address[1]), str(unused_port())
            )
        async with open_acting(settings_for(db_url, **settings, chat_timeout_s=0.5)) as acting:
            report = await acting.consolidation.consolidate(acting.principal, NS)
            shown = [(p.id, p.kind, p.links, p.new_memory) for p in report.proposals]
            assert shown == [(p.id, p.kind, p.links, p.new_memory) for p in deterministic.proposals]
            notes = report.notes["model"]
            assert notes["answered"] == 0 and notes["fell_back"] == 4
            assert len(notes["errors"]) >= 1 and "\n" not in notes["errors"][0]
            assert f"chat model {api}:judge-1" in notes["errors"][0]
            for p in report.proposals:
                if p.kind in ("update", "episodic_cluster"):
                    assert p.evidence["model"]["fell_back"], p
            # down: one attempt at most, then not asked again in the run; garbage: each asked
            assert len(stub.chats) == {"down": 0, "garbage": 4}.get(mode, 1)
            before = await counts(acting.raw)
            applied = await acting.consolidation.consolidate(
                acting.principal, NS, dry_run=False, apply=made_by_model
            )
            assert applied.applied == [] and [s.id for s in applied.skipped] == made_by_model
            assert all("chat model" in s.reason for s in applied.skipped)
            assert await counts(acting.raw) == before  # nothing written
    assert "sk-" not in caplog.text


async def test_but_and_however_never_make_a_contradiction(db_url):
    """Pairs full of "but" and "however", with no model and with a model that never says
    contradicts: no contradiction is proposed; the judge is told these words are none."""
    pairs = [
        ("plan", "ships on Friday, but only if the tests pass"),
        ("plan_v2", "however late, ships on Friday"),
        ("diet", "eats meat, but never pork"),
        ("diet_v2", "vegetarian now; however, eats fish"),
        ("note_a", "likes cats, but is allergic to them"),
        ("note_b", "however, likes cats a lot"),
    ]
    with ChatStub(lambda s, u: '{"verdict": "updates", "reason": "newer"}') as stub:
        for configured in (None, stub):
            async with modelled(db_url, configured) as acting:
                for key, text in [*fillers(), *pairs]:
                    await acting.memories.put(NS, key, text)
                report = await acting.consolidation.consolidate(acting.principal, NS)
                assert {p.kind for p in report.proposals} <= {"update", "near_duplicate"}
                assert all(x.link_type != "contradicts" for p in report.proposals for x in p.links)
                if configured is not None:
                    assert report.notes["model"]["answered"] == 2
        (system,) = {r["body"]["messages"][0]["content"] for r in stub.chats}
        assert '"but" or "however" are not a contradiction' in " ".join(system.split())


async def test_the_run_stops_asking_at_its_budget(db_url):
    with ChatStub(model) as stub:
        async with modelled(db_url, stub, chat_max_calls=2) as acting:
            await seed_more(acting.memories)
            report = await acting.consolidation.consolidate(acting.principal, NS)
            notes = report.notes["model"]
            assert (notes["asked"], notes["answered"], notes["fell_back"]) == (2, 2, 2)
            spent = [p for p in report.proposals if "fell_back" in p.evidence.get("model", {})]
            assert len(spent) == 2 and all(
                "calls" in p.evidence["model"]["fell_back"] for p in spent
            )
            assert len(stub.chats) == 2


def test_a_verdict_is_one_of_three_or_garbage():
    assert parse_verdict('{"verdict": "Contradicts", "reason": "x"}').verdict == "contradicts"
    assert parse_verdict('Sure! {"verdict": "updates"}').reason == ""
    for reply in ("contradicts", '{"verdict": "maybe"}', '["updates"]', '{"verdict": 1}', "{"):
        with pytest.raises(ValueError):
            parse_verdict(reply)


async def _session(acting: Acting) -> str:
    session = await acting.sessions.create()
    for text in ("we chose postgres", "because of pgvector", "lunch?"):
        await acting.sessions.append(session.id, "message", "user", {"text": text})
    return session.id


@pytest.mark.parametrize("api", APIS)
async def test_promote_with_a_summary_writes_it_once(db_url, api):
    with ChatStub(model) as stub:
        async with modelled(db_url, stub, api) as acting:
            session_id = await _session(acting)
            done = await acting.promotion.promote(acting.principal, session_id, NS, 1, 3, True)
            key = f"session-{session_id}-1-3-summary"
            assert done.summary == key and done.keys[-1] == key and done.note is None
            assert (done.created, done.unchanged, done.links_created) == (4, 0, 4)
            got = await acting.memories.get(NS, key)
            assert got.value == {"text": SUMMARY, "written_by": f"{api}:judge-1"}
            assert got.memory_type == "semantic"
            assert got.metadata == {"session_id": session_id, "seq_start": 1, "seq_end": 3}
            links = await acting.links.readable_links(acting.principal, NS, key)
            assert [(x.link_type, x.to_session, x.seq_start, x.seq_end) for x in links] == [
                ("derived_from", session_id, 1, 3)
            ]
            (asked,) = stub.chats
            prompt = asked["body"]["messages"][1]["content"]
            assert "we chose postgres" in prompt and "lunch?" in prompt
            before = await counts(acting.raw)
            again = await acting.promotion.promote(acting.principal, session_id, NS, 1, 3, True)
            assert (again.created, again.unchanged) == (0, 4) and again.summary == key
            assert len(stub.chats) == 1  # not asked again
            assert await counts(acting.raw) == before


async def test_promote_when_the_model_fails_keeps_the_events_and_says_why(db_url):
    with ChatStub(lambda s, u: "no idea") as stub:
        async with modelled(db_url, stub, "openai") as acting:
            session_id = await _session(acting)
            done = await acting.promotion.promote(acting.principal, session_id, NS, 1, 2, True)
            assert (done.created, done.summary) == (2, None)
            assert done.note.startswith("no summary: chat model openai:judge-1 answered garbage")
            stub.mode = "error"
            done = await acting.promotion.promote(acting.principal, session_id, NS, 1, 3, True)
            assert (done.created, done.unchanged, done.summary) == (1, 2, None)
            assert "HTTP 500" in done.note
            listed = {e.key for e in (await acting.memories.list(NS)).entries}
            assert not any(k.endswith("-summary") for k in listed)


async def test_the_tools_with_a_model(db_url):
    with ChatStub(model) as stub:
        async with connected(db_url, **stub.settings("openai")) as client:
            session = await call(client, "session_create")
            await call(
                client,
                "session_append",
                session_id=session["id"],
                event_type="m",
                actor="user",
                content="we chose postgres because of pgvector",
            )
            args = {"session_id": session["id"], "namespace": NS, "seq_start": 1, "seq_end": 1}
            plain = await call(client, "session_promote", **args)
            assert "summary" not in plain and len(stub.chats) == 0  # off unless asked
            done = await call(client, "session_promote", **args, summary=True)
            assert done["summary"] == f"session-{session['id']}-1-1-summary"
            assert done["created"] == 1 and done["unchanged"] == 1
            await _allergies(client)
            proposed = await call(client, "memory_consolidate", prefix=NS)
            assert [p["kind"] for p in proposed["proposals"]] == ["contradiction"]
            assert proposed["notes"]["model"]["answered"] == 1


async def _allergies(client: Client) -> None:
    await call(client, "memory_put", namespace=NS, key="allergy", value="allergic to peanuts")
    await call(client, "memory_put", namespace=NS, key="allergy_v2", value="not allergic")


def test_the_command_with_a_model(db_url, capsys, monkeypatch):
    async def seeded() -> None:
        async with connected(db_url) as client:
            await _allergies(client)

    asyncio.run(seeded())
    base = ("consolidate", "--db", str(db_url), "--user", "alice", "--project", "website")
    with ChatStub(model) as stub:
        for name, value in stub.settings("ollama").items():
            monkeypatch.setenv(f"ABATHUR_{name.upper()}", value)
        result = run_cli(capsys, *base, "--prefix", NS)
        assert result.code == 0, result.err
        assert "contradiction" in result.out
        assert "chat model ollama:judge-1: 1 answered, 0 left to the deterministic" in result.out
        stub.mode = "error"
        result = run_cli(capsys, *base, "--prefix", NS)
        assert result.code == 0, result.err
        assert "1 left to the deterministic pass (chat model ollama:judge-1 at" in result.out
        assert "HTTP 500" in result.out and "contradiction" not in result.out
        assert len(stub.chats) == 2


def test_chat_settings_are_checked(monkeypatch):
    from abathur_memory.config import load_settings

    with pytest.raises(InvalidInput, match="chat_base_url"):
        load_settings(chat_model="openai:gpt-4o-mini")
    with pytest.raises(InvalidInput, match="chat_model"):
        load_settings(chat_model="llama3.2")
    with pytest.raises(InvalidInput, match="chat_base_url"):
        load_settings(chat_model="ollama:llama3.2", chat_base_url="localhost:11434")
    settings = load_settings(chat_model="ollama:llama3.2")
    assert settings.chat_base_url == "" and settings.chat_timeout_s == 60


async def test_a_refused_key_is_an_error_of_one_line_without_the_key(monkeypatch, caplog):
    from abathur_memory.chat.openai_chat import OpenAIChat
    from abathur_memory.errors import Unavailable

    caplog.set_level(logging.DEBUG)
    with ChatStub(model) as stub:
        stub.mode = "error"
        chat = OpenAIChat("m", f"{stub.host}/v1", timeout=2, api_key="sk-very-secret")
        with pytest.raises(Unavailable) as caught:
            await chat.complete("s", "u")
        await chat.close()
    message = str(caught.value)
    assert "HTTP 500" in message and "\n" not in message
    assert "sk-very-secret" not in message and "sk-very-secret" not in caplog.text


async def test_chat_errors_say_what_to_do():
    from abathur_memory.chat.ollama_chat import OllamaChat
    from abathur_memory.chat.openai_chat import OpenAIChat
    from abathur_memory.errors import Unavailable

    with ChatStub(model) as stub:
        stub.missing = {"llama9"}
        ollama = OllamaChat("llama9", stub.host, timeout=2)
        with pytest.raises(Unavailable, match="run `ollama pull llama9`"):
            await ollama.complete("s", "u")
        await ollama.close()
        stub.mode = "slow"
        for chat in (
            OllamaChat("m", stub.host, timeout=0.2),
            OpenAIChat("m", f"{stub.host}/v1", timeout=0.2),
        ):
            with pytest.raises(Unavailable, match=r"no answer within 0.2 s \(chat_timeout_s\)"):
                await chat.complete("s", "u")
            await chat.close()
    down = OpenAIChat("m", f"http://127.0.0.1:{unused_port()}/v1", timeout=2)
    with pytest.raises(Unavailable, match="cannot reach it"):
        await down.complete("s", "u")
    await down.close()
