"""A LangGraph graph that remembers across threads through abathur-memory.

One node writes what the user said into the store; another searches the store (through
abathur-memory's retrieval pipeline) before answering. The "model" is a rule, so the example
runs offline.

    pip install 'abathur-memory[langgraph]'
    python examples/langgraph_store.py --db agent.db
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from typing import TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.store.base import BaseStore

import abathur_memory
from abathur_memory.adapters.langgraph import AbathurStore


class State(TypedDict):
    user: str
    message: str
    answer: str


async def remember(state: State, *, store: BaseStore) -> dict[str, str]:
    if state["message"].startswith("remember:"):
        fact = state["message"].removeprefix("remember:").strip()
        await store.aput(("memories", state["user"]), str(uuid.uuid4()), {"fact": fact})
    return {}


async def answer(state: State, *, store: BaseStore) -> dict[str, str]:
    found = await store.asearch(("memories", state["user"]), query=state["message"], limit=1)
    return {"answer": found[0].value["fact"] if found else "I don't know yet."}


async def main(db: str) -> None:
    builder = StateGraph(State)
    builder.add_node("remember", remember)
    builder.add_node("answer", answer)
    builder.add_edge(START, "remember")
    builder.add_edge("remember", "answer")
    builder.add_edge("answer", END)
    async with abathur_memory.open(db=db, user="alice") as mem:
        graph = builder.compile(store=AbathurStore(mem))
        await graph.ainvoke({"user": "alice", "message": "remember: my editor is helix"})
        result = await graph.ainvoke({"user": "alice", "message": "which editor do I use?"})
        print("answer:", result["answer"])
        print("namespaces:", await AbathurStore(mem).alist_namespaces())


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", default="agent.db")
    asyncio.run(main(parser.parse_args().db))
