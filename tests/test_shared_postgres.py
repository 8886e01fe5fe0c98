"""Several servers, one database: three `serve` processes (stand-ins for three hosts) on one
PostgreSQL, each serving several principals over HTTP with their own tokens, keep every
guarantee: no lost compare-and-set, no double task claim, one session sequence, the
namespace policy, and a revocation on one host honoured by the others."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from mcp import Client
from test_http_tokens import _cli, _token, call, client_with, serving

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

HOSTS = 3
ROUNDS = 12  # compare-and-set increments per client


@pytest.fixture
def shared(pg_url):
    assert _cli(pg_url, "init").returncode == 0
    return pg_url


async def _increment(client: Client, rounds: int) -> int:
    """Compare-and-set increments of one counter until ``rounds`` of them won."""
    won = 0
    while won < rounds:
        error, got, _ = await call(client, "memory_get", namespace="user:alice:shared", key="n")
        version, count = (got["version"], got["value"]) if not error else (0, 0)
        error, _, text = await call(
            client,
            "memory_put",
            namespace="user:alice:shared",
            key="n",
            value=count + 1,
            expected_version=version,
        )
        if not error:
            won += 1
        else:
            assert text.startswith("conflict: "), text
    return won


async def test_three_servers_on_one_postgresql_keep_every_guarantee(shared):
    alice = [_token(shared, f"alice-{n}", "--user", "alice") for n in range(HOSTS)]
    bob = _token(shared, "bob", "--user", "bob")
    with contextlib.ExitStack() as stack:
        ports = [stack.enter_context(serving(shared)) for _ in range(HOSTS)]
        async with contextlib.AsyncExitStack() as clients:
            mine = [
                await clients.enter_async_context(client_with(p, t))
                for p, t in zip(ports, alice, strict=True)
            ]
            bobs = await clients.enter_async_context(client_with(ports[-1], bob))

            # Compare-and-set from every host at once: every increment counted once.
            wins = await asyncio.gather(*(_increment(c, ROUNDS) for c in mine))
            assert wins == [ROUNDS] * HOSTS
            _, final, _ = await call(mine[0], "memory_get", namespace="user:alice:shared", key="n")
            assert final["value"] == ROUNDS * HOSTS and final["version"] == ROUNDS * HOSTS

            # Tasks claimed from every host: each exactly once.
            created = set()
            for n in range(30):
                _, task, _ = await call(mine[n % HOSTS], "task_create", prompt=f"job {n}")
                created.add(task["id"])

            async def claim_all(client: Client) -> list[str]:
                got: list[str] = []
                while True:
                    error, task, text = await call(client, "task_claim")
                    assert not error, text
                    if task.get("task") is None:
                        return got
                    got.append(task["task"]["id"])

            claimed = await asyncio.gather(*(claim_all(c) for c in mine))
            every = [t for batch in claimed for t in batch]
            assert sorted(every) == sorted(created)  # all claimed, none twice

            # One session appended to from every host: one gap-free sequence.
            _, session, _ = await call(mine[0], "session_create")
            await call(mine[0], "session_set_status", session_id=session["id"], status="active")

            async def append(client: Client, n: int) -> None:
                for i in range(8):
                    error, _, text = await call(
                        client,
                        "session_append",
                        session_id=session["id"],
                        event_type="message",
                        actor=f"host{n}",
                        content={"i": i},
                    )
                    assert not error, text

            await asyncio.gather(*(append(c, n) for n, c in enumerate(mine)))
            _, got, _ = await call(
                mine[1], "session_get", session_id=session["id"], events_limit=100
            )
            assert [e["seq"] for e in got["events"]] == list(range(1, 8 * HOSTS + 1))

            # The namespace policy, for another principal on another host.
            error, _, text = await call(bobs, "memory_get", namespace="user:alice:shared", key="n")
            assert error and text.startswith("forbidden: "), text

            # A token revoked through one host is refused by every host at once.
            assert _cli(shared, "tokens", "revoke", "alice-2").returncode == 0
            with pytest.raises(Exception):  # noqa: B017 - the transport's own error types
                await call(mine[2], "memory_get", namespace="user:alice:shared", key="n")
            error, _, _ = await call(mine[0], "memory_get", namespace="user:alice:shared", key="n")
            assert not error
