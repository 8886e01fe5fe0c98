"""``memory_search`` over MCP against the same search in process (issue 18, part 3); prints one
JSON object.

Not a test: run it by hand, ``python -m bench.mcp_search [--out FILE] [--quick]`` (about a
minute; ``--quick``: a 10 s smoke run whose numbers mean little). ``--memories``, ``--k`` and
``--words`` (extra words per value) change the workload; ``--sdk-stdio`` serves through the
SDK's own stdio transport instead of the project's (server/stdio.py); everything lives in a
temporary directory.

The target: a small ``memory_search`` (200 memories, the fake embedding model, hybrid, k=10)
over stdio takes at most 1.1 times its in-process time plus 2 ms, at the p50.

One database of ``--memories`` chat-like memories in ``user:alice:notes`` (put through the
service, then indexed: keywords and vectors, ``pending`` 0). Five kinds of call then take
turns in blocks (``bench.common.interleaved``, the order rotating every block, so that all
see the same noise of the shared host), each over the same rotating list of queries:

- ``service``: ``runtime.memories.search`` in this process (the in-process time);
- ``stdio``: the tool ``memory_search`` through the official client (``mcp.Client``) and a
  server subprocess, ``bench/stdio_server.py`` (``abathur-memory serve``'s server plus a
  ``noop`` tool and a timing hook), both with the same arguments;
- ``stdio_noop``: the ``noop`` tool through the same client and process: the floor of a call
  (framing, pipes, dispatch), with no work and no payload;
- ``stdio_search_only``: the tool ``search_only`` through the same client and process: the
  same search run in the server, answering only its number of hits; ``stdio`` minus this is
  what the result's payload costs (ours and the SDK's serialisation, the bytes on the pipe,
  the client's parsing and checks), under the same conditions;
- ``in_memory`` and ``in_memory_noop``: the same two tools through ``Client(server)``, the
  SDK's in-memory transport in this process (no pipes, no second process).

Per call it records the wall time, this process's CPU time (``time.process_time_ns``: every
thread; the in-memory server and the in-process service run here too), and for the stdio
kinds the server process's CPU time (the sum of its threads' ``/proc/<pid>/task/*/schedstat``
run times, read outside the timed window). The server's own time inside its tool manager
(argument validation, the tool, result conversion) comes from its timing hook
(``BENCH_TOOL_TIMINGS``). CPU time says where the work is even when a loaded host stretches
wall times.

Last, one result's trip is taken apart step by step, each step timed alone (median of 2,000)
on the real result object, with the functions the server and the client run: the project's
conversion (the result model dumped once, its JSON reused as the text copy), the SDK server's
re-dump and validation of the result and its JSON-RPC framing, the SDK client's parse, result
validation and output-schema check. These use SDK internals (``mcp.server.runner``,
``mcp_types.methods``, ``mcp.client.session``); a step the installed SDK lacks is reported as
missing, not guessed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    ROOT,
    SEED,
    check,
    dist_version,
    emit,
    header,
    interleaved,
    load_average,
    percentiles,
    project_revision,
    structured,
)

USER, APP, PROJECT = "alice", "abathur", "website"
NAMESPACE = "user:alice:notes"
TOPICS = ("sailing", "the lake", "a boat", "the garden", "a recipe", "the trip", "music")
QUERIES = (
    "sailing boat lake",
    "garden tomatoes",
    "recipe with lemons",
    "trip to the mountains",
    "music lesson",
    "what did Ann say about the lake",
    "boat number 17",
    "weekend plans",
)
FLOOR_SLACK_MS = 2.0
KINDS = ("service", "stdio", "stdio_noop", "stdio_search_only", "in_memory", "in_memory_noop")
RATIO = 1.1


@dataclass(frozen=True)
class Sizes:
    memories: int = 200
    k: int = 10
    words: int = 0
    calls: int = 400  # per kind and run
    block: int = 10
    warmup: int = 40
    runs: int = 3
    step_repeats: int = 2000


QUICK = Sizes(calls=60, warmup=10, runs=1, step_repeats=200)


def settings_for(db: Path) -> Any:
    from abathur_memory.config import load_settings

    return load_settings(
        db=str(db),
        user=USER,
        app=APP,
        project=PROJECT,
        embedder="fake",
        maintenance_interval_hours=0,
    )


def value_of(i: int, words: int) -> dict[str, str]:
    topic = TOPICS[i % len(TOPICS)]
    text = f"we talked about {topic}, number {i}, and what to do next weekend"
    if words:
        text += " " + " ".join(f"word{(i * 7 + j) % 997}" for j in range(words))
    return {"speaker": "Ann" if i % 2 else "Bob", "text": text}


async def build_database(db: Path, sizes: Sizes) -> dict[str, Any]:
    """The memories, put through the service and indexed (keywords and vectors)."""
    from abathur_memory.memory.memories import PutRequest
    from abathur_memory.runtime import open_runtime

    started = time.perf_counter()
    async with open_runtime(settings_for(db)) as runtime:
        requests = [
            PutRequest(NAMESPACE, f"k{i}", value_of(i, sizes.words)) for i in range(sizes.memories)
        ]
        for first in range(0, len(requests), 100):
            await runtime.memories.put_many(runtime.principal, requests[first : first + 100])
        for _ in range(50):
            await runtime.memory_indexer.catch_up()
            res = await runtime.memories.search(runtime.principal, QUERIES[0], None, sizes.k)
            if res.pending == 0:
                break
        check(res.pending == 0, f"the index did not catch up: {res.pending} pending")
        check(res.mode_used == "hybrid", f"search ran as {res.mode_used}: {res.degraded}")
    return {"build_s": round(time.perf_counter() - started, 2)}


def children_running(module: str) -> list[int]:
    """Child processes of this one whose command line names ``module``."""
    mine = str(os.getpid())
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if stat.rsplit(")", 1)[1].split()[1] == mine and module in cmdline:
            found.append(int(entry))
    return found


def cpu_ns_of(pid: int) -> int:
    """CPU time of every thread of ``pid`` so far (schedstat: ns on a CPU)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # a thread that ended between the listing and the read
    return total


