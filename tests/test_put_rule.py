"""A put's decision is written once (core/put_rule.py): SQLite applies it row by row and
PostgreSQL decides a batch in one statement. Generated sequences of batched puts and deletes
on both backends are held to a model that applies decide_put (issue 18, part 5)."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pytest

from abathur_memory.core.put_rule import decide_put
from abathur_memory.core.records import PreparedPut
from abathur_memory.errors import Conflict, NotFound
from abathur_memory.memory.memories import PutRequest

pytestmark = pytest.mark.anyio

NS = "user:alice:rule"
KEYS = ("a", "b", "c")
VALUES: tuple[Any, ...] = ("tea", "coffee", {"drink": "tea"}, {"drink": "tea", "cups": 2}, 3)
METADATA: tuple[dict[str, Any] | None, ...] = (None, None, {}, {"m": 1}, {"m": 2})
VALIDITY = ((None, None), ("2020-01-01T00:00:00Z", None), (None, "2030-01-01T00:00:00Z"))


@dataclass
class Live:
    value: Any
    memory_type: str
    metadata: dict[str, Any]
    valid_from: str | None
    valid_to: str | None


@dataclass
class Model:
    """What each key holds by the rule: its newest version and, unless deleted, its content."""

    newest: dict[str, int] = field(default_factory=dict)
    live: dict[str, Live] = field(default_factory=dict)

    def put(self, request: PutRequest) -> tuple[int, bool, bool]:
        current = self.live.get(request.key)
        prepared = PreparedPut(
            NS,
            request.key,
            json.dumps(request.value),
            request.memory_type,
            None if request.metadata is None else json.dumps(request.metadata),
            request.expected_version,
            _time(request.valid_from),
            _time(request.valid_to),
        )

        def same(metadata_text: str) -> bool:
            assert current is not None
            return (
                current.memory_type == request.memory_type
                and current.value == request.value
                and current.metadata == json.loads(metadata_text)
                and (current.valid_from, current.valid_to) == (request.valid_from, request.valid_to)
            )

        decision = decide_put(
            prepared,
            self.newest.get(request.key),
            None if current is None else json.dumps(current.metadata),
            same,
        )
        if not decision.unchanged:
            self.newest[request.key] = decision.version
            self.live[request.key] = Live(
                request.value,
                request.memory_type,
                json.loads(decision.metadata_text),
                request.valid_from,
                request.valid_to,
            )
        return decision.version, not decision.unchanged, decision.unchanged


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _request(rng: random.Random, model: Model, key: str) -> PutRequest:
    valid_from, valid_to = rng.choice(VALIDITY)
    live = model.newest.get(key, 0) if key in model.live else 0
    expected = rng.choice([None, None, None, live, live + 1, max(0, live - 1)])
    return PutRequest(
        NS,
        key,
        rng.choice(VALUES),
        rng.choice(("semantic", "semantic", "episodic")),
        rng.choice(METADATA),
        expected,
        valid_from,
        valid_to,
    )


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_generated_puts_follow_the_rule_on_each_backend(services, seed):
    rng = random.Random(seed)
    model = Model()
    outcomes = {"written": 0, "unchanged": 0, "conflict": 0, "deleted": 0}
    for _ in range(150):
        if model.live and rng.random() < 0.1:
            key = rng.choice(sorted(model.live))
            deleted = await services.memories.delete(NS, key)
            assert deleted.version == model.newest[key]
            del model.live[key]
            outcomes["deleted"] += 1
            continue
        batch = [_request(rng, model, rng.choice(KEYS)) for _ in range(rng.randint(1, 4))]
        trial = Model(dict(model.newest), dict(model.live))
        try:
            expected = [trial.put(request) for request in batch]
        except Conflict:
            with pytest.raises(Conflict):
                await services.memories.put_many(batch)
            outcomes["conflict"] += 1
            continue  # a batch with a lost compare-and-set writes nothing
        results = await services.memories.put_many(batch)
        assert [(r.version, r.created, r.unchanged) for r in results] == expected, batch
        model = trial
        outcomes["written"] += sum(created for _, created, _ in expected)
        outcomes["unchanged"] += sum(unchanged for _, _, unchanged in expected)
    for key in KEYS:
        if key not in model.live:
            with pytest.raises(NotFound):
                await services.memories.get(NS, key)
            continue
        entry = await services.memories.get(NS, key)
        live = model.live[key]
        stored = (entry.version, entry.value, entry.memory_type, entry.metadata)
        assert stored == (model.newest[key], live.value, live.memory_type, live.metadata)
        assert (entry.valid_from, entry.valid_to) == (
            live.valid_from and live.valid_from.replace("Z", ".000Z"),
            live.valid_to and live.valid_to.replace("Z", ".000Z"),
        )
    assert all(outcomes.values()), outcomes  # every kind of outcome was exercised
