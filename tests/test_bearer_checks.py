"""Bearer checks leave a trace: refused tokens are counted and logged (rate-limited, a hash
prefix, never the token), and a check the database cannot answer is counted apart."""

from __future__ import annotations

import hashlib
import logging

import pytest

from abathur_memory.core.principal import Principal
from abathur_memory.core.throttle import Throttle
from abathur_memory.errors import Unavailable
from abathur_memory.server.auth import DatabaseTokenVerifier

pytestmark = pytest.mark.anyio


def test_the_throttle_lets_one_through_per_period_and_counts_the_rest() -> None:
    now = [100.0]
    throttle = Throttle(10, clock=lambda: now[0])
    assert throttle.ready() == 0
    assert [throttle.ready() for _ in range(4)] == [None] * 4
    now[0] += 9.9
    assert throttle.ready() is None
    now[0] += 0.1
    assert throttle.ready() == 5  # five held back since the last one let through
    assert throttle.ready() is None


async def test_refused_tokens_are_counted_and_logged_without_the_token(runtime, caplog):
    made = await runtime.tokens.create("laptop", Principal(user="alice", app="abathur"))
    revoked = await runtime.tokens.create("old", Principal(user="alice", app="abathur"))
    await runtime.tokens.revoke("old")
    verifier = DatabaseTokenVerifier()
    verifier.tokens = runtime.tokens
    now = [0.0]
    verifier._refused_warning = Throttle(10, clock=lambda: now[0])
    wrong = ["abm_" + "x" * 43, "not-even-ours", "abm_" + "y" * 500, revoked.secret]
    with caplog.at_level(logging.INFO, logger="abathur_memory.server.auth"):
        for token in wrong:
            assert await verifier.verify_token(token) is None
        now[0] += 10
        assert await verifier.verify_token(wrong[0]) is None
        accepted = await verifier.verify_token(made.secret)
    assert accepted is not None and accepted.claims is not None
    assert accepted.claims["user"] == "alice"
    assert verifier.counters.refused == 5 and verifier.counters.accepted == 1
    messages = [r.getMessage() for r in caplog.records]
    assert [r.levelno for r in caplog.records] == [logging.WARNING] * 2, messages
    first = hashlib.sha256(wrong[0].encode()).hexdigest()[:8]
    assert first in messages[0] and "3 more refused" in messages[1]
    for token in (*wrong, made.secret):
        assert all(token not in m and token[4:20] not in m for m in messages)


async def test_a_check_the_database_cannot_answer_is_counted_as_unavailable(runtime):
    verifier = DatabaseTokenVerifier()
    with pytest.raises(Unavailable, match="starting"):
        await verifier.verify_token("abm_x")
    verifier.tokens = runtime.tokens
    await runtime.store.close()
    with pytest.raises(Unavailable):
        await verifier.verify_token("abm_" + "x" * 43)
    assert verifier.counters.unavailable == 2 and verifier.counters.refused == 0