Sample = tuple[int, int, int]  # wall ns, this process's CPU ns, the server's CPU ns
Call = Callable[[str], Awaitable[Sample]]


async def measure(db: Path, sizes: Sizes, *, sdk_stdio: bool = False) -> dict[str, Any]:
    from mcp import Client, StdioServerParameters

    from abathur_memory.runtime import open_runtime
    from bench import stdio_server

    env = {
        **os.environ,
        "ABATHUR_DB": str(db),
        "ABATHUR_USER": USER,
        "ABATHUR_APP": APP,
        "ABATHUR_PROJECT": PROJECT,
        "ABATHUR_EMBEDDER": "fake",
        "ABATHUR_MAINTENANCE_INTERVAL_HOURS": "0",
        "ABATHUR_LOG_LEVEL": "WARNING",
        "BENCH_TOOL_TIMINGS": "1",
        "BENCH_SDK_STDIO": "1" if sdk_stdio else "0",
    }
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "bench.stdio_server"], env=env, cwd=str(ROOT)
    )
    in_memory_server = stdio_server.build(settings_for(db), timings=True)
    async with (
        Client(params) as stdio,
        Client(in_memory_server) as in_memory,
        open_runtime(settings_for(db)) as runtime,
    ):
        [server_pid] = children_running("bench.stdio_server")
        principal = runtime.principal

        def timed(work: Callable[[str], Awaitable[None]], remote: bool) -> Call:
            async def call(query: str) -> Sample:
                server_before = cpu_ns_of(server_pid) if remote else 0
                cpu = time.process_time_ns()
                start = time.perf_counter_ns()
                await work(query)
                wall = time.perf_counter_ns() - start
                cpu = time.process_time_ns() - cpu
                server = cpu_ns_of(server_pid) - server_before if remote else 0
                return wall, cpu, server

            return call

        async def service(query: str) -> None:
            res = await runtime.memories.search(principal, query, None, sizes.k)
            check(res.mode_used == "hybrid", f"service search ran as {res.mode_used}")

        def search_over(client: Client) -> Callable[[str], Awaitable[None]]:
            async def search(query: str) -> None:
                res = structured(
                    await client.call_tool("memory_search", {"query": query, "k": sizes.k}),
                    "memory_search",
                )
                check(res["mode_used"] == "hybrid", f"memory_search ran as {res['mode_used']}")

            return search

        def search_only_over(client: Client) -> Callable[[str], Awaitable[None]]:
            async def search_only(query: str) -> None:
                res = await client.call_tool("search_only", {"query": query, "k": sizes.k})
                check(not res.is_error, f"search_only failed: {res.content}")

            return search_only

        def noop_over(client: Client) -> Callable[[str], Awaitable[None]]:
            async def noop(_: str) -> None:
                res = await client.call_tool("noop", {})
                check(not res.is_error, f"noop failed: {res.content}")

            return noop

        calls: dict[str, Call] = {
            "service": timed(service, False),
            "stdio": timed(search_over(stdio), True),
            "stdio_noop": timed(noop_over(stdio), True),
            "stdio_search_only": timed(search_only_over(stdio), True),
            "in_memory": timed(search_over(in_memory), False),
            "in_memory_noop": timed(noop_over(in_memory), False),
        }
        queries = [QUERIES[i % len(QUERIES)] for i in range(sizes.calls)]
        await interleaved(calls, queries[: sizes.warmup], sizes.block)
        await server_tool_times(stdio)  # start the server's count afresh
        runs = []
        for run in range(sizes.runs):
            load_before = load_average()
            samples = await interleaved(calls, queries, sizes.block)
            out = summarise(samples)
            out["stdio_server_tool_p50_ms"] = await server_tool_times(stdio)
            out["load_average"] = {"before": load_before, "after": load_average()}
            runs.append(out)
            print(f"run {run + 1}: {out['verdict']}", file=sys.stderr)
        sample = await runtime.memories.search(principal, QUERIES[0], None, sizes.k)
        steps = result_steps(sample, stdio.protocol_version, sizes.step_repeats)
        client_steps = steps.setdefault("sdk_client", {})
        client_steps["output_schema_check"] = await output_check_us(stdio, QUERIES[0], sizes)
        client_steps["total"] = round(sum(v for k, v in client_steps.items() if k != "total"), 1)
    return {"runs": runs, "result_steps_us": steps}


async def output_check_us(client: Any, query: str, sizes: Sizes) -> float:
    """The client's check of one structured result against the tool's output schema
    (``ClientSession.validate_tool_result``, run on every call), median µs."""
    res = await client.call_tool("memory_search", {"query": query, "k": sizes.k})
    times = []
    for _ in range(sizes.step_repeats):
        start = time.perf_counter_ns()
        await client.session.validate_tool_result("memory_search", res)
        times.append(time.perf_counter_ns() - start)
    return round(statistics.median(times) / 1000, 1)


async def server_tool_times(client: Any) -> dict[str, float]:
    """The stdio server's median time inside its tool manager per tool, since the last ask."""
    from bench.stdio_server import TIMINGS_TOOL

    res = await client.call_tool(TIMINGS_TOOL, {})
    check(not res.is_error and bool(res.content), f"{TIMINGS_TOOL} failed: {res.content}")
    data = res.structured_content or json.loads(getattr(res.content[0], "text", "{}"))
    data = data.get("result", data)
    return {tool: round(v["p50_us"] / 1000, 3) for tool, v in data.items()}


def summarise(samples: dict[str, list[Sample]]) -> dict[str, Any]:
    """p50/p95 wall times, mean CPU per call on each side, the ratio and the target."""
    out: dict[str, Any] = {}
    for kind, values in samples.items():
        out[kind] = {
            **percentiles([w for w, _, _ in values], "ms", scale=1e-6),
            "cpu_here_ms": round(statistics.fmean(c for _, c, _ in values) / 1e6, 3),
        }
        if kind.startswith("stdio"):
            out[kind]["cpu_server_ms"] = round(statistics.fmean(s for _, _, s in values) / 1e6, 3)
    service, stdio = out["service"]["p50_ms"], out["stdio"]["p50_ms"]
    target = RATIO * service + FLOOR_SLACK_MS
    out["stdio_over_service"] = round(stdio / service, 2)
    out["in_memory_over_service"] = round(out["in_memory"]["p50_ms"] / service, 2)
    out["stdio_minus_floor_ms"] = round(stdio - out["stdio_noop"]["p50_ms"], 3)
    out["payload_ms"] = round(stdio - out["stdio_search_only"]["p50_ms"], 3)
    out["target_ms"] = round(target, 3)
    out["met"] = stdio <= target
    # The client's own work (the SDK client that users bring) is on the path of every call:
    # without it, what the server, the pipes and the second process cost.
    out["stdio_minus_client_cpu_ms"] = round(stdio - out["stdio"]["cpu_here_ms"], 3)
    out["met_without_client"] = out["stdio_minus_client_cpu_ms"] <= target
    out["verdict"] = (
        f"stdio {stdio:.2f} ms vs service {service:.2f} ms ({stdio / service:.2f}x), "
        f"target {target:.2f} ms: {'met' if stdio <= target else 'missed'}; "
        f"noop floor {out['stdio_noop']['p50_ms']:.2f} ms"
    )
    return out


def result_steps(result: Any, version: str, repeats: int) -> dict[str, Any]:
    """Each step of one result's trip timed alone on the real object (µs, median)."""

    def median_us(fn: Callable[[], Any]) -> float:
        for _ in range(min(50, repeats)):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter_ns()
            fn()
            times.append(time.perf_counter_ns() - start)
        return round(statistics.median(times) / 1000, 1)

    from abathur_memory.server import tools_memory
    from abathur_memory.server.registry import AbathurTool

    [tool] = [t for t in tools_memory.tools() if t.name == "memory_search"]
    assert isinstance(tool, AbathurTool)
    converted = tool._converted(result)
    out: dict[str, Any] = {
        "text_copy_bytes": len(getattr(converted.content[0], "text", "")),
        "ours_server": {
            "result_to_structured_and_text": median_us(lambda: tool._converted(result))
        },
    }
    try:
        from mcp.client.session import _CallToolResultAdapter
        from mcp.server.runner import _dump_result
        from mcp_types import JSONRPCResponse, jsonrpc_message_adapter
        from mcp_types import methods as sdk_methods
    except ImportError as exc:
        out["sdk_steps"] = f"missing in this SDK: {exc}"
        return out
    dumped = _dump_result(converted)
    wire = sdk_methods.serialize_server_result("tools/call", version, dumped)
    message = JSONRPCResponse(jsonrpc="2.0", id=1, result=wire)
    line = message.model_dump_json(by_alias=True, exclude_unset=True)
    parsed = jsonrpc_message_adapter.validate_json(line, by_name=False)
    raw = parsed.result  # type: ignore[union-attr]
    out["wire_bytes"] = len(line.encode())
    out["sdk_server"] = {
        "dump_result": median_us(lambda: _dump_result(converted)),
        "validate_and_dump_for_protocol": median_us(
            lambda: sdk_methods.serialize_server_result("tools/call", version, dumped)
        ),
        "frame_as_json": median_us(
            lambda: JSONRPCResponse(jsonrpc="2.0", id=1, result=wire).model_dump_json(
                by_alias=True, exclude_unset=True
            )
        ),
    }
    out["sdk_client"] = {
        "parse_message": median_us(
            lambda: jsonrpc_message_adapter.validate_json(line, by_name=False)
        ),
        "validate_result_for_protocol": median_us(
            lambda: sdk_methods.validate_server_result("tools/call", version, raw)
        ),
        "to_call_tool_result": median_us(
            lambda: _CallToolResultAdapter.validate_python(raw, by_name=False)
        ),
    }
    for side in ("ours_server", "sdk_server", "sdk_client"):
        out[side]["total"] = round(sum(out[side].values()), 1)
    return out


def median_of_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    kinds = KINDS
    out: dict[str, Any] = {
        f"{kind}_p50_ms": round(statistics.median(r[kind]["p50_ms"] for r in runs), 3)
        for kind in kinds
    }
    for key in (
        "stdio_over_service",
        "in_memory_over_service",
        "stdio_minus_floor_ms",
        "payload_ms",
        "stdio_minus_client_cpu_ms",
    ):
        out[key] = round(statistics.median(r[key] for r in runs), 3)
    out["target_ms"] = round(RATIO * out["service_p50_ms"] + FLOOR_SLACK_MS, 3)
    out["met"] = out["stdio_p50_ms"] <= out["target_ms"]
    out["runs_met"] = f"{sum(r['met'] for r in runs)} of {len(runs)}"
    out["met_without_client"] = out["stdio_minus_client_cpu_ms"] <= out["target_ms"]
    for kind in KINDS:
        out[f"{kind}_cpu_ms"] = {
            side: round(statistics.median(r[kind][f"cpu_{side}_ms"] for r in runs), 3)
            for side in ("here", "server")
            if f"cpu_{side}_ms" in runs[0][kind]
        }
    out["stdio_server_tool_p50_ms"] = {
        tool: round(statistics.median(r["stdio_server_tool_p50_ms"][tool] for r in runs), 3)
        for tool in ("memory_search", "search_only", "noop")
    }
    out["load_average_range"] = [
        min(r["load_average"]["before"][0] for r in runs),
        max(r["load_average"]["after"][0] for r in runs),
    ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--memories", type=int)
    parser.add_argument("--k", type=int)
    parser.add_argument("--words", type=int, help="extra words per memory value")
    parser.add_argument("--runs", type=int)
    parser.add_argument(
        "--sdk-stdio",
        action="store_true",
        help="serve through the SDK's own stdio transport (the project's before server/stdio.py)",
    )
    args = parser.parse_args()
    sizes = QUICK if args.quick else Sizes()
    changes = {
        name: getattr(args, name)
        for name in ("memories", "k", "words", "runs")
        if getattr(args, name) is not None
    }
    sizes = Sizes(**{**sizes.__dict__, **changes})
    with tempfile.TemporaryDirectory(prefix="bench-mcp-search-") as tmp:
        db = Path(tmp) / "bench.db"
        built = asyncio.run(build_database(db, sizes))
        measured = asyncio.run(measure(db, sizes, sdk_stdio=args.sdk_stdio))
    result = {
        "benchmark": "mcp_search",
        **header(),
        **project_revision(),
        "versions": {name: dist_version(name) for name in ("mcp", "pydantic", "jsonschema")},
        "seed": SEED,
        "sizes": sizes.__dict__,
        "stdio_transport": "sdk" if args.sdk_stdio else "project (server/stdio.py)",
        "target": f"stdio p50 <= {RATIO} x service p50 + {FLOOR_SLACK_MS} ms",
        "database": built,
        "summary": median_of_runs(measured["runs"]),
        **measured,
    }
    emit(result, args.out)


if __name__ == "__main__":
    main()
